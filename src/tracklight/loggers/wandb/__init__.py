"""Weights & Biases: ``WandbLogger`` and ``wait_until_closed`` (the rest of the package is private).

``logger`` is the logger; ``media_api`` its media helpers and ``media`` their conversion to W&B types;
``sink`` hands rows to the run on the worker; ``resume`` continues a run. Imports are absolute, so
``import wandb`` is always the SDK.
"""

from tracklight.loggers.wandb.logger import WandbLogger
from tracklight.loggers.wandb.sink import wait_until_closed

__all__ = ["WandbLogger", "wait_until_closed"]
