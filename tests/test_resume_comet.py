"""CometLogger continues its experiment after a restart (``state_dict``/``load_state_dict``), each step once.

The real SDK, offline: the second process writes a second archive of the same experiment key
(``ExistingOfflineExperiment``), which ``comet upload`` adds to the experiment. Comet keeps every value;
the second archive's ``tracklight/resumed_after_step`` says where it took over, and ``tracklight.runs``
reads both archives as one run without the superseded values.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from _comet_neptune_readers import comet_archives, end_experiment, refuse_network
from tracklight import TracklightWarning, runs
from tracklight.loggers.comet import CometLogger

QUIET = {"display_summary_level": 0}


@pytest.fixture(autouse=True)
def comet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    for name in ("COMET_API_KEY", "COMET_START_ONLINE", "COMET_OFFLINE_DIRECTORY", "COMET_EXPERIMENT_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("COMET_PROJECT_NAME", "COMET_WORKSPACE", "COMET_START_MODE"):
        monkeypatch.delenv(name, raising=False)
    refuse_network(monkeypatch)
    yield
    end_experiment()


def log_steps(logger: CometLogger, steps: range, offset: float = 0.0) -> None:
    for step in steps:
        logger.log_metrics({"loss": offset + step}, step=step)


def points(root: Path, key: str = "loss") -> list[tuple[int, float]]:
    (run,) = [run for run in runs.find(str(root)) if run.backend == "comet"]
    frame = run.metric(key)
    return list(zip(frame["step"].tolist(), frame["value"].tolist(), strict=True))


def make(tmp_path: Path, **options: Any) -> CometLogger:
    return CometLogger(project="resume", save_dir=str(tmp_path / "comet"), online=False, **QUIET, **options)


def test_a_second_logger_continues_the_experiment_each_step_once(tmp_path: Path) -> None:
    import torch

    first = make(tmp_path)
    log_steps(first, range(5))
    torch.save({"logger": first.state_dict()}, tmp_path / "ckpt.pt")  # as Fabric saves it, at step 4
    log_steps(first, range(5, 10))
    first.finalize("success")
    end_experiment()  # the first process ends: its archive is written

    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)["logger"]
    assert state["experiment_key"] == first.version and state["last_step"] == 4
    second = make(tmp_path)
    second.load_state_dict(state)
    log_steps(second, range(5, 13), offset=100.0)
    second.finalize("success")
    assert second.version == first.version

    before, after = comet_archives(tmp_path / "comet")
    assert before.key == after.key == first.version
    assert after.others()["tracklight/resumed_after_step"] == 4
    # Comet's own record: every value, the superseded ones included.
    assert [step for step, _, _ in before.metrics("loss")] == list(range(10))
    assert [step for step, _, _ in after.metrics("loss")] == list(range(5, 13))
    expected = [(step, float(step)) for step in range(5)] + [(step, 100.0 + step) for step in range(5, 13)]
    assert points(tmp_path / "comet") == expected


def test_explicit_key_continue_run_false_and_unusable_states(tmp_path: Path) -> None:
    state = {"logger": "CometLogger", "experiment_key": "a" * 32, "project": "resume", "last_step": 3}
    explicit = make(tmp_path, experiment_key="b" * 32)
    explicit.load_state_dict(state)  # the key given wins, silently
    assert explicit._experiment_key == "b" * 32

    fresh = make(tmp_path, continue_run=False)
    fresh.load_state_dict(state)
    assert fresh._experiment_key is None

    for bad, reason in [
        ({**state, "logger": "NeptuneLogger"}, "state of 'NeptuneLogger'"),
        ({**state, "experiment_key": 7}, "names no run"),
        ({**state, "project": "other"}, "same project"),
    ]:
        logger = make(tmp_path)
        with pytest.warns(TracklightWarning, match=reason):
            logger.load_state_dict(bad)
        assert logger._experiment_key is None

    started = make(tmp_path)
    log_steps(started, range(1))
    with pytest.warns(TracklightWarning, match="after the run started"):
        started.load_state_dict(state)
    assert started.version != "a" * 32
    started.finalize("success")
    assert "comet_ml" in sys.modules
