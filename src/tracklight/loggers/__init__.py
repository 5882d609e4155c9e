"""The drop-in namespace: ``from tracklight import loggers as pl_loggers``.

Same names as ``lightning.pytorch.loggers``. Backends whose SDK is optional import it only when used.
"""

from __future__ import annotations

from typing import Any

from tracklight._rank import rank_zero_only
from tracklight.loggers.collection import LoggerCollection
from tracklight.loggers.csv import CSVLogger
from tracklight.loggers.logger import DummyExperiment, Logger, rank_zero_experiment
from tracklight.loggers.tensorboard import TensorBoardLogger

__all__ = [
    "CSVLogger",
    "DummyExperiment",
    "Logger",
    "LoggerCollection",
    "TensorBoardLogger",
    "rank_zero_experiment",
    "rank_zero_only",
]

_PLANNED = ("WandbLogger", "MLFlowLogger", "CometLogger", "NeptuneLogger")


def __getattr__(name: str) -> Any:
    if name in _PLANNED:
        raise AttributeError(
            f"tracklight.loggers.{name} is not available in this version of tracklight yet. "
            f"Until it lands, keep Lightning's: from lightning.pytorch.loggers import {name}"
        )
    raise AttributeError(f"module 'tracklight.loggers' has no attribute {name!r}")


def _install_lightning_compat() -> None:
    from tracklight.lightning import install

    install()


_install_lightning_compat()
