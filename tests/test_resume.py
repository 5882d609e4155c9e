"""Resume, one piece at a time: the logger contract, CSV and TensorBoard continuing a version with each step once,
the checkpoint record (written, read without running the checkpoint's code), the Trainer hook's edge cases, and
Fabric's ``fabric.save``/``fabric.load`` with the loggers and the reducer. The end-to-end trainings killed and
started again are in test_resume_lightning.py."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import pytest

from tracklight._errors import TracklightWarning
from tracklight.loggers import CSVLogger, LoggerCollection, TensorBoardLogger


def _csv_steps(logger: CSVLogger) -> list[tuple[int, float]]:
    import pandas as pd

    frame = pd.read_csv(logger.experiment.metrics_file_path)
    return list(zip(frame["step"].tolist(), frame["loss"].tolist(), strict=True))


def _first_run(kind: type, root: Path, steps: int = 10, saved_at: int = 5, **kwargs: Any) -> dict[str, Any]:
    """A run logging ``loss = step`` for ``steps`` steps; its state as it was after step ``saved_at``."""
    logger = kind(root, **kwargs)
    state: dict[str, Any] = {}
    for step in range(steps):
        logger.log_metrics({"loss": float(step)}, step=step)
        if step == saved_at:
            state = logger.state_dict()
    logger.finalize("success")
    return state


def _continue(kind: type, root: Path, state: Any, start: int = 6, stop: int = 12, **kwargs: Any) -> Any:
    logger = kind(root, **kwargs)
    logger.load_state_dict(state)
    for step in range(start, stop):
        logger.log_metrics({"loss": step * 10.0}, step=step)
    logger.finalize("success")
    return logger


RESUMED = [(step, float(step)) for step in range(6)] + [(step, step * 10.0) for step in range(6, 12)]


# ---- the contract -----------------------------------------------------------------------------------------


def test_base_logger_state_is_empty_and_loading_does_nothing() -> None:
    from tracklight.loggers import Logger

    class Mine(Logger):
        name = "mine"
        version = 0

        def log_metrics(self, metrics: Any, step: Any = None) -> None:
            pass

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

    mine = Mine()
    assert mine.state_dict() == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mine.load_state_dict({"logger": "Mine", "version": 3})
    assert mine.version == 0


@pytest.mark.parametrize("kind", [CSVLogger, TensorBoardLogger])
def test_state_is_plain_data_naming_the_version_and_last_step(kind: type, tmp_path: Path) -> None:
    state = _first_run(kind, tmp_path, name="exp")
    assert state == {"logger": kind.__name__, "name": "exp", "version": 0, "last_step": 5}
    assert json.loads(json.dumps(state)) == state


def test_csv_continues_the_version_and_moves_the_later_rows_aside(tmp_path: Path) -> None:
    state = _first_run(CSVLogger, tmp_path)
    with pytest.warns(TracklightWarning, match=r"4 row\(s\) .* past step 5 .*metrics\.superseded\.csv"):
        logger = _continue(CSVLogger, tmp_path, state)
    assert logger.version == 0 and os.listdir(tmp_path / "lightning_logs") == ["version_0"]
    assert _csv_steps(logger) == RESUMED
    side = Path(logger.log_dir) / "metrics.superseded.csv"
    assert side.read_text().splitlines() == ["loss,step", "6.0,6", "7.0,7", "8.0,8", "9.0,9"]
    assert logger.state_dict()["last_step"] == 11


def test_csv_resumed_twice_keeps_both_side_files(tmp_path: Path) -> None:
    state = _first_run(CSVLogger, tmp_path)
    with pytest.warns(TracklightWarning, match="superseded.csv"):
        _continue(CSVLogger, tmp_path, state)
    with pytest.warns(TracklightWarning, match="superseded-1.csv"):
        logger = _continue(CSVLogger, tmp_path, state)
    assert _csv_steps(logger) == RESUMED


def test_csv_rows_cut_short_by_a_kill_are_moved_too(tmp_path: Path) -> None:
    state = _first_run(CSVLogger, tmp_path)
    path = tmp_path / "lightning_logs" / "version_0" / "metrics.csv"
    with open(path, "a") as handle:
        handle.write("10.0,1")  # a process killed in the middle of a row
    with pytest.warns(TracklightWarning, match=r"5 row\(s\)"):
        logger = _continue(CSVLogger, tmp_path, state)
    assert _csv_steps(logger) == RESUMED


def test_csv_rows_that_cannot_be_moved_aside_leave_training_going(tmp_path: Path, monkeypatch: Any) -> None:
    import errno

    from tracklight.formats import csv_resume

    def full_disk(*args: Any) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    state = _first_run(CSVLogger, tmp_path)
    monkeypatch.setattr(csv_resume, "_write_side_file", full_disk)  # the fault: the side file cannot be written
    with pytest.warns(TracklightWarning, match="No space left on device"):
        logger = _continue(CSVLogger, tmp_path, state)
    assert logger.version == 0
    assert [step for step, _ in _csv_steps(logger)] == [*range(10), *range(6, 12)]  # nothing lost, nothing cut


def test_tensorboard_shows_each_step_once_in_tensorboard_and_tracklight(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tracklight import runs

    logger = TensorBoardLogger(tmp_path)
    for step in range(10):
        logger.log_metrics({"loss": float(step), "pair": {"a": float(step)}}, step=step)
        if step == 5:
            state = logger.state_dict()
    logger.finalize("success")
    logger = TensorBoardLogger(tmp_path)
    logger.load_state_dict(state)
    for step in range(6, 12):
        logger.log_metrics({"loss": step * 10.0, "pair": {"a": step * 10.0}}, step=step)
    logger.finalize("success")
    assert os.listdir(tmp_path / "lightning_logs") == ["version_0"]
    for folder, tag in ((logger.log_dir, "loss"), (os.path.join(logger.log_dir, "pair_a"), "pair")):
        accumulator = EventAccumulator(folder)
        accumulator.Reload()
        assert [(event.step, event.value) for event in accumulator.Scalars(tag)] == RESUMED
        points = runs.open(folder).metric(tag)
        assert list(zip(points["step"], points["value"], strict=True)) == RESUMED


def test_a_continued_tensorboard_run_keeps_one_hp_metric_placeholder(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first = TensorBoardLogger(tmp_path)
    first.log_hyperparams({"lr": 0.1})  # as the Trainer does at the start of each fit
    first.log_metrics({"loss": 1.0}, step=3)
    state = first.state_dict()
    first.finalize("success")
    again = TensorBoardLogger(tmp_path)
    again.load_state_dict(state)
    again.log_hyperparams({"lr": 0.1})
    again.log_metrics({"loss": 2.0}, step=4)
    again.finalize("success")
    accumulator = EventAccumulator(again.log_dir)
    accumulator.Reload()
    assert [(e.step, e.value) for e in accumulator.Scalars("hp_metric")] == [(0, -1.0)]
    assert [(e.step, e.value) for e in accumulator.Scalars("loss")] == [(3, 1.0), (4, 2.0)]


@pytest.mark.parametrize("kind", [CSVLogger, TensorBoardLogger])
def test_continue_run_false_ignores_the_state(kind: type, tmp_path: Path) -> None:
    state = _first_run(kind, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logger = _continue(kind, tmp_path, state, continue_run=False)
    assert logger.version == 1


@pytest.mark.parametrize("kind", [CSVLogger, TensorBoardLogger])
def test_an_explicit_version_wins(kind: type, tmp_path: Path) -> None:
    state = _first_run(kind, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logger = _continue(kind, tmp_path, state, version="mine")
    assert logger.version == "mine"
    assert sorted(os.listdir(tmp_path / "lightning_logs")) == ["mine", "version_0"]


def test_the_same_explicit_version_still_supersedes_the_later_rows(tmp_path: Path) -> None:
    state = _first_run(CSVLogger, tmp_path)
    with pytest.warns(TracklightWarning, match="superseded"):
        logger = _continue(CSVLogger, tmp_path, state, version=0)
    assert _csv_steps(logger) == RESUMED


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"logger": "TensorBoardLogger"}, "state of a 'TensorBoardLogger'"),
        ({"version": None}, "'version' is None"),
        ({"version": 7}, "is gone"),
        ({"version": "../outside"}, "out of save_dir"),
        ({"last_step": "5"}, "'last_step'"),
        ({"name": "other"}, "experiment 'other'"),
    ],
)
def test_a_state_it_cannot_use_gives_one_warning_and_a_new_run(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    state = {**_first_run(CSVLogger, tmp_path), **change}
    with pytest.warns(TracklightWarning, match=message) as caught:
        logger = _continue(CSVLogger, tmp_path, state)
    assert len(caught) == 1
    assert logger.version == 1


def test_a_state_loaded_after_the_run_started_changes_nothing(tmp_path: Path) -> None:
    state = _first_run(CSVLogger, tmp_path)
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    with pytest.warns(TracklightWarning, match="after the run started"):
        logger.load_state_dict(state)
    logger.finalize("success")
    assert logger.version == 1


def test_a_collection_saves_and_loads_each_of_its_loggers(tmp_path: Path) -> None:
    first = LoggerCollection([CSVLogger(tmp_path, name="c"), TensorBoardLogger(tmp_path, name="t")])
    first.log_metrics({"loss": 1.0}, step=3)
    state = first.state_dict()
    first.finalize("success")
    assert state == {
        "logger": "LoggerCollection",
        "loggers": [
            {"logger": "CSVLogger", "name": "c", "version": 0, "last_step": 3},
            {"logger": "TensorBoardLogger", "name": "t", "version": 0, "last_step": 3},
        ],
    }
    # Another order, and one more logger: each gets the state of its own class.
    again = LoggerCollection(
        [TensorBoardLogger(tmp_path, name="t"), CSVLogger(tmp_path, name="new"), CSVLogger(tmp_path, name="c")]
    )
    with pytest.warns(TracklightWarning, match="experiment 'c'"):  # the first CSVLogger gets the CSV state
        again.load_state_dict(state)
    assert [logger.version for logger in again.loggers] == [0, 0, 1]


# ---- the checkpoint record ----------------------------------------------------------------------------------


class _Boom:
    """Unpickling it would run code: the record reader must never do that."""

    def __reduce__(self) -> Any:
        return (os.makedirs, ("/tmp/tracklight-must-not-exist",))


def test_the_record_is_read_without_running_the_checkpoint_code(tmp_path: Path) -> None:
    import torch

    from tracklight import _checkpoint_record

    record = {"format": 1, "loggers": [{"logger": "CSVLogger", "version": 2, "last_step": None}]}
    path = tmp_path / "a.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(3)}, "boom": _Boom(), "tracklight": record}, path)
    assert _checkpoint_record.read(path) == record
    assert not os.path.exists("/tmp/tracklight-must-not-exist")
    torch.save({"state_dict": {"w": torch.zeros(3)}}, tmp_path / "b.ckpt")
    assert _checkpoint_record.read(tmp_path / "b.ckpt") is None
    (tmp_path / "c.ckpt").write_bytes(pickle.dumps({"tracklight": record}))  # not torch's zip format
    assert _checkpoint_record.read(tmp_path / "c.ckpt") is None
    sharded = tmp_path / "sharded.ckpt"  # an FSDP sharded checkpoint: a folder whose meta.pt holds the rest
    sharded.mkdir()
    torch.save({"tracklight": record}, sharded / "meta.pt")
    assert _checkpoint_record.read(sharded) == record
    import fsspec

    with fsspec.open("memory://ckpts/d.ckpt", "wb") as handle:  # a checkpoint at a URL
        torch.save({"tracklight": record}, handle)
    assert _checkpoint_record.read("memory://ckpts/d.ckpt") == record


def test_a_trainer_checkpoint_holds_the_record_as_plain_data(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    import torch

    trainer = make_trainer(logger=[CSVLogger(tmp_path, name="c"), TensorBoardLogger(tmp_path, name="t")])
    trainer.fit(tiny_model())
    trainer.save_checkpoint(tmp_path / "done.ckpt")
    checkpoint = torch.load(tmp_path / "done.ckpt", weights_only=True)  # loadable with no tracklight class
    assert checkpoint["tracklight"] == {
        "format": 1,
        "loggers": [
            {"logger": "CSVLogger", "name": "c", "version": 0, "last_step": 3},
            {"logger": "TensorBoardLogger", "name": "t", "version": 0, "last_step": 3},
        ],
    }
    (saved,) = (tmp_path / "c" / "version_0" / "checkpoints").glob("*.ckpt")  # ModelCheckpoint's, at epoch end
    assert torch.load(saved, weights_only=True)["tracklight"] == checkpoint["tracklight"]


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # Lightning's: each new version has its own folder
def test_fit_resumes_as_before_without_a_record_and_warns_once_for_a_bad_one(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    import torch

    make_trainer(logger=CSVLogger(tmp_path), max_steps=2).fit(tiny_model())
    (last,) = (tmp_path / "lightning_logs" / "version_0" / "checkpoints").glob("*.ckpt")
    checkpoint = torch.load(last, weights_only=True)
    del checkpoint["tracklight"]  # what Lightning's own loggers (or tracklight before resume) write
    torch.save(checkpoint, tmp_path / "plain.ckpt")
    logger = CSVLogger(tmp_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=TracklightWarning)
        make_trainer(logger=logger, max_steps=4).fit(tiny_model(), ckpt_path=tmp_path / "plain.ckpt")
    assert logger.version == 1

    checkpoint["tracklight"] = {"format": 99, "loggers": []}
    torch.save(checkpoint, tmp_path / "future.ckpt")
    logger = CSVLogger(tmp_path)
    with pytest.warns(TracklightWarning, match="format 99") as caught:
        make_trainer(logger=logger, max_steps=4).fit(tiny_model(), ckpt_path=tmp_path / "future.ckpt")
    assert len([w for w in caught if issubclass(w.category, TracklightWarning)]) == 1
    assert logger.version == 2


# ---- Fabric and the reducer ---------------------------------------------------------------------------------


def test_fabric_save_and_load_continue_one_run(tmp_path: Path) -> None:
    import pandas as pd
    import torch
    from lightning.fabric import Fabric
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tracklight.reducer import MetricReducer

    def session(generation: int, load: bool) -> tuple[CSVLogger, TensorBoardLogger]:
        csv_logger, tb_logger = CSVLogger(tmp_path, name="c"), TensorBoardLogger(tmp_path, name="t")
        fabric = Fabric(accelerator="cpu", devices=1, loggers=[csv_logger, tb_logger])
        model = torch.nn.Linear(2, 1)
        reducer = MetricReducer(fabric.loggers, log_every_n_steps=1)
        state = {"model": model, "csv": csv_logger, "tb": tb_logger, "reducer": reducer}
        if load:
            fabric.load(tmp_path / "state.ckpt", state)
        reducer.start_epoch("train")
        while reducer.global_step < 8:
            if generation == 1 and reducer.global_step == 4:
                fabric.save(tmp_path / "state.ckpt", state)
            reducer.log("gen", torch.tensor(float(generation)))
            reducer.step()
            if generation == 1 and reducer.global_step == 6:
                break  # "killed" after logging steps 4 and 5 past the save
        reducer.end_epoch()
        for logger in (csv_logger, tb_logger):
            logger.finalize("success")
        return csv_logger, tb_logger

    session(1, load=False)
    with pytest.warns(TracklightWarning, match="superseded"):
        csv_logger, tb_logger = session(2, load=True)
    assert (csv_logger.version, tb_logger.version) == (0, 0)
    frame = pd.read_csv(csv_logger.experiment.metrics_file_path).dropna(subset=["gen"])
    assert frame["step"].tolist() == list(range(8))
    assert frame["gen"].tolist() == [1.0] * 4 + [2.0] * 4
    accumulator = EventAccumulator(tb_logger.log_dir)
    accumulator.Reload()
    assert [(e.step, e.value) for e in accumulator.Scalars("gen")] == [(s, 1.0 if s < 4 else 2.0) for s in range(8)]


def test_reducer_state_round_trip_and_bad_state() -> None:
    from tracklight.reducer import LoggingMisuseError, MetricReducer

    reducer = MetricReducer()
    reducer.global_step, reducer.current_epoch = 7, 2
    other = MetricReducer()
    other.load_state_dict(reducer.state_dict())
    assert (other.global_step, other.current_epoch) == (7, 2)
    with pytest.raises(LoggingMisuseError, match="'global_step'"):
        other.load_state_dict({"global_step": -1, "current_epoch": 0})
