"""The metric reducer: Lightning's ``self.log`` semantics, cheap per call and exact under DDP.

- :class:`MetricReducer`: for hand-written PyTorch loops and Fabric.
- :class:`LightningReducer`: the one-line Lightning opt-in, ``Trainer(callbacks=[LightningReducer()])``.

Names load on first use, so ``import tracklight.reducer`` imports neither torch nor Lightning.

Example:
    >>> from tracklight.reducer import MetricReducer
    >>> reducer = MetricReducer()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "REDUCTIONS",
    "InvalidMetricError",
    "LightningReducer",
    "LoggingMisuseError",
    "MetricReducer",
    "SyncMismatchError",
]

_LAZY = {
    "MetricReducer": "tracklight.reducer.api",
    "LightningReducer": "tracklight.reducer.lightning",
    "REDUCTIONS": "tracklight.reducer._table",
    "InvalidMetricError": "tracklight.reducer._errors",
    "LoggingMisuseError": "tracklight.reducer._errors",
    "SyncMismatchError": "tracklight.reducer._errors",
}
_NEEDS = {"MetricReducer": ("torch", "lightning"), "LightningReducer": ("lightning", "lightning")}

if TYPE_CHECKING:
    from tracklight.reducer._errors import InvalidMetricError, LoggingMisuseError, SyncMismatchError
    from tracklight.reducer._table import REDUCTIONS
    from tracklight.reducer.api import MetricReducer
    from tracklight.reducer.lightning import LightningReducer


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tracklight.reducer' has no attribute {name!r}")
    if name in _NEEDS:
        from tracklight._imports import require

        require(*_NEEDS[name])
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
