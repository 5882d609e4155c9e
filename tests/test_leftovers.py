"""What a run or the test suite leaves behind (issue 18): no empty MLflow staging folder, no SDK folder in the
repository root."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import LEFTOVERS


def test_an_mlflow_run_leaves_no_staging_folder(tmp_path: Path) -> None:
    """docs/backends/mlflow.md says `tracklight-staging/` is "created only when needed"; every run left an
    empty `tracklight-staging/<id>/`."""
    from tracklight.loggers import MLFlowLogger

    save_dir = tmp_path / "logs"
    logger = MLFlowLogger("left", save_dir=str(save_dir), tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_image("picture", np.zeros((4, 4, 3), dtype=np.uint8), step=0)  # staged, then uploaded
    logger.finalize("success")
    assert logger._report is not None and logger._report.complete
    assert not (save_dir / "tracklight-staging").exists(), sorted(save_dir.rglob("*"))
    assert list((tmp_path / "artifacts").rglob("*.png")) or list(tmp_path.rglob("images/*.png"))


def test_sdk_folders_go_to_a_temporary_folder_never_the_repository() -> None:
    root = Path(__file__).parents[1]
    assert not Path(os.environ["NEPTUNE_DATA_DIRECTORY"]).resolve().is_relative_to(root.resolve())
    assert {".neptune", "mlartifacts"} <= set(LEFTOVERS)
    ignored = (root / ".gitignore").read_text().splitlines()
    assert {".neptune/", "mlartifacts/", "mlruns/", "wandb/"} <= set(ignored)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_neptune_run_without_a_folder_of_its_own_is_not_written_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracklight.loggers import NeptuneLogger

    monkeypatch.chdir(tmp_path)
    logger = NeptuneLogger(mode="offline", name="left", capture_hardware_metrics=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    logger.experiment.stop()
    assert not (tmp_path / ".neptune").exists()
    assert Path(os.environ["NEPTUNE_DATA_DIRECTORY"]).exists()
