"""tracklight loggers inside real Lightning: Trainer, Fabric, LightningCLI, callbacks, checkpoints, ranks."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import DeviceStatsMonitor, LearningRateMonitor
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tracklight import TracklightWarning
from tracklight.loggers import CSVLogger, DummyExperiment, LoggerCollection, TensorBoardLogger


def read_csv(logger: CSVLogger) -> list[dict[str, str]]:
    with open(os.path.join(logger.log_dir, "metrics.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


def read_events(directory: str) -> EventAccumulator:
    accumulator = EventAccumulator(directory, size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def media_index(log_dir: str) -> list[dict[str, Any]]:
    with open(os.path.join(log_dir, "media", "index.jsonl")) as handle:
        return [json.loads(line) for line in handle]


# ---- isinstance, whichever of tracklight and Lightning is imported first ------------------------------

_ISINSTANCE_SCRIPT = """
import importlib, json, sys, tempfile

def lightning_side(package):
    if package == "lightning":
        return importlib.import_module("lightning.pytorch.loggers"), importlib.import_module("lightning.fabric.loggers")
    return importlib.import_module("pytorch_lightning.loggers"), importlib.import_module("lightning_fabric.loggers")

order = sys.argv[1]
if order == "lightning_first":
    sides = {package: lightning_side(package) for package in ("lightning", "pytorch_lightning")}
import tracklight.loggers as tl
if order == "tracklight_first":
    assert "lightning" not in sys.modules and "pytorch_lightning" not in sys.modules
    sides = {package: lightning_side(package) for package in ("lightning", "pytorch_lightning")}

root = tempfile.mkdtemp()
class Custom(tl.Logger):
    name = "custom"
    version = 0
    def log_metrics(self, metrics, step=None): pass
    def log_hyperparams(self, params, *args, **kwargs): pass

instances = {
    "CSVLogger": tl.CSVLogger(root), "TensorBoardLogger": tl.TensorBoardLogger(root),
    "LoggerCollection": tl.LoggerCollection([tl.CSVLogger(root)]), "Custom": Custom(),
}
classes = {name: getattr(tl, name) for name in tl.__all__ if isinstance(getattr(tl, name), type)
           and issubclass(getattr(tl, name), tl.Logger)}
failures = []
for package, (pytorch_loggers, fabric_loggers) in sides.items():
    for base in (pytorch_loggers.Logger, fabric_loggers.Logger):
        for name, cls in classes.items():
            if not issubclass(cls, base):
                failures.append(f"issubclass({name}, {base.__module__}.Logger)")
        for name, obj in instances.items():
            if not isinstance(obj, base):
                failures.append(f"isinstance({name}, {base.__module__}.Logger)")
    # Trainer.log_dir asks for these two by class
    for name in ("CSVLogger", "TensorBoardLogger"):
        if not isinstance(instances[name], getattr(pytorch_loggers, name)):
            failures.append(f"isinstance({name}, {pytorch_loggers.__name__}.{name})")
    if isinstance(instances["CSVLogger"], pytorch_loggers.TensorBoardLogger):
        failures.append(f"CSVLogger counts as {pytorch_loggers.__name__}.TensorBoardLogger")
