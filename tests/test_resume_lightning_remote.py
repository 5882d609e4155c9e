"""Resume through a real Trainer with every backend at once: CSV, TensorBoard, W&B (offline), MLflow (SQLite),
Comet (offline) and Neptune (offline), stopped by SIGTERM after a checkpoint and started again with
``ckpt_path=<last.ckpt>``. Each backend continues its run (W&B's run id, MLflow's run, Comet's experiment key, the
Neptune run the resumed offline run names), read back with the backend's own reader where it has one and with
``tracklight.runs``, each step once, the resumed values winning.

The script and its timeline are those of test_resume_lightning.py (``tests/_resume_train.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from test_resume_lightning import RESUMED_FROM, SCRIPT, STEPS

KINDS = ("csv", "tensorboard", "wandb", "mlflow", "comet", "neptune")


def _offline_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "COMET_", "NEPTUNE_", "MLFLOW_"))}
    for name, sub in (("WANDB_DIR", "wandb_dir"), ("WANDB_DATA_DIR", "wandb_data"), ("WANDB_CACHE_DIR", "wandb_cache")):
        (root / sub).mkdir()
        env[name] = str(root / sub)
    (root / "wandb_config").mkdir()
    env.update(
        WANDB_CONFIG_DIR=str(root / "wandb_config"),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DISABLE_GIT="true",
        WANDB_DISABLE_CODE="true",
        WANDB_X_DISABLE_STATS="true",
        WANDB_X_DISABLE_MACHINE_INFO="true",
        NEPTUNE_MODE="offline",
        NEPTUNE_DATA_DIRECTORY=str(root / ".neptune"),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
    )
    return env


def _train(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(root), "--loggers", ",".join(KINDS), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _gen(run: Any, key: str = "gen") -> list[tuple[int, float]]:
    frame = run.metric(key)
    return list(zip(frame["step"].tolist(), frame["value"].tolist(), strict=True))


def test_every_backend_continues_one_run_each_step_once(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from tracklight import runs

    env = _offline_env(tmp_path)
    first = _train(tmp_path, env, "--generation", "1", "--block-at", "6")
    deadline = time.monotonic() + 180
    while not (tmp_path / "blocked").exists():
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            pytest.fail(f"the first training did not reach step 6:\n{first.communicate()[0]}")
        time.sleep(0.1)
    first.send_signal(signal.SIGTERM)  # Lightning stops at its next check and finalizes every logger
    first.communicate(timeout=120)
    second = _train(tmp_path, env, "--generation", "2", "--ckpt", str(tmp_path / "ckpts" / "last.ckpt"))
    output = second.communicate(timeout=180)[0]
    assert second.returncode == 0, output

    expected = [(step, 1.0 if step < RESUMED_FROM else 2.0) for step in STEPS]
    found = runs.find(str(tmp_path))
    by_backend: dict[str, list[Any]] = {}
    for run in found:
        by_backend.setdefault(run.backend, []).append(run)

    # CSV and TensorBoard: one version folder each (the rest is test_resume_lightning.py's).
    assert [_gen(run) for run in by_backend["csv"] + by_backend["tensorboard"]] == [expected, expected]

    # MLflow: MLflow's own client sees one run in the experiment; tracklight reads it each step once.
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "resume"]
    assert len(client.search_runs([experiment.experiment_id])) == 1
    (mlflow_run,) = by_backend["mlflow"]
    assert _gen(mlflow_run) == expected

    # Comet: both processes' offline archives are of one experiment key, read as one run.
    archives = sorted(os.listdir(tmp_path / "comet"))
    assert len(archives) == 2 and len({name.split("-")[0] for name in archives}) == 1, archives
    (comet_run,) = by_backend["comet"]
    assert _gen(comet_run) == expected

    # W&B: both offline runs have the one run id; read as one run, each step once, the resumed values from the
    # resume step on (the row of the batch the checkpoint was saved in, logged after the save, is kept).
    wandb_ids = {name.rsplit("-", 1)[-1] for name in os.listdir(tmp_path / "wandb" / "wandb") if "run-" in name}
    assert len(wandb_ids) == 1, wandb_ids
    (wandb_run,) = by_backend["wandb"]
    assert _gen(wandb_run) == expected

    # Neptune: an offline run cannot be reopened; the resumed one names the run it continues and reads as the
    # whole run, each step once.
    continued = [run for run in by_backend["neptune"] if len(run.metric("training/gen")) == len(expected)]
    assert len(by_backend["neptune"]) == 2 and len(continued) == 1
    assert _gen(continued[0], "training/gen") == expected
