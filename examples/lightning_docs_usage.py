"""The logger usage shown in Lightning's documentation, with one change: the import.

Where Lightning's docs write ``from lightning.pytorch import loggers as pl_loggers``, this file writes
``from tracklight import loggers as pl_loggers``; every other line is used as the docs use it:

1. TensorBoard: ``Trainer(logger=pl_loggers.TensorBoardLogger(...))`` and ``self.logger.experiment.add_*``;
   hyperparameters with their own metrics in the HPARAMS tab (``default_hp_metric=False``).
2. CSV: ``Trainer(logger=pl_loggers.CSVLogger("logs", name="my_exp_name"))``.
3. Several loggers: ``Trainer(logger=[tb_logger, csv_logger])`` and ``self.loggers`` in the module.
4. A custom logger: subclass ``Logger``, override ``name``/``version``/``log_hyperparams``/``log_metrics``/
   ``save``/``finalize``, decorate with ``rank_zero_only``.

Run: ``python examples/lightning_docs_usage.py [--save-dir DIR]`` (a temporary directory by default).
Each part trains a tiny model for a few steps on CPU and prints what it wrote.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import warnings
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from tracklight import loggers as pl_loggers
from tracklight.loggers import rank_zero_only
from tracklight.loggers.logger import Logger, rank_zero_experiment

TINY_RUN = dict(
    max_epochs=2,
    limit_train_batches=4,
    limit_val_batches=2,
    log_every_n_steps=1,
    accelerator="cpu",
    enable_progress_bar=False,
    enable_model_summary=False,
)


class TinyModel(LightningModule):
    """A linear regression on random data; just enough to produce metrics."""

    def __init__(self, lr: float = 0.1, hidden: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(hidden, 1)
        self.example_input_array = torch.zeros(1, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self) -> DataLoader:
        return _random_data()

    def val_dataloader(self) -> DataLoader:
        return _random_data()


def _random_data() -> DataLoader:
    x = torch.randn(64, 4)
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)


# ---- 1. TensorBoard ------------------------------------------------------------------------------------------


class TensorBoardModel(TinyModel):
    def on_train_start(self) -> None:
        # As in the docs: the hyperparameters, linked to metrics of your choosing in the HPARAMS tab.
        self.logger.log_hyperparams(self.hparams, {"hp/metric_1": 0, "hp/metric_2": 0})

    def on_train_epoch_end(self) -> None:
        # As in the docs: `experiment` is a torch.utils.tensorboard.SummaryWriter.
        tensorboard = self.logger.experiment
        tensorboard.add_image("generated_images", torch.rand(3, 16, 16), self.current_epoch)
        tensorboard.add_histogram("layer.weight", self.layer.weight, self.current_epoch)
        tensorboard.add_text("notes", f"epoch {self.current_epoch} done", self.current_epoch)

    def on_validation_epoch_end(self) -> None:
        self.log("hp/metric_1", self.trainer.callback_metrics.get("val_loss", torch.tensor(0.0)))


def tensorboard_usage(save_dir: str) -> str:
    tb_logger = pl_loggers.TensorBoardLogger(save_dir=save_dir, name="my_model", default_hp_metric=False)
    trainer = Trainer(logger=tb_logger, **TINY_RUN)
    trainer.fit(TensorBoardModel())
    return tb_logger.log_dir


# ---- 2. CSV --------------------------------------------------------------------------------------------------


def csv_usage(save_dir: str) -> str:
    logger = pl_loggers.CSVLogger(save_dir, name="my_exp_name")
    trainer = Trainer(logger=logger, **TINY_RUN)
    trainer.fit(TinyModel())
    return logger.experiment.metrics_file_path


# ---- 3. Several loggers --------------------------------------------------------------------------------------


class SeveralLoggersModel(TinyModel):
    def on_train_epoch_end(self) -> None:
        # As in the docs: self.loggers is the list given to the Trainer; pick one by position or type.
        self.loggers[0].experiment.add_image("generated_images", torch.rand(3, 16, 16), self.current_epoch)
        for logger in self.loggers:
            if isinstance(logger, pl_loggers.CSVLogger):
                logger.log_metrics({"custom_metric": float(self.current_epoch)}, step=self.global_step)


def several_loggers_usage(save_dir: str) -> list[str]:
    tb_logger = pl_loggers.TensorBoardLogger(save_dir=save_dir)
    csv_logger = pl_loggers.CSVLogger(save_dir=save_dir)
    trainer = Trainer(logger=[tb_logger, csv_logger], **TINY_RUN)
    trainer.fit(SeveralLoggersModel())
    # Same save_dir and name: the two loggers get version_0 and version_1, as with Lightning's classes.
    return [tb_logger.log_dir, csv_logger.log_dir]


# ---- 4. A custom logger --------------------------------------------------------------------------------------


class MyLogger(Logger):
    """A custom logger written the way Lightning's docs show; here it keeps what it gets in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.hyperparams: dict[str, Any] = {}
        self.metrics: list[tuple[int | None, dict[str, float]]] = []
        self.status: str | None = None

    @property
    def name(self) -> str:
        return "MyLogger"

    @property
    def version(self) -> str:
        # Return the experiment version, int or str.
        return "0.1"

    @property
    @rank_zero_experiment
    def experiment(self) -> list[tuple[int | None, dict[str, float]]]:
        # Optional: the object users reach through `logger.experiment`.
        return self.metrics

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        # params is an argparse.Namespace or a dict
        self.hyperparams.update(vars(params) if isinstance(params, argparse.Namespace) else dict(params))

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        # metrics is a dictionary of metric names and values
        self.metrics.append((step, dict(metrics)))

    @rank_zero_only
    def save(self) -> None:
        # Optional: make what was logged durable.
        pass

    @rank_zero_only
    def finalize(self, status: str) -> None:
        # Optional: runs after training finishes.
        self.status = status


def custom_logger_usage(save_dir: str) -> MyLogger:
    logger = MyLogger()
    trainer = Trainer(logger=logger, default_root_dir=save_dir, **TINY_RUN)
    trainer.fit(TinyModel())
    return logger


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Lightning's documented logger usage, with tracklight's loggers.")
    parser.add_argument("--save-dir", default=None, help="where to write (default: a new temporary directory)")
    args = parser.parse_args(argv)
    save_dir = args.save_dir or tempfile.mkdtemp(prefix="tracklight_docs_usage_")
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # Lightning 2.6 warns about its own use of a torch API that torch 2.13 deprecates, and tips its products.
    warnings.filterwarnings("ignore", ".*LeafSpec.*", FutureWarning)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not record.getMessage().startswith("\N{ELECTRIC LIGHT BULB} Tip")
    )

    print(f"1. TensorBoard:      {tensorboard_usage(save_dir)}")
    print(f"2. CSV:              {csv_usage(save_dir)}")
    tb_dir, csv_dir = several_loggers_usage(os.path.join(save_dir, "several"))
    print(f"3. Several loggers:  {tb_dir}\n                     {csv_dir}")
    mine = custom_logger_usage(os.path.join(save_dir, "custom"))
    print(
        f"4. Custom logger:    {len(mine.metrics)} log_metrics calls, hyperparameters {mine.hyperparams}, "
        f"finalize({mine.status!r})"
    )
    print(f"\nEverything is under {save_dir}; open the TensorBoard runs with: tensorboard --logdir {save_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
