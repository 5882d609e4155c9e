"""A training script for the resume tests, run as a subprocess the way a user runs theirs.

``python tests/_resume_train.py ROOT --loggers csv,tensorboard --generation 1 --block-at 6`` trains a tiny model
with the listed loggers (all under ROOT), a ``ModelCheckpoint(every_n_train_steps=...)`` into ROOT/ckpts, logs
``gen`` (the generation: which process logged a value) and ``loss`` every step, and with ``--block-at K`` stops at
the start of batch K (after writing ROOT/blocked) until it receives SIGTERM or is killed. Starting it again with
``--ckpt`` (a file, ``last``, or nothing under SLURM's variables: Lightning's hpc checkpoint) resumes.

Logger kinds are built by :data:`FACTORIES`; a remote backend is one more entry there (offline SDKs under ROOT).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset


def _csv(root: str) -> Any:
    from tracklight.loggers import CSVLogger

    return CSVLogger(root, name="csv")


def _tensorboard(root: str) -> Any:
    from tracklight.loggers import TensorBoardLogger

    return TensorBoardLogger(root, name="tb")


def _wandb(root: str) -> Any:
    from tracklight.loggers import WandbLogger

    return WandbLogger(project="resume", save_dir=os.path.join(root, "wandb"))  # offline: WANDB_MODE in the env


def _mlflow(root: str) -> Any:
    from tracklight.loggers import MLFlowLogger

    return MLFlowLogger(experiment_name="resume", tracking_uri=f"sqlite:///{root}/mlflow.db")


def _comet(root: str) -> Any:
    from tracklight.loggers import CometLogger

    return CometLogger(project="resume", save_dir=os.path.join(root, "comet"), online=False, display_summary_level=0)


def _neptune(root: str) -> Any:
    from tracklight.loggers import NeptuneLogger

    # Offline (NEPTUNE_MODE and NEPTUNE_DATA_DIRECTORY in the env); no hardware or console capture.
    return NeptuneLogger(capture_stdout=False, capture_stderr=False, capture_hardware_metrics=False)


FACTORIES: dict[str, Callable[[str], Any]] = {
    "csv": _csv,
    "tensorboard": _tensorboard,
    "wandb": _wandb,
    "mlflow": _mlflow,
    "comet": _comet,
    "neptune": _neptune,
}


class Model(pl.LightningModule):
    def __init__(self, generation: int, block_at: int | None, root: str) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.generation = generation
        self.block_at = block_at
        self.root = root

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("loss", loss)
        self.log("gen", float(self.generation))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))
        self.log("val_gen", float(self.generation))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self.block_at is None or self.trainer.global_step != self.block_at:
            return
        for logger in self.trainer.loggers:
            logger.save()
        time.sleep(1.2)  # the background writers put what was logged on disk within a second
        open(os.path.join(self.root, "blocked"), "w").close()
        while not self.trainer.received_sigterm:  # SIGKILL ends it here; SIGTERM lets Lightning stop it
            time.sleep(0.05)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--loggers", default="csv,tensorboard")
    parser.add_argument("--generation", type=int, default=1)
    parser.add_argument("--block-at", type=int, default=None)
    parser.add_argument("--ckpt", default=None, help="a checkpoint file, 'last', or nothing")
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument("--every", type=int, default=4, help="checkpoint every N steps; 0: at each epoch's end")
    parser.add_argument("--samples", type=int, default=64, help="4 per batch")
    parser.add_argument("--val", action="store_true", help="validate at each epoch's end")
    args = parser.parse_args()

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(args.samples, 4), torch.randn(args.samples, 1))
    loggers = [FACTORIES[kind](args.root) for kind in args.loggers.split(",") if kind]
    checkpoints = ModelCheckpoint(
        dirpath=os.path.join(args.root, "ckpts"),
        every_n_train_steps=args.every or None,
        every_n_epochs=None if args.every else 1,
        save_last=True,
        save_top_k=-1,
    )
    trainer = pl.Trainer(
        default_root_dir=args.root,
        logger=loggers,
        callbacks=[checkpoints],
        max_steps=args.max_steps,
        limit_val_batches=2 if args.val else 0,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    model = Model(args.generation, args.block_at, args.root)
    loader = DataLoader(data, batch_size=4)
    trainer.fit(model, loader, loader if args.val else None, ckpt_path=args.ckpt)
    print("VERSIONS", [getattr(logger, "version", None) for logger in loggers], file=sys.stderr)


if __name__ == "__main__":
    main()
