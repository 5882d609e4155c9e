"""W&B in tests: the offline set-up, and the reader of ``run-<id>.wandb`` files, which lives in the package now
(:mod:`tracklight.runs._wandb`, where ``tracklight ls``/``show`` use it too) and is imported from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracklight.runs._wandb import (  # noqa: F401 (re-exported for the tests)
    BLOCK,
    FIRST,
    FULL,
    HEADER,
    LAST,
    MIDDLE,
    RECORD_HEADER,
    StoredArtifact,
    StoredRun,
    payloads,
    read_run,
    read_runs,
    records,
    run_files,
)


def end_run() -> None:
    """End the process's W&B run, as the process's exit (or the user's ``wandb.finish()``) does, and wait until
    W&B has written its file out. Loggers leave their run open after ``finalize``, as Lightning's do."""
    import wandb

    from tracklight.loggers.wandb import wait_until_closed

    run = wandb.run
    if run is not None:
        run.finish()
        assert wait_until_closed(run.settings.log_internal), "W&B did not close the run's file"


def offline_env(monkeypatch: Any, root: Path) -> None:
    """Offline, quiet, and every W&B directory under ``root``: nothing reaches the network or the home dir."""
    for name in ("WANDB_PROJECT", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_NAME", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    for name, sub in (
        ("WANDB_DIR", "wandb_dir"),
        ("WANDB_DATA_DIR", "wandb_data"),
        ("WANDB_CACHE_DIR", "wandb_cache"),
        ("WANDB_CONFIG_DIR", "wandb_config"),
        ("WANDB_ARTIFACT_DIR", "wandb_artifacts"),
    ):
        (root / sub).mkdir(exist_ok=True)
        monkeypatch.setenv(name, str(root / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.setenv("WANDB_DISABLE_CODE", "true")
    monkeypatch.setenv("WANDB_X_DISABLE_STATS", "true")
    monkeypatch.setenv("WANDB_X_DISABLE_MACHINE_INFO", "true")