print(json.dumps({"classes": sorted(classes), "failures": failures}))
"""


@pytest.mark.parametrize("order", ["tracklight_first", "lightning_first"])
def test_every_logger_is_a_lightning_logger_whatever_the_import_order(order: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _ISINSTANCE_SCRIPT, order], capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"Logger", "CSVLogger", "TensorBoardLogger", "LoggerCollection"} <= set(report["classes"])
    assert report["failures"] == []


# ---- Trainer ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("logger_class", [CSVLogger, TensorBoardLogger])
def test_trainer_log_dir_and_checkpoints_follow_the_logger(
    logger_class: type, tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    (tmp_path / "logs" / "exp" / "version_0").mkdir(parents=True)  # an earlier run: ours must be version_1
    logger = logger_class(tmp_path / "logs", name="exp")
    trainer = make_trainer(logger=logger, max_steps=2)
    assert trainer.log_dir == logger.log_dir == str(tmp_path / "logs" / "exp" / "version_1")
    trainer.fit(tiny_model())
    checkpoints = tmp_path / "logs" / "exp" / "version_1" / "checkpoints"
    assert Path(trainer.checkpoint_callback.best_model_path).parent == checkpoints
    assert [path.name for path in checkpoints.iterdir()] == ["epoch=0-step=2.ckpt"]


def test_checkpoints_ignore_tensorboard_sub_dir_like_lightning(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    logger = TensorBoardLogger(tmp_path, name="exp", version="run-a", sub_dir="train")
    trainer = make_trainer(logger=logger, max_steps=1)
    assert trainer.log_dir == str(tmp_path / "exp" / "run-a" / "train")
    trainer.fit(tiny_model())
    assert (tmp_path / "exp" / "run-a" / "checkpoints" / "epoch=0-step=1.ckpt").is_file()
    assert read_events(logger.log_dir).Scalars("train_loss")


def test_single_logger_gets_trainer_metrics_and_hyperparameters(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    logger = CSVLogger(tmp_path)
    trainer = make_trainer(logger=logger)  # one epoch: 4 training steps, then validation
    assert trainer.logger is logger and trainer.loggers == [logger]
    trainer.fit(tiny_model(lr=0.05))
    rows = read_csv(logger)
    assert [row["step"] for row in rows if row["train_loss"]] == ["0", "1", "2", "3"]
    assert [(row["step"], row["epoch"]) for row in rows if row["val_loss"]] == [("3", "0")]
    assert "lr: 0.05" in Path(logger.log_dir, "hparams.yaml").read_text()


def test_list_of_loggers_all_get_the_metrics(tmp_path: Path, tiny_model: type, make_trainer: Any) -> None:
    csv_logger, tb_logger = CSVLogger(tmp_path, name="csv"), TensorBoardLogger(tmp_path, name="tb")
    trainer = make_trainer(logger=[csv_logger, tb_logger], max_steps=3)
    assert trainer.loggers == [csv_logger, tb_logger]
    assert trainer.log_dir == csv_logger.log_dir
    trainer.fit(tiny_model())
    csv_losses = [float(row["train_loss"]) for row in read_csv(csv_logger) if row["train_loss"]]
    tb_losses = [event.value for event in read_events(tb_logger.log_dir).Scalars("train_loss")]
    assert len(csv_losses) == 3
    assert tb_losses == pytest.approx(csv_losses, rel=1e-6)


def test_collection_is_self_logger_and_media_from_a_hook_reach_every_backend(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    collection = LoggerCollection([CSVLogger(tmp_path, name="csv"), TensorBoardLogger(tmp_path, name="tb")])
    seen: list[Any] = []

    class WithImages(tiny_model):  # type: ignore[misc, valid-type]
        def on_train_epoch_end(self) -> None:
            seen.append(self.logger)
            self.logger.log_image("samples", torch.rand(2, 3, 8, 8), step=self.global_step)

    trainer = make_trainer(logger=collection, max_steps=2)
    assert trainer.logger is collection and trainer.loggers == [collection]
    # Lightning's rule for loggers other than its CSV and TensorBoard classes: log_dir is save_dir.
    assert trainer.log_dir == collection.save_dir == str(tmp_path)
    with pytest.warns(TracklightWarning, match="keeps them as files"):
        trainer.fit(WithImages())
    assert seen == [collection]
    csv_logger, tb_logger = collection[CSVLogger], collection[TensorBoardLogger]
    [record] = media_index(csv_logger.log_dir)
    assert (record["key"], record["step"], len(record["files"])) == ("samples", 2, 2)
    events = read_events(tb_logger.log_dir)
    assert [image.step for image in events.Images("samples")] == [2]
    assert len(events.Scalars("train_loss")) == 2
    assert any(row["train_loss"] for row in read_csv(csv_logger))
    ckpt = tmp_path / "csv" / "version_0" / "checkpoints" / "epoch=0-step=2.ckpt"
    assert ckpt.is_file()  # checkpoints follow the first logger
    assert "lr: 0.1" in Path(tb_logger.log_dir, "hparams.yaml").read_text()


def test_save_hyperparameters_reach_hparams_yaml(tmp_path: Path, tiny_model: type, make_trainer: Any) -> None:
    import yaml

    collection = LoggerCollection([CSVLogger(tmp_path, name="csv"), TensorBoardLogger(tmp_path, name="tb")])
    config = {"optimizer": {"momentum": 0.9, "nesterov": True}, "layers": [4, 1]}
    make_trainer(logger=collection, max_steps=1).fit(tiny_model(lr=0.02, config=config))
    for logger in collection.loggers:
        saved = yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text())
        assert saved == {"lr": 0.02, "hidden": 4, "config": config}


def test_learning_rate_and_device_stats_monitors_log_through_tracklight(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    logger = CSVLogger(tmp_path)
    callbacks = [LearningRateMonitor(logging_interval="step"), DeviceStatsMonitor(cpu_stats=True)]
    make_trainer(logger=logger, max_steps=2, callbacks=callbacks).fit(tiny_model(lr=0.03))
    rows = read_csv(logger)
    assert [float(row["lr-SGD"]) for row in rows if row["lr-SGD"]] == [0.03, 0.03]
    device_keys = [key for key in rows[0] if key.startswith("DeviceStatsMonitor.on_train_batch_start")]
    assert any(key.endswith("/cpu_percent") for key in device_keys), list(rows[0])
    assert any(row[device_keys[0]] for row in rows)


# ---- Fabric -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_collection", [False, True], ids=["list", "collection"])
def test_fabric_log_and_log_dict(as_collection: bool, tmp_path: Path) -> None:
    from lightning.fabric import Fabric

    csv_logger, tb_logger = CSVLogger(tmp_path, name="csv"), TensorBoardLogger(tmp_path, name="tb")
    loggers: Any = LoggerCollection([csv_logger, tb_logger]) if as_collection else [csv_logger, tb_logger]
    fabric = Fabric(accelerator="cpu", devices=1, loggers=loggers)
    fabric.log("loss", torch.tensor(0.5), step=0)
    fabric.log_dict({"loss": 0.25, "acc": torch.tensor(0.75)}, step=1)
    for logger in fabric.loggers:
        logger.finalize("success")
    rows = read_csv(csv_logger)
    assert [(row["step"], row["loss"], row["acc"]) for row in rows] == [("0", "0.5", ""), ("1", "0.25", "0.75")]
    events = read_events(tb_logger.log_dir)
    assert [(event.step, event.value) for event in events.Scalars("loss")] == [(0, 0.5), (1, 0.25)]


# ---- LightningCLI -------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning:lightning.pytorch.cli")  # Lightning's use of jsonargparse
def test_lightning_cli_accepts_a_tracklight_logger_class_path(
    tmp_path: Path, tiny_model: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning.pytorch.cli import LightningCLI

    monkeypatch.setattr(sys, "argv", ["train.py"])  # only `args` below, as from the command line
    cli = LightningCLI(
        tiny_model,
        args=[
            "fit",
            "--trainer.logger=tracklight.loggers.CSVLogger",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.logger.init_args.name=cli",
            "--trainer.max_steps=2",
            "--model.lr=0.07",
        ],
        trainer_defaults={
            "accelerator": "cpu",
            "devices": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "log_every_n_steps": 1,
            "limit_val_batches": 1,
        },
        seed_everything_default=0,
    )
    logger = cli.trainer.logger
    assert isinstance(logger, CSVLogger)
    assert logger.log_dir == cli.trainer.log_dir == str(tmp_path / "cli" / "version_0")
    assert Path(logger.log_dir, "config.yaml").is_file()  # SaveConfigCallback writes into trainer.log_dir
    assert len([row for row in read_csv(logger) if row["train_loss"]]) == 2
    assert "lr: 0.07" in Path(logger.log_dir, "hparams.yaml").read_text()


# ---- rank-zero guard ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "tensorboard", "collection"])
def test_rank_one_writes_nothing(kind: str, tmp_path: Path, set_rank: Any) -> None:
    from lightning_utilities.core.rank_zero import rank_zero_only as lightning_rank

    root = tmp_path / "logs"
    makers = {
        "csv": lambda: CSVLogger(root),
        "tensorboard": lambda: TensorBoardLogger(root),
        "collection": lambda: LoggerCollection([CSVLogger(root, name="a"), TensorBoardLogger(root, name="b")]),
    }
    set_rank(1)
    logger = makers[kind]()
    assert isinstance(logger.experiment, DummyExperiment)
    logger.experiment.add_scalar("x", 1.0)  # a no-op, as Lightning's DummyExperiment
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_image("image", torch.rand(3, 4, 4), step=0)
    logger.log_text("note", "hello", step=0)
    logger.save()
    logger.finalize("success")
    assert logger.version == 0 and logger.log_dir.endswith("version_0")
    assert not root.exists()
    set_rank(0)
    assert lightning_rank.rank == 0
    logger.log_metrics({"loss": 2.0}, step=1)
    logger.finalize("success")
    assert root.exists()  # the same object writes once it is rank zero
