"""``self.log_dict(MetricCollection(..., compute_groups=True))`` under the opt-in: the metrics of a compute group
keep sharing one state (``items(keep_base=False, copy_state=False)``, as Lightning asks), and the values are
Lightning's."""

from __future__ import annotations

import warnings
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassPrecision

from tracklight.reducer import LightningReducer


class RecordingCollection(MetricCollection):
    """Remembers the arguments of ``items()`` while the module logs it."""

    def items(self, keep_base: bool = False, copy_state: bool = True) -> Any:
        if getattr(self, "logging", False):
            self.calls.append((keep_base, copy_state))
        return super().items(keep_base=keep_base, copy_state=copy_state)


class Module(pl.LightningModule):
    def __init__(self, compute_groups: bool) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 3)
        self.metrics = RecordingCollection(
            {
                "acc": MulticlassAccuracy(num_classes=3, average="micro"),
                "prec": MulticlassPrecision(num_classes=3, average="micro"),
            },
            compute_groups=compute_groups,
        )
        self.metrics.calls = []
        self.shared: list[bool] = []

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        logits = self.layer(x)
        self.metrics.update(logits.softmax(-1), y)  # update(), not forward(), is where torchmetrics forms the groups
        self.metrics.logging = True
        self.log_dict(self.metrics, on_step=False, on_epoch=True)
        self.metrics.logging = False
        acc, prec = self.metrics._modules["acc"], self.metrics._modules["prec"]  # [] would copy the state
        self.shared.append(all(getattr(acc, state) is getattr(prec, state) for state in ("tp", "fp", "tn", "fn")))
        return logits.sum()

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> Any:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(12, 4, generator=generator)
        y = torch.randint(0, 3, (12,), generator=generator)
        return DataLoader(TensorDataset(x, y), batch_size=4)


def _fit(tmp_path: Any, callbacks: list[Any], compute_groups: bool) -> tuple[Module, dict[str, float]]:
    torch.manual_seed(0)
    module = Module(compute_groups)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module)
    return module, {key: float(value) for key, value in trainer.callback_metrics.items()}


@pytest.mark.parametrize("compute_groups", [True, False])
def test_log_dict_keeps_compute_groups_sharing_their_state(tmp_path: Any, compute_groups: bool) -> None:
    lightning_module, expected = _fit(tmp_path, [], compute_groups)
    module, actual = _fit(tmp_path, [LightningReducer()], compute_groups)
    if compute_groups:
        assert module.metrics.compute_groups == {0: ["acc", "prec"]}
        assert all(module.shared[1:]), "logging copied the state of a compute group"  # formed at the first update
    # Lightning's own path and the opt-in ask the collection the same way: a copy only without compute groups
    assert module.metrics.calls == lightning_module.metrics.calls == [(False, not compute_groups)] * 6
    assert set(actual) == {"acc", "prec"}
    assert actual == pytest.approx(expected, abs=1e-6)
