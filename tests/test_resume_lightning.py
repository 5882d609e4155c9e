"""Resume through a real Trainer in subprocesses: a training killed after a checkpoint, started again with the same
script, continues one run per logger with each step once, read back with each backend's own reader.

The script is ``tests/_resume_train.py``: a tiny model, 12 steps, a checkpoint every 4 steps (``last.ckpt`` too), a
``gen`` metric saying which process logged each value. The first process stops at the start of batch 6 (after
logging steps 0-5) and is killed there; the checkpoint it resumes from was saved in batch 3 (global step 4), whose
values the Trainer logs right after saving it, so the resumed process logs steps 4-11 and those win (3-10 on
Lightning before 2.5, which logs the first resumed batch at step 3 again).

These tests run on the newest Lightning the ``lightning`` extra allows and, in CI, on the oldest (``.ci/run``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_resume_train.py")
KINDS = ("csv", "tensorboard")


def _lightning_moves_on_at_restart() -> bool:
    """Lightning 2.5 and later advance the logging step when they restart from a checkpoint saved in a batch;
    earlier ones log the resumed run's first batch at the checkpoint batch's step (so the steps differ by one)."""
    from lightning.pytorch.loops.training_epoch_loop import _TrainingEpochLoop

    return hasattr(_TrainingEpochLoop, "restarted_on_train_batch_end")


MOVES_ON = _lightning_moves_on_at_restart()
#: The first step the resumed process logs: the checkpoint of global step 4 was saved in batch 3.
RESUMED_FROM = 4 if MOVES_ON else 3
#: Every step logged, once: 12 batches, at steps 0-11 (0-10 before Lightning 2.5, batch 3's step taken twice).
STEPS = list(range(12 if MOVES_ON else 11))


def _start(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(root), "--loggers", ",".join(KINDS), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _run(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    process = _start(root, *args, env=env)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    return output


def _block(root: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The first process, stopped at the start of batch 6 with steps 0-5 on disk."""
    process = _start(root, "--generation", "1", "--block-at", "6", env=env)
    deadline = time.monotonic() + 120
    while not (root / "blocked").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the first training did not reach step 6:\n{process.communicate()[0]}")
        time.sleep(0.1)
    return process


def _assert_one_run_each_step_once(root: Path, resumed_from: int = RESUMED_FROM, steps: list[int] = STEPS) -> None:
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tracklight import runs

    assert sorted(os.listdir(root / "csv")) == ["version_0"]
    assert sorted(os.listdir(root / "tb")) == ["version_0"]
    expected_gen = [1.0 if step < resumed_from else 2.0 for step in steps]

    frame = pd.read_csv(root / "csv" / "version_0" / "metrics.csv")
    assert frame["step"].tolist() == steps  # each step once, in order: one curve
    assert frame["gen"].tolist() == expected_gen  # the resumed process's values won

    accumulator = EventAccumulator(str(root / "tb" / "version_0"))
    accumulator.Reload()
    events = accumulator.Scalars("gen")
    assert [event.step for event in events] == steps
    assert [event.value for event in events] == expected_gen

    for folder in ("csv", "tb"):  # tracklight's own readers agree
        gen = runs.open(str(root / folder / "version_0")).metric("gen")
        assert gen["step"].tolist() == steps
        assert gen["value"].tolist() == expected_gen


def _assert_the_command_shows_each_step_once(root: Path, steps: list[int]) -> None:
    """`tracklight show`: one row per metric, as many points as steps, from the first step to the last."""
    for folder in ("csv", "tb"):
        shown = subprocess.run(
            [sys.executable, "-m", "tracklight", "show", str(root / folder / "version_0")],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        (row,) = [line.split() for line in shown.splitlines() if line.startswith("gen ")]
        assert row[1:4] == [str(len(steps)), str(steps[0]), str(steps[-1])], shown


def test_sigkill_after_a_checkpoint_then_ckpt_path_file(tmp_path: Path) -> None:
    _block(tmp_path).kill()
    output = _run(tmp_path, "--generation", "2", "--ckpt", str(tmp_path / "ckpts" / "last.ckpt"))
    assert "metrics.superseded.csv" in output  # the one warning names the side file
    _assert_one_run_each_step_once(tmp_path)
    import pandas as pd

    kept = pd.read_csv(tmp_path / "csv" / "version_0" / "metrics.superseded.csv")
    assert kept["step"].tolist() == list(range(RESUMED_FROM, 6)) and set(kept["gen"]) == {1.0}  # kept aside
    _assert_the_command_shows_each_step_once(tmp_path, STEPS)


def test_sigterm_then_ckpt_path_last(tmp_path: Path) -> None:
    process = _block(tmp_path)
    process.send_signal(signal.SIGTERM)  # Lightning stops the loop at its next check and finalizes the loggers
    process.communicate(timeout=60)
    _run(tmp_path, "--generation", "2", "--ckpt", "last")
    _assert_one_run_each_step_once(tmp_path)


def test_slurm_requeue_resumes_from_the_hpc_checkpoint(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"  # SLURM's requeue command, standing in: it notes that it was called
    scontrol.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "requeued"}\n')
    scontrol.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env.update(
        SLURM_JOB_ID="4242",
        SLURM_JOB_NAME="train",
        SLURM_NTASKS="1",
        SLURM_NTASKS_PER_NODE="1",
        SLURM_NODELIST="localhost",
        SLURM_PROCID="0",
        SLURM_LOCALID="0",
        SLURM_NODEID="0",
    )
    root = tmp_path / "run"
    root.mkdir()
    process = _block(root, env=env)
    process.send_signal(signal.SIGUSR1)  # SLURM's warning before the time limit: hpc checkpoint, then requeue
    deadline = time.monotonic() + 60
    while not (tmp_path / "requeued").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.kill()  # SLURM ends the job
    output = process.communicate()[0]
    assert (tmp_path / "requeued").read_text().split() == ["requeue", "4242"], output
    assert [name for name in os.listdir(root) if name.startswith("hpc_ckpt_")] == ["hpc_ckpt_1.ckpt"]
    _run(root, "--generation", "2", env=env)  # the same command again: Lightning picks the hpc checkpoint
    # The hpc checkpoint was saved at the start of batch 6, after steps 0-5 were logged. Lightning 2.5+ runs batch 6
    # again and logs it at step 7 (its step counter moves on when it restarts from a checkpoint saved between
    # batches): step 6 is logged by neither process, with or without tracklight; every other step once.
    steps = [*range(6), *range(7, 13)] if MOVES_ON else list(range(12))
    _assert_one_run_each_step_once(root, resumed_from=6, steps=steps)
