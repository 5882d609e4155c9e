"""Fabric's loggers, as ``lightning.fabric.loggers`` names them: ``Fabric(loggers=CSVLogger("logs"))``.

Same arguments (``root_dir=``, ``name=``, ``version=``, ``prefix=`` ...) and the same files as Lightning's
Fabric loggers, built on tracklight's :class:`~tracklight.loggers.CSVLogger` and
:class:`~tracklight.loggers.TensorBoardLogger`. The remote loggers (W&B, MLflow, Comet, Neptune) have no
Fabric variant in Lightning either: pass ``tracklight.loggers.WandbLogger(...)`` and the others as they are.

Example:
    >>> import tempfile
    >>> from tracklight.fabric.loggers import CSVLogger
    >>> logger = CSVLogger(root_dir=tempfile.mkdtemp(), name="my_model")
    >>> logger.log_metrics({"loss": 0.5}, step=0)
    >>> logger.finalize("success")
"""

# No `from __future__ import annotations` and no typing imports here: the namespace holds only its own names.
from tracklight.fabric.loggers.csv_logs import CSVLogger
from tracklight.fabric.loggers.logger import Logger
from tracklight.fabric.loggers.tensorboard import TensorBoardLogger

__all__ = ["CSVLogger", "Logger", "TensorBoardLogger"]
