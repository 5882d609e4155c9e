"""NeptuneLogger continues its run after a restart (``state_dict``/``load_state_dict``), each step once.

The real client, offline: Neptune cannot reopen an offline run, so the second process writes a new
offline run that names the one it continues (``tracklight/resumed_from``) and the step it took over at
(``tracklight/resumed_after_step``); ``tracklight.runs`` reads the two as one run, the resumed values
winning. The ``async``/``sync`` path (``init_run(with_id=...)``) needs a Neptune server; the arguments it
builds are checked here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _comet_neptune_readers import neptune_runs, refuse_network, stop_started_runs
from tracklight import TracklightWarning, runs
from tracklight.loggers.neptune import NeptuneLogger
from tracklight.loggers.neptune.resume import with_id

QUIET = {"capture_stdout": False, "capture_stderr": False, "capture_hardware_metrics": False}


@pytest.fixture(autouse=True)
def neptune_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("NEPTUNE_API_TOKEN", "NEPTUNE_PROJECT", "NEPTUNE_CUSTOM_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEPTUNE_MODE", "offline")
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", str(tmp_path / ".neptune"))
    refuse_network(monkeypatch)
    return tmp_path / ".neptune"


@pytest.fixture
def stop_runs(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Stop a run as its process's exit does (the logger leaves it open after ``finalize``)."""
    return stop_started_runs(monkeypatch)


def log_steps(logger: NeptuneLogger, steps: range, offset: float = 0.0) -> None:
    for step in steps:
        logger.log_metrics({"loss": offset + step}, step=step)


def test_a_second_logger_continues_the_run_each_step_once(tmp_path: Path, stop_runs: Any) -> None:
    import torch

    first = NeptuneLogger(**QUIET)
    first.log_hyperparams({"lr": 0.1})
    log_steps(first, range(5))
    torch.save({"logger": first.state_dict()}, tmp_path / "ckpt.pt")  # as Fabric saves it, at step 4
    log_steps(first, range(5, 10))
    first.finalize("success")
    stop_runs()  # the first process ends

    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)["logger"]
    assert state["run_id"] == first.version and state["mode"] == "offline" and state["last_step"] == 4
    second = NeptuneLogger(**QUIET)
    second.load_state_dict(state)
    log_steps(second, range(5, 13), offset=100.0)
    second.finalize("success")
    stop_runs()

    before, after = neptune_runs(tmp_path / ".neptune")
    # Neptune's own record: the second offline run names the first and the step it took over at.
    assert after.atoms()["tracklight/resumed_from"] == first.version
    assert after.atoms()["tracklight/resumed_after_step"] == 4
    assert [step for step, _ in before.series("training/loss")] == list(range(10))
    assert [step for step, _ in after.series("training/loss")] == list(range(5, 13))

    (continued,) = [run for run in runs.find(str(tmp_path / ".neptune")) if run.path == after.directory]
    frame = continued.metric("training/loss")
    expected = [(step, float(step)) for step in range(5)] + [(step, 100.0 + step) for step in range(5, 13)]
    assert list(zip(frame["step"].tolist(), frame["value"].tolist(), strict=True)) == expected
    assert continued.params() == {"lr": 0.1}


def test_server_modes_continue_by_id_and_unusable_states(stop_runs: Any) -> None:
    state = {"logger": "NeptuneLogger", "run_id": "PROJ-12", "mode": "async", "project": "w/p", "last_step": 3}
    assert with_id(state, "async") == "PROJ-12" and with_id(state, "offline") is None

    explicit = NeptuneLogger(with_id="PROJ-99", mode="async", **QUIET)
    explicit.load_state_dict(state)  # the with_id given wins, silently
    assert explicit._resume.state is None

    fresh = NeptuneLogger(continue_run=False, **QUIET)
    fresh.load_state_dict(state)
    assert fresh._resume.state is None

    for bad, reason in [
        ({**state, "logger": "CSVLogger"}, "state of 'CSVLogger'"),
        ({**state, "run_id": None}, "names no run"),
        (state, "logged in async mode and this logger logs in offline mode"),
        ({**state, "mode": "debug"}, "debug runs are kept in memory only"),
    ]:
        logger = NeptuneLogger(**QUIET)
        with pytest.warns(TracklightWarning, match=reason):
            logger.load_state_dict(bad)
        assert logger._resume.state is None

    started = NeptuneLogger(**QUIET)
    log_steps(started, range(1))
    with pytest.warns(TracklightWarning, match="after the run started"):
        started.load_state_dict({**state, "mode": "offline"})
    started.finalize("success")
    stop_runs()
