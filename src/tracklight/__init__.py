"""tracklight: drop-in, Lightning-compatible experiment loggers that never stall or crash training.

``import tracklight`` is cheap: it imports no backend SDK, no torch and no Lightning. Names are
loaded on first use.

Example:
    >>> from tracklight import loggers as pl_loggers
    >>> pl_loggers.CSVLogger  # doctest: +ELLIPSIS
    <class 'tracklight.loggers.csv.CSVLogger'>
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

__all__ = [
    "CSVLogger",
    "CometLogger",
    "InvalidMetricError",
    "LightningReducer",
    "Logger",
    "LoggerCollection",
    "MLFlowLogger",
    "MetricReducer",
    "MissingDependencyError",
    "NeptuneLogger",
    "TensorBoardLogger",
    "TracklightError",
    "TracklightWarning",
    "UnsafePathError",
    "WandbLogger",
    "__version__",
    "loggers",
    "media",
    "params",
    "reducer",
    "runs",
]

_LAZY = {
    "CSVLogger": "tracklight.loggers",
    "Logger": "tracklight.loggers",
    "LoggerCollection": "tracklight.loggers",
    "TensorBoardLogger": "tracklight.loggers",
    "WandbLogger": "tracklight.loggers",
    "MLFlowLogger": "tracklight.loggers",
    "CometLogger": "tracklight.loggers",
    "NeptuneLogger": "tracklight.loggers",
    "MetricReducer": "tracklight.reducer",
    "LightningReducer": "tracklight.reducer",
    "TracklightError": "tracklight._errors",
    "TracklightWarning": "tracklight._errors",
    "InvalidMetricError": "tracklight._errors",
    "MissingDependencyError": "tracklight._errors",
    "UnsafePathError": "tracklight._errors",
}
_SUBMODULES = ("loggers", "media", "params", "lightning", "reducer", "runs")

if TYPE_CHECKING:
    from tracklight import lightning, loggers, media, params, reducer, runs  # noqa: F401
    from tracklight._errors import (
        InvalidMetricError,
        MissingDependencyError,
        TracklightError,
        TracklightWarning,
        UnsafePathError,
    )
    from tracklight.loggers import (
        CometLogger,
        CSVLogger,
        Logger,
        LoggerCollection,
        MLFlowLogger,
        NeptuneLogger,
        TensorBoardLogger,
        WandbLogger,
    )
    from tracklight.reducer import LightningReducer, MetricReducer


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"tracklight.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tracklight' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
