"""A custom logger written the way Lightning's docs show, on tracklight's base class, works in a Trainer."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch.utilities import rank_zero_only as lightning_rank_zero_only

from tracklight.loggers import Logger, rank_zero_experiment, rank_zero_only


def _make_custom_logger(decorator: Any) -> type:
    """The docs' ``MyLogger``, with records kept so the test can see what it received."""

    class MyLogger(Logger):
        def __init__(self) -> None:
            self.metrics: list[tuple[int | None, dict[str, float]]] = []
            self.hyperparams: list[Any] = []
            self.saves = 0
            self.statuses: list[str] = []

        @property
        def name(self) -> str:
            return "MyLogger"

        @property
        def version(self) -> str:
            return "0.1"

        @property
        @rank_zero_experiment
        def experiment(self) -> dict[str, Any]:
            return {"kind": "my-experiment"}

        @decorator
        def log_hyperparams(self, params: Any) -> None:
            self.hyperparams.append(params)

        @decorator
        def log_metrics(self, metrics: dict[str, float], step: int | None) -> None:
            self.metrics.append((step, dict(metrics)))

        @decorator
        def save(self) -> None:
            self.saves += 1

        @decorator
        def finalize(self, status: str) -> None:
            self.statuses.append(status)

    return MyLogger


DECORATORS = pytest.mark.parametrize(
    "decorator",
    [rank_zero_only, lightning_rank_zero_only],
    ids=["tracklight.rank_zero_only", "lightning.rank_zero_only"],
)


@DECORATORS
def test_docs_custom_logger_receives_metrics_and_hyperparameters(
    decorator: Any, tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    from lightning.pytorch.loggers import Logger as LightningLogger

    logger = _make_custom_logger(decorator)()
    assert isinstance(logger, LightningLogger)
    trainer = make_trainer(logger=logger)
    trainer.fit(tiny_model(lr=0.04))

    assert logger.hyperparams == [{"lr": 0.04, "hidden": 4, "config": None}]
    train_steps = [step for step, metrics in logger.metrics if "train_loss" in metrics]
    assert train_steps == [0, 1, 2, 3]
    assert all(type(value) in (float, int) for _, metrics in logger.metrics for value in metrics.values())
    assert [metrics["val_loss"] for _, metrics in logger.metrics if "val_loss" in metrics]
    assert logger.saves >= 1 and logger.statuses == ["success"]
    # No save_dir: checkpoints go to default_root_dir/name/version, Lightning's rule for such loggers.
    assert (tmp_path / "MyLogger" / "0.1" / "checkpoints" / "epoch=0-step=4.ckpt").is_file()
    assert trainer.log_dir is None
    assert logger.experiment == {"kind": "my-experiment"}


@DECORATORS
def test_docs_custom_logger_is_silent_on_other_ranks(decorator: Any, set_rank: Any) -> None:
    from tracklight.loggers import DummyExperiment

    logger = _make_custom_logger(decorator)()
    set_rank(1)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_hyperparams(Namespace(lr=0.1))
    logger.save()
    logger.finalize("success")
    assert isinstance(logger.experiment, DummyExperiment)
    assert (logger.metrics, logger.hyperparams, logger.saves, logger.statuses) == ([], [], 0, [])
    set_rank(0)
    logger.log_metrics({"loss": 1.0}, step=0)
    assert logger.metrics == [(0, {"loss": 1.0})]


def test_custom_logger_inherits_the_media_api(tmp_path: Path) -> None:
    """A subclass that only defines the abstract parts gets every media method, kept as files under save_dir."""
    import numpy as np

    from tracklight import TracklightWarning

    class FolderLogger(_make_custom_logger(rank_zero_only)):  # type: ignore[misc]
        @property
        def save_dir(self) -> str:
            return str(tmp_path)

    logger = FolderLogger()
    with pytest.warns(TracklightWarning, match="keeps them as files") as caught:
        logger.log_image("picture", np.zeros((4, 4, 3)), step=1)
        logger.log_text("note", "hello", step=1)
    assert len(caught) == 2  # one per kind of media
    assert (tmp_path / "media" / "image" / "picture" / "1_0.png").is_file()
    assert (tmp_path / "media" / "text" / "note" / "1_0.md").read_text() == "hello"
