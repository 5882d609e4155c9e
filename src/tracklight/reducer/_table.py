"""The one table of reductions: how each one merges locally, combines across ranks and finishes.

Every place that reduces a logged value (accumulating a step, folding a buffer of tensors, packing
values for ``torch.distributed``, finishing the epoch value) reads the :class:`Reduction` found here,
so adding or fixing a reduction touches this module only.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracklight.reducer._errors import LoggingMisuseError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["REDUCTIONS", "Reduction", "resolve_reduction"]


def _nan_max(a: float, b: float) -> float:
    # NaN wins, as torch.maximum does: a NaN step must not vanish from the epoch value.
    return a if a != a or a > b else b


def _nan_min(a: float, b: float) -> float:
    return a if a != a or a < b else b


def _add(a: float, b: float) -> float:
    return a + b


@dataclass(frozen=True)
class Reduction:
    """How one reduction accumulates values over an epoch.

    Attributes:
        name: ``"mean"``, ``"sum"``, ``"max"`` or ``"min"``.
        weighted: whether values are weighted by the batch size (only the mean is).
        identity: the partial state before any value arrived.
        merge: merges two partial states held as Python floats.
        across_ranks: how the partial states of every rank combine (``"sum"``, ``"max"`` or ``"min"``); a
            mean packs its weighted sum and its count, both summed, so the global mean is exact.
        step_across_ranks: how a step value combines across ranks with ``sync_dist`` (Lightning's op:
            the unweighted mean over ranks for a mean).
    """

    name: str
    weighted: bool
    identity: float
    merge: Any
    across_ranks: str
    step_across_ranks: str

    def fold(self, values: Tensor, weights: list[float] | None, dtype: Any) -> Tensor:
        """Reduce a 1-D tensor of buffered values (with their batch sizes, for a mean) to one 0-d tensor of
        ``dtype`` (float64, except where the device has none), summing in that dtype."""
        import torch

        if self.name == "mean":
            assert weights is not None
            first = weights[0]
            if weights.count(first) == len(weights):  # one batch size throughout: the common case
                return torch.sum(values, dtype=dtype) * first
            # non_blocking: a pageable host-to-device copy without a stream synchronisation
            weight = torch.tensor(weights, dtype=dtype).to(values.device, non_blocking=True)
            return torch.sum(values.to(dtype) * weight)
        if self.name == "sum":
            return torch.sum(values, dtype=dtype)
        # max and min are exact in any dtype
        return (values.amax() if self.name == "max" else values.amin()).to(dtype)

    def merge_tensors(self, a: Tensor, b: Tensor | float) -> Tensor:
        """Merge two partial states where at least one is a tensor, without leaving the device."""
        import torch

        if self.name in ("mean", "sum"):
            return a + b
        other = b if isinstance(b, torch.Tensor) else torch.full_like(a, b)
        return torch.maximum(a, other) if self.name == "max" else torch.minimum(a, other)

    def finish(self, state: float, count: float) -> float:
        """The epoch value from a partial state (and the total batch size for a mean)."""
        if not self.weighted:
            return state
        if count == 0:
            # what a tensor division gives, instead of ZeroDivisionError
            return math.nan if state == 0 or state != state else math.copysign(math.inf, state)
        return state / count


REDUCTIONS: dict[str, Reduction] = {
    "mean": Reduction("mean", True, 0.0, _add, "sum", "mean"),
    "sum": Reduction("sum", False, 0.0, _add, "sum", "sum"),
    "max": Reduction("max", False, -math.inf, _nan_max, "max", "max"),
    "min": Reduction("min", False, math.inf, _nan_min, "min", "min"),
}

_ALIASES = {"mean": "mean", "avg": "mean", "sum": "sum", "max": "max", "min": "min"}
_BUILTINS = {sum: "sum", max: "max", min: "min"}
_resolved: dict[Any, Reduction] = {}


def resolve_reduction(
    reduce_fx: Any, key: str, call: str = "log", error: type[Exception] = LoggingMisuseError
) -> Reduction:
    """The reduction that ``reduce_fx`` names: ``"mean"``/``"avg"``/``"sum"``/``"max"``/``"min"`` in any case,
    the builtins ``sum``/``max``/``min`` or ``torch.mean``/``torch.sum``/``torch.max``/``torch.min``."""
    try:
        return _resolved[reduce_fx]
    except (KeyError, TypeError):
        pass
    name: str | None = None
    if isinstance(reduce_fx, str):
        name = _ALIASES.get(reduce_fx.lower())
    elif reduce_fx in _BUILTINS:
        name = _BUILTINS[reduce_fx]
    else:
        name = _torch_function_name(reduce_fx)
    if name is None:
        raise error(
            f"Only `{call}(..., reduce_fx={{min,max,mean,sum}})` are supported. If you need a custom reduction, "
            f"please log a `torchmetrics.Metric` instance instead. Found: {reduce_fx} (for {key!r}). Fix: use 'mean' "
            "(or 'avg'), 'sum', 'max' or 'min', as strings, the builtins sum/max/min or torch.mean/sum/max/min, or "
            "log a torchmetrics.Metric whose compute() does the custom reduction."
        )
    reduction = REDUCTIONS[name]
    with contextlib.suppress(TypeError):  # unhashable callables are resolved each time
        _resolved[reduce_fx] = reduction
    return reduction


def _torch_function_name(fn: Any) -> str | None:
    """``"mean"`` for ``torch.mean`` and so on; ``None`` for anything else (torch is not imported for this)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return next((name for name in REDUCTIONS if fn is getattr(torch, name, None)), None)
