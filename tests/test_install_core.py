"""What ``pip install tracklight`` promises with no extra: CSV logging, the collection, custom loggers, hparams.

This module imports nothing beyond tracklight's own dependencies (numpy, PyYAML) and pytest, so
``scripts/wheel_check.py`` runs it in a fresh virtual environment where only the built wheel is installed:
no torch, no Lightning, no SDK. It runs with the rest of the suite too, where every SDK is installed;
there a missing SDK is simulated the way Python allows it, with ``None`` in ``sys.modules``.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
import yaml

import tracklight
from tracklight import MissingDependencyError, TracklightWarning, params
from tracklight._imports import is_available, require
from tracklight._install import install_command
from tracklight.loggers import (
    CometLogger,
    CSVLogger,
    DummyExperiment,
    Logger,
    LoggerCollection,
    MLFlowLogger,
    NeptuneLogger,
    TensorBoardLogger,
    WandbLogger,
    rank_zero_experiment,
    rank_zero_only,
)

#: Set by scripts/wheel_check.py: the tests then also check that they run on the wheel, without extras.
IN_WHEEL_CHECK = os.environ.get("TRACKLIGHT_WHEEL_CHECK") == "core"


def _rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_tests_run_on_the_install_they_mean_to() -> None:
    if IN_WHEEL_CHECK:
        assert "site-packages" in tracklight.__file__, tracklight.__file__  # the wheel, not the source tree
        assert not any(is_available(name) for name in ("torch", "lightning", "tensorboard", "wandb", "mlflow"))
    else:
        assert tracklight.__file__.endswith(os.path.join("tracklight", "__init__.py"))
    assert isinstance(tracklight.__version__, str)


def test_the_torch_free_parts_of_the_package_import() -> None:
    from tracklight.reducer import REDUCTIONS, InvalidMetricError, LoggingMisuseError, SyncMismatchError

    assert "mean" in REDUCTIONS
    assert issubclass(InvalidMetricError, tracklight.TracklightError)
    assert issubclass(LoggingMisuseError, Exception) and issubclass(SyncMismatchError, Exception)
    assert tracklight.media.Table is not None


def test_csv_logger_end_to_end(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="exp")
    logger.log_hyperparams(Namespace(lr=0.01, optimizer={"name": "adam", "betas": [0.9, 0.999]}))
    for step in range(3):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    logger.log_metrics({"val_loss": 0.25, "epoch": 0}, step=2)  # a new key grows the header
    logger.finalize("success")

    assert logger.log_dir == os.path.join(str(tmp_path), "exp", "version_0")
    rows = _rows(os.path.join(logger.log_dir, "metrics.csv"))
    assert list(rows[0]) == ["epoch", "loss", "step", "val_loss"]
    assert [(row["step"], row["loss"], row["val_loss"]) for row in rows] == [
        ("0", "1.0", ""),
        ("1", "0.5", ""),
        ("2", "0.3333333333333333", ""),
        ("2", "", "0.25"),
    ]
    with open(os.path.join(logger.log_dir, "hparams.yaml")) as handle:
        assert yaml.safe_load(handle) == {"lr": 0.01, "optimizer": {"name": "adam", "betas": [0.9, 0.999]}}

    again = CSVLogger(tmp_path, name="exp", version=0)  # resuming a version appends to it
    again.log_metrics({"loss": 0.1}, step=3)
    again.finalize("success")
    assert len(_rows(os.path.join(logger.log_dir, "metrics.csv"))) == 5
    assert CSVLogger(tmp_path, name="exp").version == 1


class _Recorder(Logger):
    """A custom logger written the way Lightning's docs show."""

    def __init__(self) -> None:
        self.metrics: list[tuple[int | None, dict[str, Any]]] = []
        self.params: list[Any] = []
        self.statuses: list[str] = []

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> str:
        return "0"

    @property
    @rank_zero_experiment
    def experiment(self) -> list[Any]:
        return self.metrics

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.metrics.append((step, dict(metrics)))

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self.params.append(params)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.statuses.append(status)


class _Broken(_Recorder):
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        raise OSError("disk full")


def test_custom_logger_and_the_collection(tmp_path: Path) -> None:
    recorder, csv_logger = _Recorder(), CSVLogger(tmp_path, name="csv")
    loggers = LoggerCollection([recorder, csv_logger, _Broken()])
    assert (loggers.name, loggers.version) == ("recorder", "0")
    loggers.log_hyperparams({"lr": 0.1})
    with pytest.warns(TracklightWarning, match="disk full"):  # one failing logger does not stop the others
        loggers.log_metrics({"loss": 0.5}, step=0)
    loggers.log_metrics({"loss": 0.4}, step=1)
    loggers.finalize("success")

    assert recorder.metrics == [(0, {"loss": 0.5}), (1, {"loss": 0.4})]
    assert recorder.params == [{"lr": 0.1}] and recorder.statuses == ["success"]
    assert [row["loss"] for row in _rows(os.path.join(csv_logger.log_dir, "metrics.csv"))] == ["0.5", "0.4"]
    assert loggers["csv"] is csv_logger and loggers[_Recorder] is recorder
    assert not isinstance(recorder.experiment, DummyExperiment)


def test_hyperparameters_become_plain_safe_values(tmp_path: Path) -> None:
    class Color:
        def __str__(self) -> str:
            return "red"

    clean, notes = params.sanitize({"lr": 0.1, "path": Path("/data"), "color": Color(), "nested": {"k": (1, 2)}})
    assert clean == {"lr": 0.1, "path": "/data", "color": "red", "nested": {"k": [1, 2]}}
    assert any("color" in note for note in notes)
    assert params.flatten({"a": {"b": 1}, "c": 2}) == {"a/b": 1, "c": 2}
    assert yaml.safe_load(params.to_yaml(clean)) == clean


@pytest.mark.parametrize(
    ("make", "module", "extra"),
    [
        (lambda path: TensorBoardLogger(path), "tensorboard", "tensorboard"),
        (lambda path: WandbLogger(save_dir=path), "wandb", "wandb"),
        (lambda path: MLFlowLogger(save_dir=str(path)), "mlflow", "mlflow"),
        (lambda path: CometLogger(online=False, offline_directory=str(path)), "comet_ml", "comet"),
        (lambda path: NeptuneLogger(mode="offline"), "neptune", "neptune"),
    ],
    ids=["tensorboard", "wandb", "mlflow", "comet", "neptune"],
)
def test_a_logger_whose_sdk_is_missing_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make: Any, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # how Python marks a module as not importable
    # The extra as this install takes it: 'tracklight[X]' from an index, the wheel file or the clone otherwise.
    with pytest.raises(MissingDependencyError, match=re.escape(install_command(extra))):
        make(tmp_path)
    assert not os.listdir(tmp_path)  # nothing was created on the way


def test_missing_torch_says_to_install_torch_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(
        MissingDependencyError, match=rf"install it first.*, then {re.escape(install_command('lightning'))}"
    ):
        require("torch", "lightning")
