"""The reducer for hand-written loops and Fabric: ``self.log`` semantics without a Trainer.

Example:
    >>> import torch
    >>> from tracklight.reducer import MetricReducer
    >>> class Print:
    ...     def log_metrics(self, metrics, step=None):
    ...         print(step, {k: round(v, 3) for k, v in metrics.items()})
    ...     def save(self):
    ...         pass
    >>> reducer = MetricReducer(Print(), log_every_n_steps=2)
    >>> reducer.start_epoch("train")
    >>> for loss in (0.9, 0.7, 0.5):
    ...     reducer.log("loss", torch.tensor(loss), on_epoch=True, batch_size=4)
    ...     reducer.step()
    1 {'loss_step': 0.7, 'epoch': 0}
    >>> round(reducer.end_epoch()["loss_epoch"], 6)
    2 {'loss_epoch': 0.7, 'epoch': 0}
    0.7
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from torch import Tensor

from tracklight._imports import is_instance_by_name
from tracklight.reducer._accumulator import Store
from tracklight.reducer._batch import infer_batch_size
from tracklight.reducer._errors import LoggingMisuseError
from tracklight.reducer._hooks import STAGE_HOOKS, known_levels, resolve_levels
from tracklight.reducer._values import is_metric, keep_tensor, materialize, normalize, to_floats

__all__ = ["MetricReducer"]

_CALL = "reducer.log"
_METRIC_COLLECTION = "torchmetrics.collections.MetricCollection"


class MetricReducer:
    """Reduce logged values the way Lightning's ``self.log`` does, in a plain PyTorch or Fabric loop.

    Mark the loop's boundaries: :meth:`start_epoch` / :meth:`end_epoch` around each stage (``"train"``,
    ``"validate"``, ``"test"``; a validation epoch may run inside a training epoch), optionally
    :meth:`start_batch` for batch-size inference and several dataloaders, and :meth:`step` after each
    batch. :meth:`log` and :meth:`log_dict` take ``LightningModule.log``'s arguments, with the defaults of
    ``training_step`` in the train stage (``on_step=True, on_epoch=False``) and of ``validation_step`` /
    ``test_step`` in the others (``on_step=False, on_epoch=True``).

    What reaches the loggers matches Lightning: training step values every ``log_every_n_steps`` optimizer
    steps at ``step=global_step`` (with ``"epoch"``), evaluation step values every batch at the batch's
    index, epoch values when the epoch ends. Values stay tensors until then and cross to the host in one
    transfer; ``sync_dist=True`` values are reduced across ``torch.distributed`` ranks in one packed
    collective, exactly (float64 sums and counts), so call :meth:`step` and :meth:`end_epoch` on every rank.

    Args:
        logger: where results go: a logger (anything with ``log_metrics(metrics, step)``), a list of them,
            a ``LoggerCollection``, ``fabric.loggers``, or ``None`` to only keep them on this object.
        log_every_n_steps: how often training step values are sent (0: never).
        sync_steps: ``"logged"`` (default) reduces ``sync_dist`` step values across ranks only on steps sent to
            the loggers, so :attr:`callback_metrics` holds this rank's step values in between; ``"every"``
            reduces them on every step.

    Example:
        >>> import torch
        >>> reducer = MetricReducer()
        >>> with reducer.epoch("validate"):
        ...     reducer.log("acc", torch.tensor(1.0), batch_size=3)
        ...     reducer.step()
        ...     reducer.log("acc", torch.tensor(0.0), batch_size=1)
        ...     reducer.step()
        >>> reducer.callback_metrics["acc"]
        tensor(0.7500)
    """

    def __init__(self, logger: Any = None, *, log_every_n_steps: int = 50, sync_steps: str = "logged") -> None:
        if logger is None:
            self.loggers: list[Any] = []
        elif isinstance(logger, list | tuple):
            self.loggers = list(logger)
        else:
            self.loggers = [logger]
        if log_every_n_steps < 0:
            raise LoggingMisuseError(
                f"MetricReducer(log_every_n_steps={log_every_n_steps}) must be 0 or more. Fix: pass 0 to never "
                "send training step values, or a positive number of steps."
            )
        if sync_steps not in ("logged", "every"):
            raise LoggingMisuseError(
                f"MetricReducer(sync_steps={sync_steps!r}): use 'logged' (reduce sync_dist step values across ranks "
                "on logged steps only) or 'every' (on every step)."
            )
        self.log_every_n_steps = log_every_n_steps
        self.sync_steps = sync_steps
        #: Optimizer steps taken so far (Lightning's ``trainer.global_step`` for one optimizer).
        self.global_step = 0
        #: Training epochs finished so far.
        self.current_epoch = 0
        #: Set to True before the last :meth:`step` of training so its step values are sent.
        self.should_stop = False
        self._stores = {
            stage: Store(stage == "train", infer_batch_size=infer_batch_size, stage=stage, call=_CALL)
            for stage in STAGE_HOOKS
        }
        self._open: list[str] = []
        self._eval_batches: dict[int, int] = {}
        self._callback_metrics: dict[str, Any] = {}
        self._logged_metrics: dict[str, Any] = {}
        self._progress_bar_metrics: dict[str, Any] = {}

    # ---- boundaries ------------------------------------------------------------------------------------

    @property
    def stage(self) -> str | None:
        """The innermost open stage, or ``None`` between epochs."""
        return self._open[-1] if self._open else None

    def start_epoch(self, stage: str = "train") -> None:
        """Open an epoch of ``stage`` (``"train"``, ``"validate"`` or ``"test"``)."""
        if stage not in STAGE_HOOKS:
            raise LoggingMisuseError(
                f"start_epoch({stage!r}): the stage must be one of {sorted(STAGE_HOOKS)}. "
                "Fix: use 'train' for training batches and 'validate' or 'test' for evaluation."
            )
        if stage in self._open:
            raise LoggingMisuseError(
                f"start_epoch({stage!r}) was called while a {stage!r} epoch is open. Fix: call end_epoch() first."
            )
        store = self._stores[stage]
        store.reset()
        store.batch = store.batch_size = store.dataloader_idx = None
        if stage != "train":
            self._eval_batches = {}
        self._open.append(stage)

    @contextlib.contextmanager
    def epoch(self, stage: str = "train") -> Iterator[MetricReducer]:
        """``start_epoch(stage)`` on entry and ``end_epoch()`` on a normal exit; an exception closes the epoch
        without reducing or sending its values."""
        self.start_epoch(stage)
        try:
            yield self
        except BaseException:
            if self._open and self._open[-1] == stage:
                self._open.pop()
                self._stores[stage].reset()
            raise
        self.end_epoch()

    def start_batch(self, batch: Any = None, *, dataloader_idx: int | None = None) -> None:
        """Optional: the batch about to be processed (its size weighs epoch means when ``batch_size`` is not
        given) and, with several evaluation dataloaders, which one it came from (keys get
        ``/dataloader_idx_N``)."""
        store = self._store("start_batch")
        store.batch = batch
        store.batch_size = None
        store.dataloader_idx = dataloader_idx

    def step(self, *, optimizer_stepped: bool = True) -> None:
        """End of one batch: send its step values when due.

        In training, pass ``optimizer_stepped=False`` for batches that only accumulated gradients: they
        neither count as a step nor send values, as in Lightning.
        """
        stage = self._require_open("step")
        store = self._stores[stage]
        if stage == "train":
            due = optimizer_stepped and self.log_every_n_steps > 0
            due = due and ((self.global_step + 1) % self.log_every_n_steps == 0 or self.should_stop)
            if store.syncs_steps and (due or (optimizer_stepped and self.sync_steps == "every")):
                store.sync_step()
            metrics = self._collect(store.metrics(True))
            if due:
                self._send(metrics, None)
            if optimizer_stepped:
                self.global_step += 1
        else:
            if store.syncs_steps:  # every evaluation step is sent
                store.sync_step()
            metrics = self._collect(store.metrics(True))
            index = store.dataloader_idx or 0
            seen = self._eval_batches.get(index, 0)
            self._send(metrics, seen)
            self._eval_batches[index] = seen + 1
        store.batch = store.batch_size = None

    def end_epoch(self) -> dict[str, float]:
        """Close the innermost open epoch: reduce its epoch values, send them, and return them as floats."""
        stage = self._require_open("end_epoch")
        store = self._stores[stage]
        store.batch = store.batch_size = None
        logged: dict[str, Any] = {}
        indices = {entry.dataloader_idx for entry in store.entries.values()}
        for index in sorted(i for i in indices if i is not None):
            store.dataloader_idx = index
            logged.update(self._collect(store.metrics(False)))
        store.dataloader_idx = None
        logged.update(self._collect(store.metrics(False)))
        if stage == "train":
            self.global_step -= 1  # Lightning sends epoch values at the step of the epoch's last batch
            try:
                self._send(logged, None)
            finally:
                self.global_step += 1
            self.current_epoch += 1
        else:
            self._send(logged, None)
        self._open.pop()
        store.reset()
        return to_floats(logged)

    # ---- resume: fabric.save / fabric.load ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The counters a resumed loop continues from: ``global_step`` and ``current_epoch`` (plain ints), so
        ``fabric.save(path, {"reducer": reducer, ...})`` and ``fabric.load`` go on at the same step."""
        return {"global_step": self.global_step, "current_epoch": self.current_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s counters; call it between epochs (values being reduced stay as
        they are)."""
        for key in ("global_step", "current_epoch"):
            value = state.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise LoggingMisuseError(
                    f"MetricReducer.load_state_dict: {key!r} is {value!r}, not a count of 0 or more. Pass the dict "
                    "MetricReducer.state_dict() returned."
                )
        self.global_step = state["global_step"]
        self.current_epoch = state["current_epoch"]

    # ---- log -------------------------------------------------------------------------------------------

    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: Any = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        metric_attribute: str | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        """Log one value, as ``LightningModule.log`` does: a number, a one-element tensor or a torchmetrics
        ``Metric`` (its ``forward`` value per step, ``compute()`` per epoch, reset after)."""
        stage = self._open[-1] if self._open else self._require_open("log")
        fx = STAGE_HOOKS[stage]
        levels = known_levels.get((fx, on_step, on_epoch))
        if levels is None:
            levels = resolve_levels(fx, name, on_step, on_epoch, _CALL)
        on_step, on_epoch = levels
        if add_dataloader_idx and "/dataloader_idx_" in name:
            raise LoggingMisuseError(_dataloader_idx_in_name(name, _CALL))
        if isinstance(value, Tensor):
            value, metric = keep_tensor(name, value, _CALL, fx), False
        else:
            value, metric = normalize(name, value, _CALL, fx)
        self._stores[stage].record(
            fx,
            name,
            value,
            metric,
            prog_bar,
            True if logger is None else logger,
            on_step,
            on_epoch,
            reduce_fx,
            enable_graph,
            sync_dist,
            sync_dist_group,
            add_dataloader_idx,
            batch_size,
            metric_attribute,
            rank_zero_only,
        )

    def log_dict(
        self,
        dictionary: Mapping[str, Any] | Any,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: Any = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        """Log every value of a dict (or a torchmetrics ``MetricCollection``) with the same arguments."""
        for name, value in dict_items(dictionary, "reducer.log_dict"):
            self.log(
                name,
                value,
                prog_bar,
                logger,
                on_step,
                on_epoch,
                reduce_fx,
                enable_graph,
                sync_dist,
                sync_dist_group,
                add_dataloader_idx,
                batch_size,
                None,
                rank_zero_only,
            )

    # ---- results ---------------------------------------------------------------------------------------

    @property
    def callback_metrics(self) -> dict[str, Any]:
        """Latest step values (training) and epoch values as tensors, as ``trainer.callback_metrics``."""
        return materialize(self._callback_metrics)

    @property
    def logged_metrics(self) -> dict[str, Any]:
        """Latest values meant for the loggers, as tensors, as ``trainer.logged_metrics``."""
        return materialize(self._logged_metrics)

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        """Latest ``prog_bar=True`` values as floats, as ``trainer.progress_bar_metrics``."""
        self._progress_bar_metrics.update(to_floats(self._progress_bar_metrics))
        return self._progress_bar_metrics

    # ---- internals -------------------------------------------------------------------------------------

    def _collect(self, metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
        self._callback_metrics.update(metrics["callback"])
        self._logged_metrics.update(metrics["log"])
        self._progress_bar_metrics.update(metrics["pbar"])
        return metrics["log"]

    def _send(self, metrics: Mapping[str, Any], step: int | None) -> None:
        if not self.loggers or not metrics:
            return
        numbers = to_floats(metrics)
        if step is None:
            explicit = numbers.pop("step", None)
            if explicit is not None:
                step = int(explicit)
            else:
                numbers.setdefault("epoch", self.current_epoch)
                step = self.global_step
        for logger in self.loggers:
            logger.log_metrics(numbers, step=step)
            save = getattr(logger, "save", None)
            if save is not None:
                save()

    def _require_open(self, call: str) -> str:
        if not self._open:
            raise LoggingMisuseError(
                f"reducer.{call}() was called outside an epoch. Fix: call reducer.start_epoch('train') (or "
                "'validate'/'test') first, or wrap the loop in `with reducer.epoch('train'):`."
            )
        return self._open[-1]

    def _store(self, call: str) -> Store:
        return self._stores[self._require_open(call)]


def dict_items(dictionary: Any, call: str) -> Any:
    """The ``(name, value)`` pairs of a dict or a torchmetrics ``MetricCollection`` (as Lightning reads them)."""
    if is_metric(dictionary) or not hasattr(dictionary, "items"):
        raise LoggingMisuseError(
            f"{call}() takes a dict of values (or a torchmetrics MetricCollection), not {type(dictionary).__name__}. "
            f"Fix: use {call.replace('_dict', '')}(name, value) for a single value."
        )
    if is_instance_by_name(dictionary, _METRIC_COLLECTION):  # subclasses too, as Lightning's isinstance()
        kwargs: dict[str, bool] = {"keep_base": False}
        if getattr(dictionary, "_enable_compute_groups", False):
            # the metrics of a compute group share one state: copying it at every call would undo the sharing
            kwargs["copy_state"] = False
        return dictionary.items(**kwargs)
    return dictionary.items()


def _dataloader_idx_in_name(name: str, call: str) -> str:
    return (
        f"You called `{call}` with the key `{name}` but it should not contain information about `dataloader_idx` "
        f"when `add_dataloader_idx=True`: '/dataloader_idx_N' is added for you when several evaluation dataloaders "
        f"are used. Fix: log it as {name.split('/dataloader_idx_')[0]!r}, or pass add_dataloader_idx=False to name "
        "each dataloader's key yourself."
    )
