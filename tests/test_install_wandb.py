"""What ``pip install 'tracklight[wandb]'`` promises: an offline W&B run, with no torch and no other SDK.

``scripts/wheel_check.py`` runs this module in a fresh virtual environment with only the wheel and its
``wandb`` extra; it runs with the rest of the suite too. Module-level imports stay within that.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from _wandb_reader import end_run, offline_env, read_runs
from tracklight._imports import is_available
from tracklight.loggers import WandbLogger

IN_WHEEL_CHECK = os.environ.get("TRACKLIGHT_WHEEL_CHECK") == "wandb"


def test_wandb_logger_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if IN_WHEEL_CHECK:  # the extra brings what W&B needs, and nothing another extra brings
        import tracklight

        assert "site-packages" in tracklight.__file__
        assert not any(is_available(name) for name in ("torch", "tensorboard", "mlflow", "lightning"))
    offline_env(monkeypatch, tmp_path)
    logger = WandbLogger(project="alone", save_dir=tmp_path / "runs", offline=True)
    logger.log_hyperparams({"lr": 0.1})
    for step in range(3):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    logger.log_image("samples", [np.zeros((8, 8, 3), dtype=np.uint8)], step=2)
    logger.finalize("success")
    end_run()  # finalize leaves the run open, as Lightning's does; W&B writes it out when it ends

    (run,) = read_runs(tmp_path / "runs")
    assert run.project == "alone" and run.config == {"lr": 0.1}
    assert run.values("loss") == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert [step for step, _ in run.values("samples")] == [2]
    assert run.exit_code == 0
