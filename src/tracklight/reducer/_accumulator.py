"""The store of logged values: one ``Entry`` per (hook, key, dataloader), reduced lazily and in batches.

``log()`` only checks its arguments and appends the value to its entry (tensors are kept as they are,
on their device). Work that needs every value happens where Lightning needs a result: step values when a
step is logged, epoch values when the epoch ends, in one pass over every entry, with one transfer to
the host and at most one collective per process group.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tracklight._errors import TracklightWarning
from tracklight.reducer._entry import FOLD_AT, Entry
from tracklight.reducer._errors import InvalidMetricError, LoggingMisuseError
from tracklight.reducer._sync import Slot, distributed_world, reduce_across_ranks
from tracklight.reducer._table import resolve_reduction
from tracklight.reducer._values import Scalar, default_dtype, shown

__all__ = ["Store"]


class Store:
    """The logged values of one loop (training, or one evaluation), as Lightning's result collection holds them.

    Attributes:
        training: whether this is the training loop's store (its step values reach the callback metrics).
        batch: the current batch, for inferring batch sizes; ``None`` outside a batch.
        batch_size: the batch size inferred (or ``None``) for the current batch.
        dataloader_idx: the current evaluation dataloader when there are several, else ``None``.
        stage: names the loop in errors (``"train"``, ``"validate"``, ``"test"``, ``"sanity check"``).
    """

    def __init__(
        self,
        training: bool,
        *,
        infer_batch_size: Callable[[Any], int],
        misuse_error: type[Exception] = LoggingMisuseError,
        warn: Callable[[str], None] | None = None,
        stage: str = "",
        call: str = "log",
    ) -> None:
        self.training = training
        self.batch: Any = None
        self.batch_size: int | None = None
        self.dataloader_idx: int | None = None
        self.stage = stage
        #: How the caller's log function is spelled in errors (``self.log``, ``reducer.log``).
        self.call = call
        self.entries: dict[tuple[Any, ...], Entry] = {}
        #: Whether any entry reduces its step values across ranks (then logged steps call :meth:`sync_step`).
        self.syncs_steps = False
        self._infer_batch_size = infer_batch_size
        self._misuse_error = misuse_error
        self._warn = warn or _warn
        self._warned: set[tuple[str, str]] = set()

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    # ---- log -------------------------------------------------------------------------------------------

    def record(
        self,
        fx: str,
        name: str,
        value: Any,
        is_metric: bool,
        prog_bar: bool,
        logger: bool,
        on_step: bool,
        on_epoch: bool,
        reduce_fx: Any,
        enable_graph: bool,
        sync: bool,
        group: Any,
        add_dataloader_idx: bool,
        batch_size: Any,
        metric_attribute: str | None,
        rank_zero_only: bool,
    ) -> None:
        """Record one value; its arguments were checked by the caller and ``value`` went through ``normalize``."""
        dataloader_idx = self.dataloader_idx
        key = (fx, name, dataloader_idx) if add_dataloader_idx and dataloader_idx is not None else (fx, name)
        signature = (
            prog_bar,
            logger,
            on_step,
            on_epoch,
            reduce_fx,
            enable_graph,
            sync,
            group,
            add_dataloader_idx,
            dataloader_idx,
            metric_attribute,
            rank_zero_only,
            is_metric,
        )
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = Entry(
                fx,
                name,
                dataloader_idx,
                add_dataloader_idx,
                signature,
                resolve_reduction(reduce_fx, name, self.call, self._misuse_error),
                is_metric,
            )
            self.syncs_steps = self.syncs_steps or (entry.sync and on_step)
        elif entry.signature != signature:
            self._check_same_arguments(entry, signature, fx)
        entry.has_reset = False
        entry.epoch_value = None
        if is_metric:
            entry.metric = value
            cache = value._forward_cache  # the value forward() computed for this step (None before any)
            entry.step_local = entry.step_value = cache.detach() if isinstance(cache, Tensor) else None
            return
        if on_step:
            entry.step_local = entry.step_value = value
            if not on_epoch:
                return
        weighted = entry.weighted
        if weighted:
            if batch_size is None:
                batch_size = self.batch_size
                if batch_size is None:
                    batch_size = 1
                    if self.batch is not None:
                        batch_size = self.batch_size = self._infer_batch_size(self.batch)
            elif type(batch_size) is not int:
                batch_size = _number(batch_size, name)
        if type(value) is float:
            if weighted:
                entry.py_state += value * batch_size
                entry.count += batch_size
            else:
                entry.py_state = entry.reduction.merge(entry.py_state, value)
            if entry.value_dtype is not entry.number_dtype:
                entry.saw_dtype(entry.number_dtype)
            return
        entry.pending.append(value)
        if weighted:
            entry.weights.append(batch_size)  # counted when folded
        if value.dtype is not entry.value_dtype:
            entry.saw_dtype(value.dtype)
        if len(entry.pending) >= FOLD_AT:
            entry.fold()

    def _check_same_arguments(self, entry: Entry, signature: tuple[Any, ...], fx: str) -> None:
        old, new = list(entry.signature), list(signature)
        # "mean" and torch.mean (or "MAX" and max) are the same reduction: compare what they resolve to
        old[4] = entry.reduction.name
        new[4] = resolve_reduction(signature[4], entry.name, self.call, self._misuse_error).name
        if old == new:
            return
        names = (
            "prog_bar",
            "logger",
            "on_step",
            "on_epoch",
            "reduce_fx",
            "enable_graph",
            "sync_dist",
            "sync_dist_group",
            "add_dataloader_idx",
            "dataloader_idx",
            "metric_attribute",
            "rank_zero_only",
            "a torchmetrics.Metric value",
        )
        changed = ", ".join(f"{n}: {a!r} then {b!r}" for n, a, b in zip(names, old, new, strict=True) if a != b)
        raise self._misuse_error(
            f"You called `{self.call}({entry.name}, ...)` twice in `{fx}` with different arguments. This is not "
            f"allowed: one key logged in one hook is reduced one way, and {entry.name!r} changed {changed}. Fix: pass "
            f"the same arguments every time, or log the other variant under another name (e.g. {entry.name + '_2'!r})."
        )

    # ---- read ------------------------------------------------------------------------------------------

    def valid(self) -> list[Entry]:
        """Entries logged since their last reset, for the current dataloader."""
        dataloader_idx = self.dataloader_idx
        return [e for e in self.entries.values() if not e.has_reset and e.dataloader_idx == dataloader_idx]

    def metrics(self, on_step: bool, *, point: str | None = None) -> dict[str, dict[str, Any]]:
        """``{"callback": ..., "log": ..., "pbar": ...}`` of the step values (``on_step``) or the epoch values.

        Values are tensors (as logged), :class:`Scalar` floats (reduced, or logged as Python numbers) or
        whatever a torchmetrics ``Metric`` returned. ``point`` names a place every rank reaches together: the
        keys are then checked across ranks even when this rank has nothing to reduce.
        """
        if not on_step:
            self.compute_epoch(point)
        callback: dict[str, Any] = {}
        log: dict[str, Any] = {}
        pbar: dict[str, Any] = {}
        to_callback = self.training or not on_step
        dataloader_idx = self.dataloader_idx
        for entry in self.entries.values():
            if entry.has_reset or entry.dataloader_idx != dataloader_idx:
                continue
            if on_step:
                if not entry.on_step:
                    continue
                value = entry.step_value
                if value is None:
                    continue
                if type(value) is float:
                    value = entry.step_value = Scalar(value, entry.number_dtype)
                key = entry.step_key
            else:
                if not entry.on_epoch:
                    continue
                value = entry.epoch_value
                key = entry.epoch_key
            if entry.logger:
                log[key] = value
            if to_callback:
                callback[entry.key] = value
                callback[key] = value
            if entry.prog_bar:
                pbar[key] = value
        return {"callback": callback, "log": log, "pbar": pbar}

    # ---- reduce ----------------------------------------------------------------------------------------

    def compute_epoch(self, point: str | None = None) -> None:
        """Give every valid epoch-level entry its ``epoch_value``: local ones folded and moved to the host
        together, ``sync_dist`` ones reduced across ranks in one packed collective per process group."""
        todo = [e for e in self.valid() if e.on_epoch and e.epoch_value is None]
        local: list[Entry] = []
        synced: dict[Any, list[Entry]] = {}
        world = distributed_world()
        for entry in todo:
            if entry.metric is not None:
                entry.epoch_value = self._compute_metric(entry)
            elif entry.sync and world > 1:
                synced.setdefault(entry.group, []).append(entry)
            else:
                local.append(entry)
                asked_for_sync = entry.signature[6]  # with rank_zero_only: not synced, on purpose
                if world > 1 and not asked_for_sync and (entry.key, "sync") not in self._warned:
                    self._warned.add((entry.key, "sync"))
                    self._warn(
                        f"It is recommended to use `{self.call}({entry.name!r}, ..., sync_dist=True)` when logging on "
                        "epoch level in distributed setting to accumulate the metric across devices: without it, "
                        f"each rank reduces its own values of {entry.name!r}. Fix: pass sync_dist=True to "
                        f"{self.call}({entry.name!r}, ...), if a value over every rank is what you want."
                    )
        if point is not None and world > 1 and None not in synced:
            synced[None] = []  # a place every rank reaches: check the keys even with nothing to reduce here
        for group, entries in synced.items():
            self._reduce_synced(entries, group, point or f"the end of a {self.stage or 'loop'} epoch")
        if local:
            partials = [entry.partial() for entry in local]
            for entry, state in zip(local, _to_host(partials), strict=True):
                entry.epoch_value = Scalar(entry.reduction.finish(state, entry.count), entry.out_dtype)

    def _reduce_synced(self, entries: list[Entry], group: Any, point: str) -> None:
        slots = []
        for entry in entries:
            label = f"{entry.key} in {entry.fx}"
            slots.append(Slot(label, entry.reduction.across_ranks, entry.partial(), entry.reduction.name))
            if entry.reduction.weighted:
                slots.append(Slot(label, "sum", float(entry.count), entry.reduction.name))
        reduced = iter(reduce_across_ranks(point, slots, group))
        for entry in entries:
            state = next(reduced)
            count = next(reduced) if entry.reduction.weighted else 0
            entry.epoch_value = Scalar(entry.reduction.finish(state, count), entry.out_dtype)

    def sync_step(self, point: str | None = None) -> None:
        """Reduce the step values of ``sync_dist`` entries across ranks (called only where a step is logged)."""
        if distributed_world() <= 1:
            return
        groups: dict[Any, list[Entry]] = {}
        for entry in self.valid():
            if entry.on_step and entry.sync and entry.metric is None and entry.step_local is not None:
                groups.setdefault(entry.group, []).append(entry)
        for group, entries in groups.items():
            slots = [
                Slot(f"{e.key} in {e.fx}", e.reduction.step_across_ranks, e.step_local, e.reduction.name)
                for e in entries
            ]
            reduced = reduce_across_ranks(point or f"a logged {self.stage or 'loop'} step", slots, group)
            for entry, value in zip(entries, reduced, strict=True):
                local = entry.step_local
                dtype = local.dtype if isinstance(local, Tensor) else default_dtype()
                entry.step_value = Scalar(value, dtype)

    def _compute_metric(self, entry: Entry) -> Any:
        value = entry.metric.compute()
        if not isinstance(value, Tensor):
            raise InvalidMetricError(
                f"The `.compute()` return of the metric logged as {entry.name!r} must be a tensor. Found "
                f"{shown(value)}, a {type(value).__name__}. Fix: log each value "
                "of a Metric that computes several under its own key (or log a MetricCollection with log_dict)."
            )
        return value.detach()

    # ---- reset -----------------------------------------------------------------------------------------

    def reset(self, metrics: bool | None = None, fx: str | None = None) -> None:
        """Reset entries: ``metrics=True`` only torchmetrics ones, ``False`` only the others, ``None`` both;
        ``fx`` limits it to one hook (with its ``.N`` dataloader suffix), as Lightning's collection does."""
        for entry in self.entries.values():
            is_metric = entry.metric is not None
            if (metrics is None or metrics == is_metric) and (fx is None or fx == entry.fx):
                if is_metric:
                    entry.metric.reset()
                    entry.epoch_value = None
                else:
                    entry.reset_state()
                entry.has_reset = True


def _number(batch_size: Any, name: str) -> float:
    try:
        return int(batch_size) if float(batch_size).is_integer() else float(batch_size)
    except (TypeError, ValueError):
        raise LoggingMisuseError(
            f"log({name!r}, ..., batch_size={batch_size!r}): the batch size must be a number. "
            "Fix: pass the number of samples in the batch, e.g. batch_size=len(x)."
        ) from None


def _to_host(partials: list[Tensor | float]) -> list[float]:
    """Python floats of partial states: the tensors of each device go to the host in one transfer."""
    out: list[Any] = list(partials)
    by_device: dict[torch.device, list[int]] = {}
    for i, value in enumerate(partials):
        if isinstance(value, Tensor):
            by_device.setdefault(value.device, []).append(i)
    for indices in by_device.values():
        tensors: list[Tensor] = [partials[i] for i in indices]  # type: ignore[misc]
        host = torch.stack(tensors).tolist() if len(tensors) > 1 else [tensors[0].item()]
        for i, value in zip(indices, host, strict=True):
            out[i] = value
    return out


def _warn(message: str) -> None:
    warnings.warn(message, TracklightWarning, stacklevel=4)
