"""WandbLogger continues its run after a restart (``state_dict``/``load_state_dict``), each step once.

The real SDK, offline. The second process rewinds the run to W&B's step of the checkpoint
(``resume_from``): its run file records the branch point, which ``wandb sync`` hands to W&B, and
``tracklight.runs`` reads both segments as one run without the rows after it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from _wandb_reader import end_run, offline_env, read_runs
from tracklight import TracklightWarning, runs
from tracklight.loggers.wandb import WandbLogger


@pytest.fixture(autouse=True)
def wandb_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    offline_env(monkeypatch, tmp_path)
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:  # a test that failed half-way must not leak its run
        wandb.run.finish()


@pytest.fixture(autouse=True, scope="module")
def wandb_service():
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


def log_steps(logger: WandbLogger, steps: range, offset: float = 0.0) -> None:
    for step in steps:
        logger.log_metrics({"loss": offset + step}, step=step)


def points(root: Path, key: str = "loss") -> list[tuple[int, float]]:
    (run,) = [run for run in runs.find(str(root)) if run.backend == "wandb"]
    frame = run.metric(key)
    return list(zip(frame["step"].tolist(), frame["value"].tolist(), strict=True))


def test_a_second_logger_continues_the_run_rewound_each_step_once(tmp_path: Path) -> None:
    options = {"save_dir": tmp_path / "w", "project": "resume"}
    first = WandbLogger(**options)
    log_steps(first, range(5))
    state = first.state_dict()  # as a checkpoint at step 4 takes it
    log_steps(first, range(5, 10))
    first.finalize("success")
    end_run()  # the first process ends
    assert state == {
        "logger": "WandbLogger",
        "id": first.version,
        "project": "resume",
        "entity": None,
        "last_step": 4,
        "wandb_step": 4,
    }

    second = WandbLogger(**options)
    second.load_state_dict(state)
    assert second.version == first.version
    log_steps(second, range(5, 13), offset=100.0)
    second.finalize("success")
    end_run()

    before, after = read_runs(tmp_path / "w")
    assert before.run_id == after.run_id == first.version
    # W&B's own record: the second segment rewinds the run to W&B's step 4 and goes on from step 5.
    assert after.branch_step == 4 and after.steps == list(range(5, 13))
    assert before.values("loss") == [(step, float(step)) for step in range(10)]
    expected = [(step, float(step)) for step in range(5)] + [(step, 100.0 + step) for step in range(5, 13)]
    assert points(tmp_path / "w") == expected


def test_resume_twice_and_the_state_survives_torch_save(tmp_path: Path) -> None:
    import torch

    options = {"save_dir": tmp_path / "w", "project": "twice"}
    first = WandbLogger(**options)
    first.log_hyperparams({"lr": 0.1})
    log_steps(first, range(3))
    torch.save({"logger": first.state_dict()}, tmp_path / "ckpt.pt")
    log_steps(first, range(3, 6))
    first.finalize("success")
    end_run()

    second = WandbLogger(**options)
    second.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["logger"])
    log_steps(second, range(3, 8), offset=10.0)
    state = second.state_dict()
    log_steps(second, range(8, 9), offset=10.0)
    second.finalize("success")
    end_run()

    third = WandbLogger(**options)
    third.load_state_dict(state)
    log_steps(third, range(8, 10), offset=20.0)
    third.finalize("success")
    end_run()

    assert len({segment.run_id for segment in read_runs(tmp_path / "w")}) == 1
    expected = [(0, 0.0), (1, 1.0), (2, 2.0), *[(s, 10.0 + s) for s in range(3, 8)], (8, 28.0), (9, 29.0)]
    assert points(tmp_path / "w") == expected
    (run,) = [run for run in runs.find(str(tmp_path / "w")) if run.backend == "wandb"]
    assert run.params()["lr"] == 0.1 and run.info().steps == 9


def test_explicit_id_continue_run_false_and_unusable_states(tmp_path: Path) -> None:
    options = {"save_dir": tmp_path / "w", "project": "rules"}
    state = {"logger": "WandbLogger", "id": "abc12345", "project": "rules", "last_step": 3, "wandb_step": 3}

    explicit = WandbLogger(id="mine1234", **options)
    explicit.load_state_dict(state)  # the id given wins, silently
    assert explicit.version == "mine1234"

    fresh = WandbLogger(continue_run=False, **options)
    fresh.load_state_dict(state)
    assert fresh.version is None

    for bad, reason in [
        ({**state, "logger": "CometLogger"}, "state of 'CometLogger'"),
        ({**state, "id": None}, "names no run"),
        ({**state, "project": "other"}, "same project"),
    ]:
        logger = WandbLogger(**options)
        with pytest.warns(TracklightWarning, match=reason):
            logger.load_state_dict(bad)
        assert logger.version is None

    started = WandbLogger(**options)
    log_steps(started, range(1))
    with pytest.warns(TracklightWarning, match="after the run started"):
        started.load_state_dict(state)
    assert started.version != "abc12345"
    started.finalize("success")
    end_run()


def test_a_run_resumed_by_id_without_a_state_is_one_run_with_every_row(tmp_path: Path) -> None:
    first = WandbLogger(save_dir=tmp_path / "w", project="by-id", id="byid1234")
    log_steps(first, range(3))
    first.finalize("success")
    end_run()
    second = WandbLogger(save_dir=tmp_path / "w", project="by-id", id="byid1234")
    log_steps(second, range(2, 5), offset=10.0)  # no state: nothing is superseded, every row stays
    second.finalize("success")
    end_run()

    assert [segment.branch_step for segment in read_runs(tmp_path / "w")] == [None, None]
    expected = [(0, 0.0), (1, 1.0), (2, 2.0), (2, 12.0), (3, 13.0), (4, 14.0)]
    assert points(tmp_path / "w") == expected
