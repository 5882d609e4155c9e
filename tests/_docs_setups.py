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
options may be combined: ``setup=fit continue``; several setups: ``setup=fit,model``). Every block runs
in a fresh temporary directory, with W&B, Comet and Neptune offline, MLflow on its SQLite default, no
network but loopback, and every ``Trainer`` short (2 epochs of 2 batches unless the block says otherwise).
A setup is a context manager here, registered in ``SETUPS``: it yields the names the block may use and a
check to run on the block's namespace afterwards, or None (``fit`` trains the ``Model`` a block defines,
so its hooks really run), and undoes what it set up when the block is done.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

Namespace = dict[str, Any]
Check = Callable[[Namespace], None]
#: A setup: the working directory -> a context yielding (names for the block, a check run afterwards or None).
Setup = Callable[[Path], AbstractContextManager[tuple[Namespace, Check | None]]]


def _lightning_names() -> Namespace:
    from lightning.pytorch import LightningModule, Trainer

    from tracklight import loggers as pl_loggers

    return {"Trainer": Trainer, "LightningModule": LightningModule, "pl_loggers": pl_loggers}


@contextmanager
def _lightning(root: Path) -> Iterator[tuple[Namespace, None]]:
    """``Trainer``, ``LightningModule`` and ``pl_loggers``, as the pages' first lines import them."""
    yield _lightning_names(), None


def _media() -> Namespace:
    import matplotlib.pyplot as plt
    import torch

    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    return {"images": torch.rand(2, 3, 8, 8), "image_chw": torch.rand(3, 8, 8), "figure": figure}


@contextmanager
def _fit(root: Path) -> Iterator[tuple[Namespace, Check]]:
    """The Lightning names and media (``images``, ``image_chw``, ``figure``); then ``Model`` is trained.

    A page's ``Model`` shows only the hooks it is about: it is trained with the training and validation
    steps of Lightning's demo model added, with the block's ``trainer`` or, without one, a ``Trainer`` on
    the first logger the block made.
    """

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

    yield {**_lightning_names(), **_media()}, train


def _logging_model() -> Any:
    """Lightning's demo model logging ``train_loss`` and ``val_loss``."""
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


@contextmanager
def _model(root: Path) -> Iterator[tuple[Namespace, None]]:
    """The Lightning names and ``model``, a small LightningModule that logs ``train_loss`` and ``val_loss``."""
    yield {**_lightning_names(), "model": _logging_model()}, None


@contextmanager
def _trained_csv(root: Path) -> Iterator[tuple[Namespace, None]]:
    """``logs/my_exp_name/version_0/metrics.csv`` written by a short run, as the CSV page's first block makes."""
    from lightning.pytorch import Trainer

    from tracklight.loggers import CSVLogger

    Trainer(logger=CSVLogger("logs", name="my_exp_name")).fit(_logging_model())
    yield {}, None


@contextmanager
def _resume(root: Path) -> Iterator[tuple[Namespace, None]]:
    """The Lightning names, ``model`` and a ``checkpoint`` of one epoch of version 0 of ``logs/my_exp_name``."""
    from lightning.pytorch import Trainer

    from tracklight.loggers import CSVLogger

    first = Trainer(logger=CSVLogger("logs", name="my_exp_name", version=0), max_epochs=1)
    first.fit(_logging_model())
    yield (
        {**_lightning_names(), "model": _logging_model(), "checkpoint": first.checkpoint_callback.best_model_path},
        None,
    )


@contextmanager
def _reducer_loop(root: Path) -> Iterator[tuple[Namespace, Check]]:
    """A hand-written loop's pieces: ``epochs``, ``train_loader``, ``step``, ``val_loaders``, ``compute``..."""
    import torch

    stops: list[float] = []

    def check(namespace: Namespace) -> None:
        assert len(stops) == 2, "the loop's epoch-end value reached early_stop_on each epoch"

    yield (
        {
            "epochs": 2,
            "train_loader": [torch.rand(4, 2) for _ in range(3)],
            "val_loaders": [[torch.rand(4, 2) for _ in range(2)]],
            "step": lambda batch: batch.pow(2).mean(),
            "compute": lambda batch: batch.mean(),
            "early_stop_on": lambda value: stops.append(float(value)),
        },
        check,
    )


@contextmanager
def _s3_run(root: Path) -> Iterator[tuple[Namespace, None]]:
    """A real S3 API on 127.0.0.1 (moto) as ``s3://my-bucket``, holding what the object-storage page's first
    block writes: ``logs/resnet/version_0`` (CSV) and ``version_1`` (TensorBoard), with ``train_loss``."""
    import s3fs
    from lightning.pytorch import Trainer

    from _s3_server import s3_environment
    from tracklight.loggers import CSVLogger, TensorBoardLogger

    # fsspec keeps one S3 filesystem per set of options, bound to the endpoint it was made with: this server's
    # endpoint is new, so the cache is emptied going in and coming out.
    s3fs.S3FileSystem.clear_instance_cache()
    with s3_environment() as server, contextlib.ExitStack() as stack:
        stack.callback(s3fs.S3FileSystem.clear_instance_cache)
        store = server.filesystem()
        if store.exists("my-bucket"):  # moto keeps its buckets for the whole process: start from an empty one
            store.rm("my-bucket", recursive=True)
        store.mkdir("my-bucket")
        loggers = [
            CSVLogger("s3://my-bucket/logs", name="resnet"),
            TensorBoardLogger("s3://my-bucket/logs", name="resnet"),
        ]
        Trainer(logger=loggers).fit(_logging_model())
        yield {}, None
        # The server stops after this block: end the runs' upload threads first, so none meets the stopped server
        # (and warns in whatever test runs then).
        for thread in threading.enumerate():
            if thread.name == "tracklight-upload" and hasattr(thread, "stop"):
                thread.stop()


SETUPS: dict[str, Setup] = {
    "lightning": _lightning,
    "fit": _fit,
    "model": _model,
    "trained_csv": _trained_csv,
    "resume": _resume,
    "reducer_loop": _reducer_loop,
    "s3_run": _s3_run,
}
