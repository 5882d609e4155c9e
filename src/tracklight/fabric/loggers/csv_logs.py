"""Fabric's ``CSVLogger``: ``root_dir/name/version_N/metrics.csv``, Lightning Fabric's arguments and table."""

from __future__ import annotations

import os

from tracklight.fabric.loggers._layout import FabricDirs
from tracklight.loggers import csv

__all__ = ["CSVLogger"]


class CSVLogger(FabricDirs, csv.CSVLogger):
    r"""Log metrics to ``root_dir/name/version_N/metrics.csv``, as Lightning Fabric's ``CSVLogger`` does.

    The same table as Lightning's: one row per ``log_metrics`` call, one column per key (sorted) with ``step``.
    Where Lightning's Fabric logger raises ``NotImplementedError`` in ``log_hyperparams``, this one writes
    ``hparams.yaml`` beside ``metrics.csv``, as the Trainer's ``CSVLogger`` does. It is tracklight's
    :class:`~tracklight.loggers.CSVLogger` otherwise: an existing ``metrics.csv`` is appended to, never
    deleted, and rows reach the disk within a second and at exit even when ``finalize`` is never called.

    Args:
        root_dir: Directory that holds every experiment (``logger.root_dir``).
        name: Experiment name; ``None`` or ``""`` puts versions directly under ``root_dir``.
        version: ``int`` for ``version_N``, ``str`` for a named directory, ``None`` for the next free one.
        prefix: Put at the start of every metric key, joined with ``-``.
        flush_logs_every_n_steps: Write buffered rows at least this often (and at least once a second).

    Example:
        >>> import tempfile
        >>> from tracklight.fabric.loggers import CSVLogger
        >>> logger = CSVLogger(tempfile.mkdtemp(), name="my_model")
        >>> logger.log_metrics({"loss": 0.235, "acc": 0.75}, step=0)
        >>> logger.finalize("success")
        >>> open(logger.experiment.metrics_file_path).read().splitlines()
        ['acc,loss,step', '0.75,0.235,0']
    """

    def __init__(
        self,
        root_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        super().__init__(root_dir, name, version, prefix, flush_logs_every_n_steps)
