"""The drop-in namespace: ``from tracklight import loggers as pl_loggers``.

Same names as ``lightning.pytorch.loggers``. Backends whose SDK is optional import it only when used.
``LitLogger`` is Lightning's own class (tracklight has none), reached here so a switched import still finds it.
"""

# No `from __future__ import annotations` nor bare typing imports: this namespace holds only its own names.
import importlib as _importlib
import typing as _typing

from tracklight._rank import rank_zero_only
from tracklight.loggers.collection import LoggerCollection
from tracklight.loggers.csv import CSVLogger
from tracklight.loggers.logger import DummyExperiment, Logger, rank_zero_experiment
from tracklight.loggers.tensorboard import TensorBoardLogger

__all__ = [
    "CSVLogger",
    "CometLogger",
    "DummyExperiment",
    "Logger",
    "LoggerCollection",
    "MLFlowLogger",
    "NeptuneLogger",
    "TensorBoardLogger",
    "WandbLogger",
    "rank_zero_experiment",
    "rank_zero_only",
]

# Remote backends load on first use: their modules are small, but keeping them out of the import keeps
# `from tracklight import loggers` fast. Their SDKs are imported only when a logger starts a run.
# LitLogger is Lightning's: resolving it imports Lightning, so it stays out of __all__ (and of `import *`).
_LAZY = {
    "WandbLogger": "tracklight.loggers.wandb",
    "MLFlowLogger": "tracklight.loggers.mlflow",
    "CometLogger": "tracklight.loggers.comet",
    "NeptuneLogger": "tracklight.loggers.neptune",
    "LitLogger": "tracklight.loggers.litlogger",
}

if _typing.TYPE_CHECKING:
    from tracklight.loggers.comet import CometLogger
    from tracklight.loggers.mlflow import MLFlowLogger
    from tracklight.loggers.neptune import NeptuneLogger
    from tracklight.loggers.wandb import WandbLogger


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tracklight.loggers' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _install_lightning_compat() -> None:
    from tracklight.lightning import install

    install()


_install_lightning_compat()
