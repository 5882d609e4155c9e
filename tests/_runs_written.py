"""Runs written for real, once per test session, for the tests of ``tracklight.runs`` and the CLI.

* ``tracklight``: one ``Trainer.fit`` logging to every tracklight logger at once (a ``LoggerCollection``);
  the same values reach each backend, so every reader must give the same points.
* ``lightning``: the same model with Lightning's own CSV, TensorBoard, MLflow (a file store, as Lightning's
  default ``file:./mlruns``) and W&B loggers. (Lightning's ``CometLogger`` writes nothing offline:
  ``online=False`` disables the experiment, so there is no Lightning Comet run to read.)
* ``sdk``: each SDK used directly: torch's ``SummaryWriter``, ``wandb.init``, ``comet_ml`` offline,
  ``neptune.init_run(mode="offline")``, ``MlflowClient`` on SQLite.

Everything is offline and under the session's temporary folder; a marker file makes later calls reuse it.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _wandb_reader import offline_env
from conftest import _tiny_module_class

PNG_PIXELS = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)


def _environment(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    offline_env(monkeypatch, root)
    for name in ("COMET_API_KEY", "COMET_START_ONLINE", "COMET_OFFLINE_DIRECTORY", "NEPTUNE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEPTUNE_MODE", "offline")
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", str(root / "neptune" / ".neptune"))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # Lightning's default store is a file store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["train.py"])  # what a training script has: Comet logs argv as parameters


def _trainer(root: Path, logger: Any) -> Any:
    from lightning.pytorch import Trainer

    return Trainer(
        default_root_dir=root,
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        limit_val_batches=1,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=logger,
    )


def written(factory: pytest.TempPathFactory, kind: str) -> Path:
    """The folder holding the runs of ``kind`` (``tracklight``, ``lightning`` or ``sdk``), written on first use."""
    root = factory.getbasetemp() / f"runs-{kind}"
    if (root / ".done").exists():
        return root
    root.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as monkeypatch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _environment(monkeypatch, root)
        {"tracklight": _tracklight, "lightning": _lightning, "sdk": _sdk}[kind](root)
    (root / ".done").touch()
    return root


def _tracklight(root: Path) -> None:
    from tracklight import loggers

    collection = loggers.LoggerCollection(
        [
            loggers.CSVLogger(root, name="csv"),
            loggers.TensorBoardLogger(root, name="tb"),
            loggers.WandbLogger(name="tiny", project="p", save_dir=str(root), offline=True),
            loggers.MLFlowLogger("p", run_name="tiny", save_dir=str(root / "mlflow")),
            loggers.CometLogger(project="p", name="tiny", online=False, offline_directory=str(root / "comet")),
            loggers.NeptuneLogger(name="tiny", mode="offline"),
        ]
    )

    class WithImage(_tiny_module_class()):  # type: ignore[misc]
        def on_train_start(self) -> None:
            self.logger.log_image("samples", PNG_PIXELS, step=0)

    _trainer(root, collection).fit(WithImage(lr=0.05, hidden=4))
    # finalize leaves the SDK runs open, as Lightning's loggers do: end them, as the docs say, so their files are
    # complete (Comet writes its archive, W&B and Neptune their last records) before the readers look.
    import wandb

    wandb.finish()
    collection[loggers.CometLogger].experiment.end()
    collection[loggers.NeptuneLogger].run.stop()


def _lightning(root: Path) -> None:
    from lightning.pytorch import loggers

    chosen = [
        loggers.CSVLogger(root, name="csv"),
        loggers.TensorBoardLogger(root, name="tb"),
        loggers.MLFlowLogger("p", run_name="tiny", tracking_uri=f"file:{root / 'mlruns'}"),
        loggers.WandbLogger(name="tiny", project="p", save_dir=str(root), offline=True),
    ]
    _trainer(root, chosen).fit(_tiny_module_class()(lr=0.2, hidden=4))
    import wandb

    wandb.finish()  # Lightning's WandbLogger leaves the run to end with the process


#: What the SDK runs log: two metrics, 300 steps, a timestamp per point where the SDK takes one.
SDK_STEPS = list(range(0, 600, 2))


def sdk_values(name: str) -> list[float]:
    scale = 1.0 if name == "loss" else 0.001
    return [float(np.float32(scale * (step % 97) + 0.125)) for step in SDK_STEPS]


def _sdk(root: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(root / "summary_writer"))
    for step in SDK_STEPS:  # one event per scalar, tags in turn: the layout torch and Lightning write
        writer.add_scalar("loss", sdk_values("loss")[step // 2], step, walltime=1_700_000_000 + step)
        writer.add_scalar("acc", sdk_values("acc")[step // 2], step, walltime=1_700_000_000 + step)
    writer.add_image("picture", PNG_PIXELS, 3, dataformats="HWC")
    writer.close()

    import wandb

    run = wandb.init(mode="offline", dir=str(root), project="p", name="sdk", config={"lr": 0.5, "opt": {"m": 0.9}})
    for step in SDK_STEPS:
        run.log({"loss": sdk_values("loss")[step // 2], "acc": sdk_values("acc")[step // 2]}, step=step)
    run.finish()

    import comet_ml

    config = comet_ml.ExperimentConfig(
        name="sdk", offline_directory=str(root / "comet"), log_code=False, log_env_host=False
    )
    experiment = comet_ml.start(project="p", online=False, experiment_config=config)
    experiment.log_parameters({"lr": 0.5, "layers": 3})
    for step in SDK_STEPS:
        experiment.log_metric("loss", sdk_values("loss")[step // 2], step=step)
    experiment.end()

    import neptune

    neptune_run = neptune.init_run(mode="offline", name="sdk", capture_hardware_metrics=False, source_files=[])
    neptune_run["parameters"] = {"lr": 0.5, "layers": 3}
    neptune_run["loss"].extend(sdk_values("loss"), steps=SDK_STEPS, timestamps=[1_700_000_000 + s for s in SDK_STEPS])
    neptune_run.stop()

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment_id = client.create_experiment("p", artifact_location=(root / "artifacts").as_uri())
    mlflow_run = client.create_run(experiment_id, run_name="sdk")
    metrics = [
        Metric("loss", value, 1_700_000_000_000 + step, step)
        for step, value in zip(SDK_STEPS, sdk_values("loss"), strict=True)
    ]
    metrics.append(Metric("loss", 7.5, 1_700_000_999_000, SDK_STEPS[-1]))  # a second value at one step
    client.log_batch(mlflow_run.info.run_id, metrics=metrics, params=[Param("lr", "0.5"), Param("layers", "3")])
    client.set_terminated(mlflow_run.info.run_id, "FAILED")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
