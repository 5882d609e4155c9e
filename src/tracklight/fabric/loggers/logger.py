"""Fabric's ``Logger`` base class and ``rank_zero_experiment``: tracklight's own, which Fabric's loggers share
with the Trainer's (Fabric's ``Logger`` is the Trainer's without ``save_dir`` and ``after_save_checkpoint``)."""

# Fabric's own (private) name for the stand-in experiment of ranks other than zero, for code that imports it.
from tracklight.loggers.logger import DummyExperiment as _DummyExperiment  # noqa: F401
from tracklight.loggers.logger import Logger, rank_zero_experiment

__all__ = ["Logger", "rank_zero_experiment"]
