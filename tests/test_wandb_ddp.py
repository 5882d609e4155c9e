"""WandbLogger under real DDP: two gloo processes on CPU, one W&B run written by rank zero."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _wandb_reader import offline_env, read_runs

SCRIPT = textwrap.dedent(
    """
    import sys

    import torch
    from lightning.pytorch import LightningModule, Trainer
    from torch.utils.data import DataLoader, TensorDataset

    from tracklight.loggers.wandb import WandbLogger


    class Model(LightningModule):
        def __init__(self, lr=0.1):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            loss = self.layer(batch[0]).pow(2).mean()
            self.log("train_loss", loss, sync_dist=True)
            self.log("rank_sum", float(self.global_rank), reduce_fx="sum", sync_dist=True)
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self.layer(batch[0]).pow(2).mean(), sync_dist=True)

        def test_step(self, batch, batch_idx):
            self.log("test_loss", self.layer(batch[0]).pow(2).mean(), sync_dist=True)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


    def data(seed):
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(TensorDataset(torch.randn(16, 4, generator=generator)), batch_size=4)


    if __name__ == "__main__":
        root, strategy = sys.argv[1], sys.argv[2]
        logger = WandbLogger(save_dir=root, project="ddp", log_model="all")
        trainer = Trainer(
            strategy=strategy, accelerator="cpu", devices=2, max_epochs=2, logger=logger, log_every_n_steps=1,
            enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
        )
        model = Model()
        trainer.fit(model, data(0), data(1))
        trainer.test(model, data(2))
        print(f"DONE rank={trainer.global_rank} version={logger.version}", flush=True)
    """
)


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_two_process_ddp_writes_one_run_from_rank_zero(tmp_path, monkeypatch, strategy):
    offline_env(monkeypatch, tmp_path)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    root = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(script), str(root), strategy],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finished = [line for line in done.stdout.splitlines() if line.startswith("DONE")]
    assert finished, done.stdout[-3000:] + done.stderr[-3000:]

    segments = read_runs(root)
    # fit and test: one run, never a run per rank. ddp_spawn fits in child processes and tests in the parent, so
    # the run has a segment per process (W&B resumes it by id); ddp does both in the process that started it.
    assert len(segments) == (1 if strategy == "ddp" else 2), [segment.path for segment in segments]
    run_id = segments[0].run_id
    assert {segment.run_id for segment in segments} == {run_id}
    assert f"DONE rank=0 version={run_id}" in finished  # the process that launched the run knows its id
    assert all(segment.exit_code == 0 for segment in segments)

    fit, test = segments if strategy == "ddp_spawn" else segments * 2
    assert fit.config == {"lr": 0.1}
    # 16 samples on 2 ranks, batches of 4: 2 steps per epoch, each logged once with both ranks' values reduced
    assert [step for step, _ in fit.values("train_loss")] == [0, 1, 2, 3]
    assert [value for _, value in fit.values("rank_sum")] == [1.0, 1.0, 1.0, 1.0]
    assert [step for step, _ in fit.values("val_loss")] == [1, 3]
    # ddp_spawn trains in child processes: the parent's trainer does not learn the step count, so its test
    # runs at step 0 (Lightning's behaviour); W&B keeps the row all the same
    assert [step for step, _ in test.values("test_loss")] == [4 if strategy == "ddp" else 0]
    # one artifact per checkpoint saved (not one per rank)
    names = [artifact.metadata["original_filename"] for artifact in fit.artifacts]
    assert names == ["epoch=0-step=2.ckpt", "epoch=1-step=4.ckpt"]
    assert not list(Path(tmp_path).glob("wandb")), "a rank other than zero started W&B in the working directory"
