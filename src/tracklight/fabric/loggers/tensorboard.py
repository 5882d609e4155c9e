"""Fabric's ``TensorBoardLogger``: ``root_dir/name/version_N[/sub_dir]``, Lightning Fabric's arguments."""

from __future__ import annotations

import os
from typing import Any

from tracklight.fabric.loggers._layout import FabricDirs
from tracklight.loggers import tensorboard

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(FabricDirs, tensorboard.TensorBoardLogger):
    r"""Log to ``root_dir/name/version_N[/sub_dir]`` in TensorBoard's format, as Lightning Fabric's
    ``TensorBoardLogger`` does.

    Unlike the Trainer's logger it takes no ``log_graph`` flag: ``log_graph(model, input_array)`` always adds
    the graph, and no ``hparams.yaml`` is written unless hyperparameters are logged (then it is written beside
    the event files, which hold them for TensorBoard's HPARAMS tab as Lightning's do).

    Args:
        root_dir: Directory that holds every experiment (``logger.root_dir``).
        name: Experiment name; ``None`` or ``""`` puts versions directly under ``root_dir``.
        version: ``int`` for ``version_N``, ``str`` for a named directory, ``None`` for the next free one.
        default_hp_metric: Log a placeholder ``hp_metric`` of -1 with the hyperparameters.
        prefix: Put at the start of every metric key, joined with ``-``.
        sub_dir: A sub-directory of the version directory to write into.
        \**kwargs: Passed to ``SummaryWriter`` (for example ``flush_secs``, ``max_queue``).

    Example:
        >>> import tempfile
        >>> from tracklight.fabric.loggers import TensorBoardLogger
        >>> logger = TensorBoardLogger(tempfile.mkdtemp(), name="my_model")
        >>> logger.log_hyperparams({"epochs": 5, "optimizer": "Adam"})
        >>> logger.log_metrics({"acc": 0.75}, step=1)
        >>> logger.finalize("success")
    """

    def __init__(
        self,
        root_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        default_hp_metric: bool = True,
        prefix: str = "",
        sub_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            root_dir,
            name,
            version,
            log_graph=True,
            default_hp_metric=default_hp_metric,
            prefix=prefix,
            sub_dir=sub_dir,
            **kwargs,
        )

    def _save_hparams_once(self) -> None:
        """Nothing: Lightning's Fabric logger writes no ``hparams.yaml`` of its own accord."""
