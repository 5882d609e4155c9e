"""``tracklight.fabric.loggers`` against ``lightning.fabric.loggers``: the same Fabric script, the same files.

Each test runs one Fabric loop with Lightning's Fabric logger and with tracklight's, then compares what is on
disk: the folders and files, ``metrics.csv`` row by row, and the TensorBoard scalars read back with
TensorBoard's ``EventAccumulator``.
"""

from __future__ import annotations

import csv
import inspect
import os
from pathlib import Path
from typing import Any

import lightning.fabric.loggers as lightning_loggers
import pytest
import torch
import yaml
from lightning.fabric import Fabric
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import tracklight.fabric.loggers as fabric_loggers
from tracklight.loggers import CSVLogger as TrainerCSVLogger

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


def _train(logger: Any, dict_values: bool = False) -> None:
    """A Fabric loop as users write it: log_dict with and without a step, log, a key that appears later."""
    fabric = Fabric(accelerator="cpu", devices=1, loggers=logger)
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    for step in range(6):
        loss = model(torch.full((1, 2), float(step))).pow(2).mean()
        fabric.log_dict({"loss": loss.detach(), "acc": step / 10}, step=step)
        if step >= 3:
            fabric.log("val/loss", torch.tensor(step * 0.5), step=step)
        if dict_values:
            fabric.log("pair", {"a": float(step), "b": -float(step)}, step=step)
    fabric.log_dict({"no_step": 1.5})  # step=None: the row number, as in Lightning's Fabric logger
    fabric.logger.finalize("success")


def _layout(root: Path) -> tuple[set[str], set[str]]:
    """The folders under ``root``, and the files that are not event files (whose names hold time and host)."""
    folders, files = set(), set()
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if path.is_dir():
            folders.add(relative)
        elif "tfevents" not in path.name:
            files.add(relative)
    return folders, files


