"""A LightningModule and a logger for the DDP Trainer test (``strategy="ddp_spawn"``): module-level so the
spawned processes can unpickle them."""

from __future__ import annotations

import json
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from _reducer_ddp import SAMPLES
from tracklight.loggers import Logger
from tracklight.loggers.logger import rank_zero_only

#: Batches of each rank: the same number of batches (DDP steps together), uneven sizes.
SHARDS = {0: [(0, 5), (5, 10), (10, 11)], 1: [(11, 14), (14, 15), (15, 23)]}


class JsonLinesLogger(Logger):
    """Appends each ``log_metrics`` call to a JSON-lines file, on rank zero."""

    def __init__(self, path: str) -> None:
        self.path = path

    @property
    def name(self) -> str:
        return "jsonl"

    @property
    def version(self) -> int:
        return 0

    @rank_zero_only
    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"step": step, "metrics": {k: float(v) for k, v in metrics.items()}}) + "\n")

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


class ShardModule(pl.LightningModule):
    """Logs statistics of its rank's shard, with and without ``sync_dist``."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.layer(batch.float().unsqueeze(1)).pow(2).mean()
        self.log("train_mean", batch.mean(), on_step=True, on_epoch=True, sync_dist=True)
        self.log("train_sum", batch.sum(), on_step=True, on_epoch=True, sync_dist=True, reduce_fx="sum")
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_mean", batch.mean(), sync_dist=True)  # batch size inferred: uneven across ranks
        self.log("val_max", batch.max(), sync_dist=True, reduce_fx="max")
        self.log("val_min", batch.min(), sync_dist=True, reduce_fx=min)
        self.log("val_local", batch.mean(), sync_dist=False)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def _loader(self) -> Any:
        batches = [torch.tensor(SAMPLES[a:b], dtype=torch.float64) for a, b in SHARDS[self.global_rank]]
        return DataLoader(batches, batch_size=None)

    def train_dataloader(self) -> Any:
        return self._loader()

    def val_dataloader(self) -> Any:
        return self._loader()


class OneSidedModule(ShardModule):
    """Rank 0 logs one more ``sync_dist`` key than rank 1: Lightning would wait forever in its all_reduce."""

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        if self.global_rank == 0:
            self.log("only_on_rank0", batch.mean(), sync_dist=True)
