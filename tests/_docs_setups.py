"""Named setups for the Python blocks of README.md and docs/ (run by ``tests/test_docs.py``).

A page gives a block a setup with an HTML comment on the line before its fence (it does not show on the
rendered page)::

    <!-- docs-test: setup=fit -->
    ```python
    class Model(LightningModule):
        def on_train_epoch_end(self):
            self.logger.experiment.add_image("generated_images", image_chw, self.current_epoch)
    ```

``<!-- docs-test: continue -->`` runs a block after the page's previous block, in the same namespace (both
options may be combined: ``setup=fit continue``). Every block runs in a fresh temporary directory, with
W&B, Comet and Neptune offline, MLflow on its SQLite default, no network, and every ``Trainer`` short
(2 epochs of 2 batches unless the block says otherwise). A setup is a function here, registered in
``SETUPS``: it returns the names the block may use, and may return a check to run on the block's
namespace afterwards (``fit`` trains the ``Model`` a block defines, so its hooks really run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Namespace = dict[str, Any]
#: A setup: the working directory -> (names for the block, a check run on its namespace afterwards or None).
Setup = Callable[[Path], tuple[Namespace, Callable[[Namespace], None] | None]]


def _lightning(root: Path) -> tuple[Namespace, None]:
    """``Trainer``, ``LightningModule`` and ``pl_loggers``, as the pages' first lines import them."""
    from lightning.pytorch import LightningModule, Trainer

    from tracklight import loggers as pl_loggers

    return {"Trainer": Trainer, "LightningModule": LightningModule, "pl_loggers": pl_loggers}, None


def _media() -> Namespace:
    import matplotlib.pyplot as plt
    import torch

    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    return {"images": torch.rand(2, 3, 8, 8), "image_chw": torch.rand(3, 8, 8), "figure": figure}


def _fit(root: Path) -> tuple[Namespace, Callable[[Namespace], None]]:
    """The Lightning names and media (``images``, ``image_chw``, ``figure``); then ``Model`` is trained.

    A page's ``Model`` shows only the hooks it is about: it is trained with the training and validation
    steps of Lightning's demo model added, with the block's ``trainer`` or, without one, a ``Trainer`` on
    the first logger the block made.
    """
    names, _ = _lightning(root)
    names.update(_media())

    def train(namespace: Namespace) -> None:
        from lightning.pytorch import Trainer
        from lightning.pytorch.demos.boring_classes import BoringModel

        from tracklight.loggers import Logger

        model_class = namespace.get("Model")
        if model_class is None:
            return
        trainer = namespace.get("trainer")
        if trainer is None:
            logger = next((value for value in namespace.values() if isinstance(value, Logger)), None)
            trainer = Trainer(logger=logger if logger is not None else True)
        trainer.fit(type("DocsModel", (model_class, BoringModel), {})())

    return names, train


def _loggers(root: Path) -> tuple[Namespace, None]:
    """``tb_logger``, ``wandb_logger`` (offline in the tests) and ``csv_logger``, all under ``logs/``."""
    from tracklight.loggers import CSVLogger, TensorBoardLogger, WandbLogger

    return {
        "tb_logger": TensorBoardLogger("logs", name="tensorboard"),
        "wandb_logger": WandbLogger(save_dir="logs"),
        "csv_logger": CSVLogger("logs", name="csv"),
    }, None


class _LoggingModel:
    """Lightning's demo model logging ``train_loss`` and ``val_loss`` (made lazily: it imports Lightning)."""

    @staticmethod
    def make() -> Any:
        from lightning.pytorch.demos.boring_classes import BoringModel

        class LoggingModel(BoringModel):
            def training_step(self, batch: Any, batch_idx: int) -> Any:
                output = super().training_step(batch, batch_idx)
                self.log("train_loss", output["loss"])
                return output

            def validation_step(self, batch: Any, batch_idx: int) -> Any:
                output = super().validation_step(batch, batch_idx)
                self.log("val_loss", output["x"])
                return output

        return LoggingModel()


def _model(root: Path) -> tuple[Namespace, None]:
    """The Lightning names and ``model``, a small LightningModule that logs ``train_loss`` and ``val_loss``."""
    names, _ = _lightning(root)
    names["model"] = _LoggingModel.make()
    return names, None


def _trained_csv(root: Path) -> tuple[Namespace, None]:
    """``logs/my_exp_name/version_0/metrics.csv`` written by a short run, as the CSV page's first block makes."""
    from lightning.pytorch import Trainer

    from tracklight.loggers import CSVLogger

    Trainer(logger=CSVLogger("logs", name="my_exp_name")).fit(_LoggingModel.make())
    return {}, None


def _resume(root: Path) -> tuple[Namespace, None]:
    """The names of ``model`` and a ``checkpoint`` of one epoch of version 0 of ``logs/my_exp_name``."""
    from lightning.pytorch import Trainer

    from tracklight.loggers import CSVLogger

    names, _ = _model(root)
    first = Trainer(logger=CSVLogger("logs", name="my_exp_name", version=0), max_epochs=1)
    first.fit(_LoggingModel.make())
    names["checkpoint"] = first.checkpoint_callback.best_model_path
    return names, None


def _reducer_loop(root: Path) -> tuple[Namespace, Callable[[Namespace], None]]:
    """A hand-written loop's pieces: ``epochs``, ``train_loader``, ``step``, ``val_loaders``, ``compute``..."""
    import torch

    stops: list[float] = []
    names: Namespace = {
        "epochs": 2,
        "train_loader": [torch.rand(4, 2) for _ in range(3)],
        "val_loaders": [[torch.rand(4, 2) for _ in range(2)]],
        "step": lambda batch: batch.pow(2).mean(),
        "compute": lambda batch: batch.mean(),
        "early_stop_on": lambda value: stops.append(float(value)),
    }

    def check(namespace: Namespace) -> None:
        assert len(stops) == 2, "the loop's epoch-end value reached early_stop_on each epoch"

    return names, check


SETUPS: dict[str, Setup] = {
    "lightning": _lightning,
    "fit": _fit,
    "loggers": _loggers,
    "model": _model,
    "trained_csv": _trained_csv,
    "resume": _resume,
    "reducer_loop": _reducer_loop,
}
