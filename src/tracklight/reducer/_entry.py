"""One logged key: its arguments, how it is reduced, and its values so far (buffered on their device)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tracklight.reducer._table import Reduction
from tracklight.reducer._values import default_dtype

__all__ = ["FOLD_AT", "Entry"]

#: Buffered tensors per entry before they are folded into one: bounds memory over long epochs.
FOLD_AT = 256
_float64 = torch.float64
_MIXED = "mixed"


class Entry:
    """Everything logged under one key in one hook (and one dataloader), with how it is reduced."""

    __slots__ = (
        "count",
        "dataloader_idx",
        "epoch_key",
        "epoch_value",
        "fx",
        "group",
        "has_reset",
        "keeps_dtype",
        "key",
        "logger",
        "metric",
        "name",
        "number_dtype",
        "on_epoch",
        "on_step",
        "pending",
        "prog_bar",
        "py_state",
        "reduction",
        "signature",
        "state",
        "step_key",
        "step_local",
        "step_value",
        "sync",
        "value_dtype",
        "weighted",
        "weights",
    )

    def __init__(
        self,
        fx: str,
        name: str,
        dataloader_idx: int | None,
        add_dataloader_idx: bool,
        signature: tuple[Any, ...],
        reduction: Reduction,
        is_metric: bool,
    ) -> None:
        prog_bar, logger, on_step, on_epoch, _, _, sync, group, _, _, _, rank_zero_only, _ = signature
        suffix = f"/dataloader_idx_{dataloader_idx}" if add_dataloader_idx and dataloader_idx is not None else ""
        forked = on_step and on_epoch
        self.fx = f"{fx}.{dataloader_idx}" if suffix else fx
        self.name = name
        self.dataloader_idx = dataloader_idx
        self.signature = signature
        self.reduction = reduction
        self.weighted = reduction.weighted
        self.on_step: bool = on_step
        self.on_epoch: bool = on_epoch
        self.logger: bool = logger
        self.prog_bar: bool = prog_bar
        self.sync: bool = sync and not rank_zero_only
        self.group = group
        self.key = name + suffix
        self.step_key = (f"{name}_step" if forked else name) + suffix
        self.epoch_key = (f"{name}_epoch" if forked else name) + suffix
        self.metric: Any = True if is_metric else None
        # Lightning's builtin max/min return the winning value itself, so its dtype is the values' dtype;
        # every other reduction promotes the values' dtype with torch's default (at least float32).
        reduce_fx = signature[4]
        self.keeps_dtype = reduce_fx is max or reduce_fx is min
        self.pending: list[Tensor] = []
        self.weights: list[float] = []
        self.reset_state()
        self.has_reset = False

    def reset_state(self) -> None:
        self.pending.clear()
        self.weights.clear()
        self.state: Tensor | None = None
        self.py_state: float = self.reduction.identity
        self.count: float = 0
        self.step_local: Any = None
        self.step_value: Any = None
        self.epoch_value: Any = None
        self.number_dtype = default_dtype()  # Lightning turns Python numbers into tensors of this dtype
        self.value_dtype: Any = None  # the dtype of every value logged so far, or _MIXED

    def saw_dtype(self, dtype: torch.dtype) -> None:
        """Note a value of another dtype than those before (rare: called only when the dtype changes)."""
        self.value_dtype = dtype if self.value_dtype is None else _MIXED

    @property
    def out_dtype(self) -> torch.dtype:
        """The dtype Lightning's epoch value has for the values logged so far."""
        seen = self.value_dtype
        if seen is None:
            return self.number_dtype
        if seen is _MIXED:
            return _float64
        if self.keeps_dtype:
            return seen
        return _float64 if _float64 in (seen, self.number_dtype) else seen

    def fold(self) -> None:
        """Reduce the buffered tensors into ``state`` on their device; nothing moves to the host."""
        pending = self.pending
        if not pending:
            return
        try:
            values = torch.stack(pending)
        except RuntimeError:  # values of one key on several devices: follow the latest, as Lightning does
            device = pending[-1].device
            values = torch.stack([value.to(device) for value in pending])
        dtype = _float64 if values.device.type != "mps" else torch.float32  # MPS has no float64
        weights = self.weights
        part = self.reduction.fold(values, weights if self.weighted else None, dtype)
        if weights:
            self.count += sum(weights)
        state = self.state
        self.state = part if state is None else self.reduction.merge_tensors(state.to(part.device), part)
        pending.clear()
        self.weights.clear()

    def partial(self) -> Tensor | float:
        """The partial state (weighted sum for a mean) of every value so far: a tensor if any value was one."""
        self.fold()
        if self.state is None:
            return self.py_state
        if self.py_state == self.reduction.identity:  # no Python number was logged (or only neutral ones)
            return self.state
        return self.reduction.merge_tensors(self.state, self.py_state)
