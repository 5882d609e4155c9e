"""CometLogger and NeptuneLogger under real DDP: two gloo processes on CPU, one experiment and one run, written
by rank zero, holding the same values as a CSVLogger in the same training."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _comet_neptune_readers import assert_steps_increase, comet_archives, neptune_runs

SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from lightning.pytorch import LightningModule, Trainer
    from torch.utils.data import DataLoader, TensorDataset

    from tracklight.loggers import CSVLogger
    from tracklight.loggers.comet import CometLogger
    from tracklight.loggers.neptune import NeptuneLogger


    class Model(LightningModule):
        def __init__(self, lr=0.1):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)
            generator = torch.Generator().manual_seed(0)
            self.x, self.y = torch.randn(16, 4, generator=generator), torch.randn(16, 1, generator=generator)

        def training_step(self, batch, batch_idx):
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("train_loss", loss)
            self.log("logging_rank", float(self.global_rank))  # only rank zero's value may be written
            self.log("mean_rank", float(self.global_rank), on_step=False, on_epoch=True, sync_dist=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

        def train_dataloader(self):
            return DataLoader(TensorDataset(self.x, self.y), batch_size=4)


    if __name__ == "__main__":
        loggers = [
            CometLogger(project_name="ddp", save_dir="comet", online=False, display_summary_level=0),
            NeptuneLogger(name="ddp", capture_stdout=False, capture_stderr=False, capture_hardware_metrics=False),
            CSVLogger("csv", name="ddp"),
        ]
        trainer = Trainer(
            accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, logger=loggers, log_every_n_steps=1,
            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        )
        trainer.fit(Model())
        print("rank", trainer.global_rank, "done")
    """
)


@pytest.mark.timeout(300)
def test_ddp_two_processes_write_one_experiment_and_one_run_from_rank_zero(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMET_", "NEPTUNE_", "MASTER_"))}
    env.update(
        NEPTUNE_MODE="offline",
        NEPTUNE_DATA_DIRECTORY=str(tmp_path / ".neptune"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")])),
    )
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK"):
        env.pop(key, None)
    result = subprocess.run(
        [sys.executable, "train.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("done") == 2, result.stdout[-2000:]

    with open(tmp_path / "csv" / "ddp" / "version_0" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    reference = [float(row["train_loss"]) for row in rows if row.get("train_loss")]
    assert len(reference) == 4  # 16 samples, 2 ranks, batches of 4, 2 epochs

    (archive,) = comet_archives(tmp_path / "comet")
    assert [value for _, _, value in archive.metrics("train_loss")] == pytest.approx(reference)
    assert {value for _, _, value in archive.metrics("logging_rank")} == {0.0}
    assert [value for _, _, value in archive.metrics("mean_rank")] == pytest.approx([0.5, 0.5])
    assert archive.parameters()["lr"] == 0.1
    assert archive.others()["status"] == "success"

    (run,) = neptune_runs(tmp_path / ".neptune")
    assert [value for _, value in run.series("training/train_loss")] == pytest.approx(reference)
    assert {value for _, value in run.series("training/logging_rank")} == {0.0}
    assert [value for _, value in run.series("training/mean_rank")] == pytest.approx([0.5, 0.5])
    assert run.atoms()["training/hyperparams/lr"] == 0.1
    assert run.atoms()["training/status"] == "success"
    assert_steps_increase(run)
