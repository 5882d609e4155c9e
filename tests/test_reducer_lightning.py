"""The Lightning opt-in against Lightning's own ``self.log``, through real Trainers on the same modules.

The randomised scenarios (``tests/_reducer_scenarios.py``) cover hooks, flags, reductions, batch sizes,
kinds of values, torchmetrics objects, two validation dataloaders, gradient accumulation, mid-epoch
validation and early stops: every logger call, ``callback_metrics``, ``progress_bar_metrics``,
``logged_metrics`` and what ``validate``/``test`` return must match. Passes with Lightning 2.2.5, 2.4.0,
2.5.1 and 2.6.6.
"""

from __future__ import annotations

import copy
import io
import warnings
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torchmetrics
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, TensorDataset

from _reducer_scenarios import CaptureLogger, assert_same, make_plan, run_scenario
from tracklight.reducer import LightningReducer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _trainer(tmp_path: Any, callbacks: list[Any], **kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = {
        "default_root_dir": tmp_path,
        "max_epochs": 3,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "accelerator": "cpu",
        "devices": 1,
    }
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


@pytest.mark.parametrize("seed", range(16))
def test_randomised_scenarios_match_lightning(seed: int, tmp_path: Any) -> None:
    plan = make_plan(seed)
    expected = run_scenario(plan, tmp_path / "lightning", [])
    actual = run_scenario(plan, tmp_path / "tracklight", [LightningReducer()])
    # fast_dev_run swaps the loggers for a dummy: then only what the Trainer exposes is compared
    assert expected["log_metrics"] or plan.fast_dev_run, "the scenario logged nothing"
    assert expected["fit"]["callback_metrics"], "the scenario exposed nothing"
    assert_same(expected, actual)


# ---- monitors: checkpointing, early stopping, LR scheduling ----------------------------------------------


class MonitoredModule(pl.LightningModule):
    """A validation loss that improves, then worsens (so EarlyStopping stops); a plateau scheduler on it."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train_loss", loss, prog_bar=True, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        epoch = self.current_epoch
        value = batch[0].mean() * 0 + (epoch - 2) ** 2 + 0.1 * batch_idx
        self.log("val_loss", value, prog_bar=True)
        self.log("val_acc", 1.0 / (1.0 + value), reduce_fx="max")

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}

    def train_dataloader(self) -> Any:
        return DataLoader(TensorDataset(torch.randn(12, 2)), batch_size=4)

    def val_dataloader(self) -> Any:
        return DataLoader(TensorDataset(torch.randn(10, 2)), batch_size=3)


def _monitored_run(tmp_path: Any, extra: list[Any]) -> dict[str, Any]:
    torch.manual_seed(0)
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", monitor="val_loss", save_top_k=2, filename="{epoch}-{val_loss:.4f}-{val_acc:.3f}"
    )
    early = EarlyStopping(monitor="val_loss", patience=1)
    capture = CaptureLogger()
    trainer = _trainer(
        tmp_path,
        [checkpoint, early, LearningRateMonitor(), *extra],
        max_epochs=10,
        enable_checkpointing=True,
        logger=capture,
        log_every_n_steps=1,
    )
    module = MonitoredModule()
    trainer.fit(module)
    return {
        "best_model_score": checkpoint.best_model_score,
        "best_k_models": sorted((str(k).rsplit("/", 1)[-1], float(v)) for k, v in checkpoint.best_k_models.items()),
        "stopped_epoch": early.stopped_epoch,
        "wait_count": early.wait_count,
        "lr": trainer.optimizers[0].param_groups[0]["lr"],
        "global_step": trainer.global_step,
        "log_metrics": capture.calls,
        "callback_metrics": dict(trainer.callback_metrics),
        "progress_bar_metrics": dict(trainer.progress_bar_metrics),
    }


def test_checkpoint_early_stopping_and_plateau_monitors_see_the_same_values(tmp_path: Any) -> None:
    expected = _monitored_run(tmp_path / "lightning", [])
    actual = _monitored_run(tmp_path / "tracklight", [LightningReducer()])
    assert expected["stopped_epoch"] > 0 and expected["lr"] < 0.1, "the scenario must stop early and reduce the LR"
    assert [name for name, _ in actual["best_k_models"]] == [name for name, _ in expected["best_k_models"]]
    assert_same(expected, actual)


def test_progress_bar_shows_the_same_values(tmp_path: Any) -> None:
    results = []
    for extra in ([], [LightningReducer()]):
        torch.manual_seed(0)
        trainer = _trainer(tmp_path, extra, max_epochs=2, enable_progress_bar=True, logger=False)
        module = MonitoredModule()
        trainer.fit(module)
        bar = trainer.progress_bar_callback
        assert bar is not None
        results.append(bar.get_metrics(trainer, module))
    assert_same(results[0], results[1])
    assert {"train_loss_step", "train_loss_epoch", "val_loss"} <= set(results[1])


# ---- errors -----------------------------------------------------------------------------------------------

ERROR_CASES: dict[str, tuple[str, Any]] = {
    "nested dict": ("training_step", lambda m: m.log("bad", {"a": {"b": 1.0}})),
    "string": ("training_step", lambda m: m.log("bad", "text")),
    "tensor of 3": ("training_step", lambda m: m.log("bad", torch.ones(3))),
    "both levels off": ("training_step", lambda m: m.log("bad", 1.0, on_step=False, on_epoch=False)),
    "twice, other args": ("training_step", lambda m: (m.log("bad", 1.0), m.log("bad", 1.0, prog_bar=True))),
    "custom reduce_fx": ("training_step", lambda m: m.log("bad", 1.0, reduce_fx=torch.median)),
    "on_step at epoch end": ("on_train_epoch_end", lambda m: m.log("bad", 1.0, on_step=True)),
    "hook that cannot log": ("on_fit_start", lambda m: m.log("bad", 1.0)),
    "on_epoch=False at train start": ("on_train_start", lambda m: m.log("bad", 1.0, on_epoch=False)),
    "dataloader_idx in the key": ("training_step", lambda m: m.log("bad/dataloader_idx_0", 1.0)),
    "metric not an attribute": ("training_step", lambda m: m.log("bad", torchmetrics.MeanMetric())),
    "predict_step": ("predict_step", lambda m: m.log("bad", 1.0)),
}


class ErrorModule(pl.LightningModule):
    def __init__(self, case: str) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.metric = torchmetrics.MeanMetric()
        self.case = case

    def _hook(self, hook: str) -> None:
        where, call = ERROR_CASES[self.case]
        if where == hook:
            call(self)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        self._hook("training_step")
        return self.layer(batch[0]).sum()

    def predict_step(self, batch: Any, batch_idx: int) -> Any:
        self._hook("predict_step")
        return self.layer(batch[0])

    def on_train_epoch_end(self) -> None:
        self._hook("on_train_epoch_end")

    def on_fit_start(self) -> None:
        self._hook("on_fit_start")

    def on_train_start(self) -> None:
        self._hook("on_train_start")

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> Any:
        return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)

    def predict_dataloader(self) -> Any:
        return self.train_dataloader()


def _raised(tmp_path: Any, case: str, callbacks: list[Any]) -> BaseException:
    trainer = _trainer(tmp_path, callbacks, max_epochs=1, logger=False)
    module = ErrorModule(case)
    with pytest.raises(Exception) as raised:
        if case == "predict_step":
            trainer.predict(module)
        else:
            trainer.fit(module)
    return raised.value


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_are_lightnings_and_name_the_key_and_the_fix(case: str, tmp_path: Any) -> None:
    theirs = _raised(tmp_path, case, [])
    ours = _raised(tmp_path, case, [LightningReducer()])
    assert isinstance(ours, type(theirs)), f"{type(ours).__mro__} is not a {type(theirs)}"
    if case != "predict_step":  # predict is Lightning's own path: the opt-in does not log there
        assert "'bad" in str(ours) and "Fix:" in str(ours), str(ours)


# ---- the opt-in itself ------------------------------------------------------------------------------------


class PrefixModule(MonitoredModule):
    """Overrides ``log`` (a common pattern): the override keeps working and still reaches the reducer."""

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        super().log(f"prefixed/{name}", value, *args, **kwargs)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_module_that_overrides_log_keeps_its_override(tmp_path: Any) -> None:
    captures = []
    for extra in ([], [LightningReducer()]):
        torch.manual_seed(0)
        capture = CaptureLogger()
        trainer = _trainer(tmp_path, extra, max_epochs=2, logger=capture, log_every_n_steps=1)
        trainer.fit(PrefixModule())
        captures.append((capture.calls, dict(trainer.callback_metrics)))
    assert "prefixed/val_loss" in captures[1][1]
    assert_same(captures[0], captures[1])


class CheckingModule(MonitoredModule):
    """Records what the opt-in did to it while a run is going on."""

    seen: dict[str, Any] = {}

    def on_train_epoch_start(self) -> None:
        CheckingModule.seen["patched"] = "log" in self.__dict__
        duplicate = copy.deepcopy(self)
        CheckingModule.seen["copy_bound_to_copy"] = duplicate.log.__self__ is duplicate
        buffer = io.BytesIO()
        torch.save(self, buffer)  # a whole module saved mid-run loads back (with Lightning's own log)
        buffer.seek(0)
        CheckingModule.seen["reloads"] = isinstance(torch.load(buffer, weights_only=False), CheckingModule)


def test_the_module_is_patched_only_during_the_run_and_copies_stay_independent(tmp_path: Any) -> None:
    module = CheckingModule()
    trainer = _trainer(tmp_path, [LightningReducer()], max_epochs=1, logger=False)
    trainer.fit(module)
    assert CheckingModule.seen == {"patched": True, "copy_bound_to_copy": True, "reloads": True}
    assert "log" not in module.__dict__ and "log_dict" not in module.__dict__
    # the same Trainer keeps working for validate() and test() after fit()
    # epoch 1: (1 - 2) ** 2 plus 0.1 per batch index, batches of 3, 3, 3 and 1 samples
    expected = (1.0 * 3 + 1.1 * 3 + 1.2 * 3 + 1.3 * 1) / 10
    assert trainer.validate(module, verbose=False)[0]["val_loss"] == pytest.approx(expected, rel=1e-6)


def test_rank_zero_only_enable_graph_and_the_no_logger_warning(tmp_path: Any) -> None:
    class Module(MonitoredModule):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = self.layer(batch[0]).pow(2).mean()
            self.log("loss", loss, rank_zero_only=True, enable_graph=True, logger=True)
            return loss

    trainer = _trainer(tmp_path, [LightningReducer()], max_epochs=1, logger=False)
    with pytest.warns(UserWarning, match=r"'loss'.*no logger.*Fix"):
        trainer.fit(Module())
    assert not trainer.callback_metrics["loss"].requires_grad


class TransferCountingTensor(torch.Tensor):
    transfers: list[int] = []
    step = -1

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") in ("item", "tolist", "__float__", "__bool__", "__int__", "numpy", "cpu"):
            cls.transfers.append(cls.step)
        return super().__torch_function__(func, types, args, kwargs or {})


class CountingModule(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        TransferCountingTensor.step = self.global_step
        loss = self.layer(batch[0]).pow(2).mean()
        counted = loss.detach().as_subclass(TransferCountingTensor)
        for key in range(10):
            self.log(f"m{key}", counted + key, on_step=True, on_epoch=True, prog_bar=key == 0)
        return loss

    def on_train_epoch_end(self) -> None:
        TransferCountingTensor.step = 1000

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> Any:
        return DataLoader(TensorDataset(torch.randn(120, 2)), batch_size=1)


def test_no_host_transfer_per_call_under_the_trainer(tmp_path: Any) -> None:
    TransferCountingTensor.transfers = []
    trainer = _trainer(tmp_path, [LightningReducer()], max_epochs=1, logger=CaptureLogger(), log_every_n_steps=50)
    trainer.fit(CountingModule())
    # steps 49 and 99 reach the logger (one batched transfer each); everything else waits for the epoch end
    assert sorted(set(TransferCountingTensor.transfers)) == [49, 99, 1000]
    assert TransferCountingTensor.transfers.count(49) == 1


def test_lightnings_own_path_transfers_on_every_step_for_comparison(tmp_path: Any) -> None:
    TransferCountingTensor.transfers = []
    trainer = _trainer(tmp_path, [], max_epochs=1, logger=CaptureLogger(), log_every_n_steps=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(CountingModule())
    assert len(set(TransferCountingTensor.transfers)) > 100  # the prog_bar value, every step


def test_misconfiguration_is_both_errors() -> None:
    from tracklight.reducer import LoggingMisuseError
    from tracklight.reducer._lightning_loop import LightningMisuseError

    assert issubclass(LightningMisuseError, MisconfigurationException)
    assert issubclass(LightningMisuseError, LoggingMisuseError)
    with pytest.raises(ValueError, match=r"sync_steps='always'"):
        LightningReducer(sync_steps="always")