def _rows(path: Path) -> tuple[list[str], list[dict[str, float | None]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [{k: (float(v) if v != "" else None) for k, v in row.items()} for row in reader]
        return list(reader.fieldnames or []), rows


def _scalars(log_dir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{run folder: {tag: [(step, value)]}}`` of every folder holding event files."""
    found: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for folder in sorted({p.parent for p in log_dir.rglob("*tfevents*")}):
        events = EventAccumulator(str(folder))
        events.Reload()
        found["" if folder == log_dir else folder.relative_to(log_dir).as_posix()] = {
            tag: [(e.step, pytest.approx(e.value, rel=1e-6)) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]
        }
    return found


@pytest.mark.parametrize("prefix", ["", "train"])
def test_csv_writes_what_lightnings_fabric_csv_logger_writes(tmp_path: Path, prefix: str) -> None:
    theirs = lightning_loggers.CSVLogger(root_dir=tmp_path / "lightning", name="run", prefix=prefix)
    ours = fabric_loggers.CSVLogger(root_dir=tmp_path / "tracklight", name="run", prefix=prefix)
    _train(theirs)
    _train(ours)
    assert (
        _layout(tmp_path / "lightning")
        == _layout(tmp_path / "tracklight")
        == ({"run", "run/version_0"}, {"run/version_0/metrics.csv"})
    )
    columns, rows = _rows(Path(ours.log_dir) / "metrics.csv")
    assert (columns, rows) == _rows(Path(theirs.log_dir) / "metrics.csv")
    assert len(rows) == 6 + 3 + 1 and rows[-1]["step"] == 9.0  # the row without a step: its row number


def test_tensorboard_writes_what_lightnings_fabric_tensorboard_logger_writes(tmp_path: Path) -> None:
    theirs = lightning_loggers.TensorBoardLogger(root_dir=tmp_path / "lightning", prefix="p", sub_dir="tb")
    ours = fabric_loggers.TensorBoardLogger(root_dir=tmp_path / "tracklight", prefix="p", sub_dir="tb")
    _train(theirs, dict_values=True)
    _train(ours, dict_values=True)
    folders = {"lightning_logs", "lightning_logs/version_0", "lightning_logs/version_0/tb"}
    folders |= {f"lightning_logs/version_0/tb/p-pair_{entry}" for entry in "ab"}
    assert _layout(tmp_path / "lightning") == _layout(tmp_path / "tracklight") == (folders, set())
    expected = _scalars(Path(theirs.log_dir))
    assert expected[""]["p-val/loss"][0] == (3, 1.5) and set(expected) == {"", "p-pair_a", "p-pair_b"}
    assert _scalars(Path(ours.log_dir)) == expected


def test_tensorboard_hyperparameters_reach_the_hparams_tab(tmp_path: Path) -> None:
    loggers = {
        "lightning": lightning_loggers.TensorBoardLogger(root_dir=tmp_path / "lightning"),
        "tracklight": fabric_loggers.TensorBoardLogger(root_dir=tmp_path / "tracklight"),
    }
    seen = {}
    for kind, logger in loggers.items():
        logger.log_hyperparams({"lr": 0.01, "optimizer": "Adam", "layers": {"n": 2}})
        logger.finalize("success")
        events = EventAccumulator(logger.log_dir)
        events.Reload()
        seen[kind] = (events.Scalars("hp_metric")[0].value, set(events.PluginTagToContent("hparams")))
    assert seen["tracklight"][0] == seen["lightning"][0] == -1.0
    assert seen["tracklight"][1] >= seen["lightning"][1] >= {"_hparams_/experiment", "_hparams_/session_start_info"}
    # the documented difference: the hyperparameters are also kept in hparams.yaml
    hparams = Path(loggers["tracklight"].log_dir) / "hparams.yaml"
    assert yaml.safe_load(hparams.read_text()) == {"lr": 0.01, "optimizer": "Adam", "layers": {"n": 2}}
    assert not (Path(loggers["lightning"].log_dir) / "hparams.yaml").exists()


def test_csv_log_hyperparams_writes_hparams_yaml_where_lightnings_raises(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError):
        lightning_loggers.CSVLogger(tmp_path / "lightning").log_hyperparams({"lr": 0.1})
    logger = fabric_loggers.CSVLogger(tmp_path / "tracklight")
    logger.log_hyperparams({"lr": 0.1, "layers": [1, 2]})
    logger.finalize("success")
    assert yaml.safe_load((Path(logger.log_dir) / "hparams.yaml").read_text()) == {"lr": 0.1, "layers": [1, 2]}


@pytest.mark.parametrize("name", ["CSVLogger", "TensorBoardLogger"])
def test_same_arguments_and_directories_as_lightnings_fabric_loggers(tmp_path: Path, name: str) -> None:
    theirs, ours = getattr(lightning_loggers, name), getattr(fabric_loggers, name)
    shape = [(p.name, p.kind, p.default) for p in inspect.signature(theirs).parameters.values()]
    assert [(p.name, p.kind, p.default) for p in inspect.signature(ours).parameters.values()] == shape
    cases: list[dict[str, Any]] = [{}, {"name": None}, {"name": "exp"}, {"name": "exp", "version": "v"}, {"version": 7}]
    for index, kwargs in enumerate(cases):
        seen = []
        for kind, cls in (("lightning", theirs), ("tracklight", ours)):
            root = tmp_path / str(index) / kind
            os.makedirs(root / (kwargs.get("name", "lightning_logs") or "") / "version_4")  # the next one is 5
            logger = cls(root, **kwargs)
            paths = [os.path.relpath(path, root) for path in (logger.root_dir, logger.log_dir)]
            seen.append((paths, logger.name, logger.version))
        assert seen[0] == seen[1], kwargs
        assert isinstance(logger, theirs) and isinstance(logger, lightning_loggers.Logger)


def test_fabric_logger_base_and_trainer_loggers_in_fabric(tmp_path: Path) -> None:
    class PrintLogger(fabric_loggers.Logger):
        name, version = "print", 0
        logged: list[tuple[dict[str, float], int | None]] = []

        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            self.logged.append((dict(metrics), step))

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

    custom = PrintLogger()
    trainer_csv = TrainerCSVLogger(tmp_path)  # the Trainer's loggers work in Fabric too, as Lightning's do
    fabric = Fabric(accelerator="cpu", devices=1, loggers=[custom, trainer_csv])
    fabric.log("x", torch.tensor(2.0), step=3)
    trainer_csv.finalize("success")
    assert custom.logged == [({"x": 2.0}, 3)]
    assert isinstance(custom, lightning_loggers.Logger)
    assert (Path(trainer_csv.log_dir) / "metrics.csv").read_text().splitlines() == ["step,x", "3,2.0"]
