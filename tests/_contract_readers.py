"""Read back, for the contract tests, what the W&B, MLflow, Comet and Neptune loggers stored.

Each ``*_metrics`` reader returns ``{key: {step: value}}`` and each ``*_hparams`` reader the hyperparameters
flattened with ``/``, as :mod:`test_contract` expects. They read what the real SDK stored on disk (W&B's
``run-*.wandb`` files, Comet's offline archives, Neptune's offline operation logs) or, for MLflow, what its
own ``MlflowClient`` reads back from the store. A logger that ``finalize`` ended and then logged to again may
have stored several segments (W&B resumed runs, Comet archives, Neptune offline runs): readers merge them.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

from _comet_neptune_readers import comet_archives, neptune_runs
from _wandb_reader import end_run, read_runs
from tracklight import params

#: ``{metric key: {step: value}}``
Metrics = dict[str, dict[int, float]]

# ---- W&B ----------------------------------------------------------------------------------------------------

#: The history column that holds the trainer's step (W&B's own ``_step`` only counts rows).
WANDB_STEP = "trainer/global_step"


def wandb_metrics(logger: Any) -> Metrics:
    """Every numeric value of every history row of the logger's run, at the row's trainer step."""
    end_run()  # W&B writes the run out when it ends (at exit, or here)
    metrics: Metrics = {}
    for run in read_runs(logger.save_dir, logger.version):
        for row in run.history:
            step = row.get(WANDB_STEP)
            if step is None:
                continue
            for key, value in row.items():
                if key == WANDB_STEP or key.startswith("_"):
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    metrics.setdefault(key, {})[int(step)] = float(value)
    return metrics


def wandb_run_count(root: Path) -> int:
    """How many runs (distinct ids: a resumed run has several segments) are stored under ``root``."""
    end_run()
    return len({run.run_id for run in read_runs(root)})


def wandb_hparams(logger: Any) -> dict[str, Any]:
    """The run's config: each segment of a resumed run updates the keys it sets, as W&B merges them."""
    end_run()
    config: dict[str, Any] = {}
    for run in read_runs(logger.save_dir, logger.version):
        config.update(run.config)
    return params.flatten(config)


# ---- MLflow -------------------------------------------------------------------------------------------------


@functools.cache
def _empty_mlflow_store() -> bytes:
    """The bytes of a new, empty MLflow SQLite store. MLflow's schema migrations take seconds per new store,
    so they run once per process and every test gets a copy."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "mlflow.db")
        store = SqlAlchemyStore(f"sqlite:///{path}", directory)
        store.engine.dispose()
        with open(path, "rb") as handle:
            return handle.read()


def mlflow_store(directory: Path) -> str:
    """The ``sqlite:///`` URI of a new MLflow store, ``mlflow.db`` in ``directory`` (kept if already there)."""
    path = directory / "mlflow.db"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_empty_mlflow_store())
    return f"sqlite:///{path}"


def _mlflow_run(logger: Any) -> tuple[Any, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(logger.experiment.tracking_uri)  # a client of its own, on the logger's store
    return client, client.get_run(logger.run_id)


def mlflow_run_count(directory: Path) -> int:
    """How many runs the store ``mlflow_store(directory)`` holds, in every experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_store(directory))
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    return len(client.search_runs(experiments)) if experiments else 0


def mlflow_metrics(logger: Any) -> Metrics:
    client, run = _mlflow_run(logger)
    return {
        key: {metric.step: metric.value for metric in client.get_metric_history(run.info.run_id, key)}
        for key in run.data.metrics
    }


def mlflow_hparams(logger: Any) -> dict[str, Any]:
    return dict(_mlflow_run(logger)[1].data.params)


# ---- Comet --------------------------------------------------------------------------------------------------

#: Nested parameters are stored as ``outer|inner`` (``log_parameters(..., nested_support=True)``).
COMET_NESTING = "|"


def _comet_archives(logger: Any) -> list[Any]:
    """The archives of the logger's experiment: one per time ``finalize`` ended it."""
    return [archive for archive in comet_archives(logger.save_dir) if archive.key == logger.version]


def comet_experiment_count(directory: Path) -> int:
    """How many experiments (distinct keys: one archive per time an experiment was ended) are in ``directory``."""
    return len({archive.key for archive in comet_archives(directory)})


def comet_metrics(logger: Any) -> Metrics:
    metrics: Metrics = {}
    for archive in _comet_archives(logger):
        for payload in archive.of_type("metric_msg"):
            metric = payload["metric"]
            if metric["step"] is not None:
                metrics.setdefault(metric["metricName"], {})[int(metric["step"])] = float(metric["metricValue"])
    return metrics


def comet_hparams(logger: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for archive in _comet_archives(logger):
        found.update({key.replace(COMET_NESTING, "/"): value for key, value in archive.parameters().items()})
    return found


# ---- Neptune ------------------------------------------------------------------------------------------------

#: The namespace the contract's NeptuneLogger puts everything under (its ``prefix``).
NEPTUNE_PREFIX = "training"
NEPTUNE_HPARAMS = f"{NEPTUNE_PREFIX}/hyperparams/"


def neptune_run_count(data_directory: Path) -> int:
    """How many offline runs a Neptune data directory holds."""
    return len(neptune_runs(data_directory))


def neptune_metrics(logger: Any) -> Metrics:
    """Every float series under the prefix, from every offline run in the logger's data directory (an offline
    run cannot be reopened, so logging after ``finalize`` starts another)."""
    metrics: Metrics = {}
    for run in neptune_runs(logger.save_dir):
        for operation in run.operations:
            if operation["type"] == "LogFloats" and operation["path"][0] == NEPTUNE_PREFIX:
                series = metrics.setdefault("/".join(operation["path"][1:]), {})
                for entry in operation["values"]:
                    series[int(entry["step"])] = float(entry["value"])
    return metrics


def neptune_hparams(logger: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for run in neptune_runs(logger.save_dir):
        found.update(
            {
                path[len(NEPTUNE_HPARAMS) :]: value
                for path, value in run.atoms().items()
                if path.startswith(NEPTUNE_HPARAMS)
            }
        )
    return found
