"""The backends the contract and fuzz tests run over, offline, each with how to make a logger and read back
what it stored.

Every backend appends one :class:`Backend` to ``BACKENDS``: how to make a fresh logger under a directory,
and how to read back, after ``finalize``, the metrics and hyperparameters it recorded (with the backend's
own reader where it has one). :func:`isolated_backends` puts every SDK offline, under a test's directory.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from _comet_neptune_readers import refuse_network
from _contract_readers import (
    NEPTUNE_PREFIX,
    comet_experiment_count,
    comet_hparams,
    comet_metrics,
    mlflow_hparams,
    mlflow_metrics,
    mlflow_run_count,
    mlflow_store,
    neptune_hparams,
    neptune_metrics,
    neptune_run_count,
    wandb_hparams,
    wandb_metrics,
    wandb_run_count,
)
from _offline import COMET_QUIET, NEPTUNE_QUIET, runs_left_open
from _wandb_reader import offline_env
from tracklight import params
from tracklight.loggers import (
    CometLogger,
    CSVLogger,
    LoggerCollection,
    MLFlowLogger,
    NeptuneLogger,
    TensorBoardLogger,
    WandbLogger,
)

#: ``{metric key: {step: value}}``
Metrics = dict[str, dict[int, float]]


@dataclasses.dataclass(frozen=True)
class Backend:
    id: str
    #: A fresh logger that writes under the given directory (which may not exist yet).
    make: Callable[[Path], Any]
    #: What the finalized logger recorded, read back from where it wrote it.
    read_metrics: Callable[[Any], Metrics]
    #: The recorded hyperparameters, flattened with "/" (``{"optimizer/lr": 0.1}``).
    read_hparams: Callable[[Any], dict[str, Any]]
    #: How many runs (version folders, SDK runs, experiments) were made under the directory ``make`` was given:
    #: for a collection, the most any of its loggers made.
    count_runs: Callable[[Path], int]


def read_csv_metrics(logger: CSVLogger) -> Metrics:
    metrics: Metrics = {}
    with open(os.path.join(logger.log_dir, "metrics.csv"), newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(row.pop("step"))
            for key, value in row.items():
                if value != "":
                    metrics.setdefault(key, {})[step] = float(value)
    return metrics


def read_tensorboard_metrics(logger: TensorBoardLogger) -> Metrics:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: {event.step: event.value for event in accumulator.Scalars(tag)} for tag in accumulator.Tags()["scalars"]
    }


def _read_hparams_yaml(logger: Any) -> dict[str, Any]:
    with open(os.path.join(logger.log_dir, "hparams.yaml")) as handle:
        return params.flatten(yaml.safe_load(handle) or {})


def _read_collection_metrics(collection: LoggerCollection) -> Metrics:
    from_csv = read_csv_metrics(collection[CSVLogger])
    from_tensorboard = read_tensorboard_metrics(collection[TensorBoardLogger])
    for key, values in from_csv.items():  # both members got every value
        assert from_tensorboard[key] == pytest.approx(values, rel=1e-6), key
    return from_csv


def _read_collection_hparams(collection: LoggerCollection) -> dict[str, Any]:
    from_csv = _read_hparams_yaml(collection[CSVLogger])
    assert _read_hparams_yaml(collection[TensorBoardLogger]) == from_csv
    return from_csv


def _versions(root: Path) -> int:
    """Version folders under ``root``'s default experiment name."""
    folder = root / "lightning_logs"
    return len(list(folder.iterdir())) if folder.is_dir() else 0


BACKENDS: list[Backend] = [
    Backend("csv", lambda root: CSVLogger(root), read_csv_metrics, _read_hparams_yaml, _versions),
    Backend(
        "tensorboard", lambda root: TensorBoardLogger(root), read_tensorboard_metrics, _read_hparams_yaml, _versions
    ),
    Backend(
        "collection",
        lambda root: LoggerCollection([CSVLogger(root / "csv"), TensorBoardLogger(root / "tb")]),
        _read_collection_metrics,
        _read_collection_hparams,
        lambda root: max(_versions(root / "csv"), _versions(root / "tb")),
    ),
    Backend(
        "wandb", lambda root: WandbLogger(save_dir=root, offline=True), wandb_metrics, wandb_hparams, wandb_run_count
    ),
    # The store is a file beside `root` (nothing may exist under `root` before the logger writes), copied
    # from an empty one: MLflow takes seconds to create each new store.
    Backend(
        "mlflow",
        lambda root: MLFlowLogger(tracking_uri=mlflow_store(root.parent), save_dir=str(root)),
        mlflow_metrics,
        mlflow_hparams,
        lambda root: mlflow_run_count(root.parent),
    ),
    Backend(
        "comet",
        lambda root: CometLogger(save_dir=str(root), online=False, **COMET_QUIET),
        comet_metrics,
        comet_hparams,
        comet_experiment_count,
    ),
    # Neptune has no directory argument: the `isolated` fixture points NEPTUNE_DATA_DIRECTORY at root/.neptune.
    Backend(
        "neptune",
        lambda root: NeptuneLogger(mode="offline", prefix=NEPTUNE_PREFIX, **NEPTUNE_QUIET),
        neptune_metrics,
        neptune_hparams,
        lambda root: neptune_run_count(root / ".neptune"),
    ),
]


# ---- fixtures ------------------------------------------------------------------------------------------


def backend_fixtures() -> tuple[Any, Any, Any, Any]:
    """The fixtures of a test module that runs over every backend, offline:
    ``backend, root, isolated, wandb_service = backend_fixtures()`` at its top level."""

    @pytest.fixture(params=BACKENDS, ids=[backend.id for backend in BACKENDS])
    def backend(request: pytest.FixtureRequest) -> Backend:
        return request.param

    @pytest.fixture
    def root(tmp_path: Path) -> Path:
        return tmp_path / "logs"

    @pytest.fixture(autouse=True)
    def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, root: Path) -> Iterator[None]:
        """Every backend offline, its files under ``tmp_path``, no network (an attempt fails the test)."""
        yield from isolated_backends(monkeypatch, tmp_path, root)

    @pytest.fixture(autouse=True, scope="module")
    def wandb_service() -> Iterator[None]:
        """W&B's service is started once for the module (it is slow to start) and shut down afterwards."""
        yield
        teardown_wandb()

    return backend, root, isolated, wandb_service


def isolated_backends(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, root: Path) -> Iterator[None]:
    """Every backend offline, its files under ``tmp_path``, no network (an attempt fails the test), no leftovers."""
    monkeypatch.chdir(tmp_path)  # SDK defaults relative to the working directory land here
    offline_env(monkeypatch, tmp_path)  # W&B
    for name in (
        "COMET_API_KEY",
        "COMET_START_ONLINE",
        "COMET_OFFLINE_DIRECTORY",
        "COMET_EXPERIMENT_KEY",
        "COMET_PROJECT_NAME",
        "COMET_WORKSPACE",
        "COMET_START_MODE",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_RUN_ID",
        "NEPTUNE_API_TOKEN",
        "NEPTUNE_PROJECT",
        "NEPTUNE_CUSTOM_RUN_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEPTUNE_MODE", "offline")
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", str(root / ".neptune"))
    attempts = refuse_network(monkeypatch)
    end_runs = runs_left_open(monkeypatch)
    yield
    end_runs()
    assert attempts == [], "the loggers must work offline without trying the network"


def teardown_wandb() -> None:
    """Shut W&B's service down (it is started once per module: it is slow to start)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()
