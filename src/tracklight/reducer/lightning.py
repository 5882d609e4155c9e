"""The one-line Lightning opt-in: ``Trainer(callbacks=[LightningReducer()])``.

Every ``self.log``/``self.log_dict`` of the LightningModule, and of callbacks, then goes through
tracklight's reducer, giving the loggers, ``trainer.callback_metrics``, ``trainer.logged_metrics`` and
``trainer.progress_bar_metrics`` what Lightning's own path gives them, at a fraction of the cost per call.

Tested with Lightning 2.2.5, 2.4.0, 2.5.1 and 2.6.6 (``lightning.pytorch``); the extra pins ``>=2.2,<2.7``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from tracklight.reducer._lightning_log import patch_module, unpatch_module
from tracklight.reducer._lightning_loop import LightningStore, ReducerConnector

__all__ = ["LightningReducer"]


class LightningReducer(Callback):
    """Route ``self.log`` through tracklight's reducer for every run of the Trainer it is given to.

    A callback rather than a LightningModule mixin: it needs the Trainer (its loops hold the logged values
    and its logger connector reads them), it covers the callbacks' ``self.log`` too, it works for modules
    you cannot edit (from a library, or built by LightningCLI), and the same module runs with and without it,
    which is how the differential tests compare it with Lightning.

    What changes, compared with Lightning's own path: the cost of a ``self.log`` call (values stay tensors
    on their device until a step is logged or an epoch ends, then cross in one transfer); epoch values with
    ``sync_dist=True`` are reduced in one packed collective with float64 sums and counts (the exact weighted
    mean with uneven batches, where Lightning floors the total batch size); step values with ``sync_dist``
    are reduced across ranks only on steps that reach the loggers (so on other steps ``callback_metrics``
    holds this rank's step value; pass ``sync_steps="every"`` for Lightning's behaviour, still one packed
    collective per step); values sent to the loggers keep float64 precision. A module that overrides ``log``
    keeps its override; its ``super().log()`` still lands in the reducer.

    Args:
        sync_steps: ``"logged"`` (default) reduces ``sync_dist`` step values across ranks only on steps sent
            to the loggers; ``"every"`` on every step.

    Example:
        >>> import lightning.pytorch as pl
        >>> from tracklight.reducer import LightningReducer
        >>> trainer = pl.Trainer(callbacks=[LightningReducer()], logger=False, enable_progress_bar=False,
        ...                      enable_model_summary=False, enable_checkpointing=False)
    """

    def __init__(self, sync_steps: str = "logged") -> None:
        if sync_steps not in ("logged", "every"):
            raise ValueError(
                f"LightningReducer(sync_steps={sync_steps!r}): use 'logged' (reduce sync_dist step values across "
                "ranks on logged steps only) or 'every' (on every step, as Lightning does)."
            )
        self.sync_steps = sync_steps

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        distributed = bool(trainer._accelerator_connector.is_distributed)
        connector = install(trainer)
        connector.sync_every_step = self.sync_steps == "every"
        connector.distributed = distributed
        patch_module(pl_module, distributed=distributed)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        unpatch_module(pl_module)


# Lightning calls each hook of each callback through a profiler context, a few microseconds per hook, about
# ten hooks per step. ``_call_callback_hooks`` skips attributes that are not callable: this callback needs
# only setup and teardown, so it costs nothing per step. (Checkpoint hooks are called directly; they stay.)
for _hook in [name for name in vars(Callback) if name.startswith("on_") and "checkpoint" not in name]:
    setattr(LightningReducer, _hook, None)
del _hook


def install(trainer: pl.Trainer) -> ReducerConnector:
    """Give each of the Trainer's loops a tracklight store and its logger connector the reading side."""
    epoch_loop = trainer.fit_loop.epoch_loop
    loops: list[tuple[Any, bool, str]] = [
        (epoch_loop, True, "train"),
        (epoch_loop.val_loop, False, "validate"),
        (trainer.validate_loop, False, "validate"),
        (trainer.test_loop, False, "test"),
    ]
    for loop, training, stage in loops:
        if not isinstance(loop._results, LightningStore):
            loop._results = LightningStore(training, stage)
    connector = trainer._logger_connector
    if type(connector) is not ReducerConnector:
        connector.__class__ = ReducerConnector
    return connector  # type: ignore[return-value]
