"""The ``log``/``log_dict`` the opt-in gives a LightningModule: Lightning's checks, tracklight's store.

They replace the module's methods for one run (instance attributes, removed at teardown) and fall back
to Lightning's own methods wherever the opt-in is not in charge: under Fabric, without a Trainer, in
barebones mode, in ``predict``.
"""

from __future__ import annotations

from types import MethodType
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature
from torch import Tensor

from tracklight._errors import TracklightWarning
from tracklight.reducer._hooks import known_levels, resolve_levels
from tracklight.reducer._lightning_loop import LightningMisuseError, LightningStore, active_store
from tracklight.reducer._values import is_metric, keep_tensor, normalize
from tracklight.reducer.api import _dataloader_idx_in_name, dict_items

__all__ = ["patch_module", "unpatch_module"]

_PATCHED = "_tracklight_reducer_patched"
_STATE = "_tracklight_reducer_state"


class _LogState:
    """Per-module facts the hot path reads, worked out once per run."""

    __slots__ = ("active", "dataloader_iter", "distributed", "warned_no_logger")

    def __init__(self, module: pl.LightningModule, distributed: bool) -> None:
        self.distributed = distributed
        self.dataloader_iter = is_param_in_hook_signature(module.training_step, "dataloader_iter", explicit=True)
        self.warned_no_logger: set[str] = set()
        #: ``[stage, fn, store]`` of the last call (see ``active_store``).
        self.active: list[Any] = [None, None, None]

    def __deepcopy__(self, memo: dict[int, Any]) -> _LogState:
        copy = _LogState.__new__(_LogState)
        copy.distributed, copy.dataloader_iter = self.distributed, self.dataloader_iter
        copy.warned_no_logger = set()
        copy.active = [None, None, None]
        return copy

    def __getstate__(self) -> dict[str, Any]:
        return {"distributed": self.distributed, "dataloader_iter": self.dataloader_iter}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.distributed, self.dataloader_iter = state["distributed"], state["dataloader_iter"]
        self.warned_no_logger = set()
        self.active = [None, None, None]


def patch_module(module: pl.LightningModule, distributed: bool) -> None:
    """Route ``module.log``/``module.log_dict`` (and the callbacks' copies) through the tracklight store."""
    unpatch_module(module)
    cls = type(module)
    patched = []
    # Bound methods, not closures: copy.deepcopy(module) rebinds them to the copy.
    if cls.log is pl.LightningModule.log:
        # A module that overrides log() keeps it; its super().log() still reaches the store, only slower.
        object.__setattr__(module, "log", MethodType(_log, module))
        patched.append("log")
    if cls.log_dict is pl.LightningModule.log_dict:
        object.__setattr__(module, "log_dict", MethodType(_log_dict, module))
        patched.append("log_dict")
    object.__setattr__(module, _STATE, _LogState(module, distributed))
    object.__setattr__(module, _PATCHED, patched)
    _attach_to_callbacks(module)


def unpatch_module(module: pl.LightningModule) -> None:
    """Give ``module`` back Lightning's own ``log``/``log_dict``."""
    for name in module.__dict__.pop(_PATCHED, ()):
        module.__dict__.pop(name, None)
    module.__dict__.pop(_STATE, None)
    _attach_to_callbacks(module)


def _attach_to_callbacks(module: pl.LightningModule) -> None:
    # Lightning hands each callback the module's bound log/log_dict at the start of a run, before setup().
    trainer = module._trainer
    if trainer is not None:
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            callback.log = module.log
            callback.log_dict = module.log_dict


def _not_managed(name: str) -> str:
    return (
        "You are trying to `self.log()` but it is not managed by the `Trainer` control flow: "
        f"self.log({name!r}, ...) was called outside the hooks the Trainer runs, so there is no loop to log into. "
        "Fix: call it from training_step, validation_step, test_step or a hook the Trainer calls."
    )


def _metric_attribute(module: pl.LightningModule, metric: Any, name: str) -> str:
    attributes = module._metric_attributes
    if attributes is None:
        attributes = {id(m): attr for attr, m in module.named_modules() if is_metric(m)}
        module._metric_attributes = attributes
    attribute = attributes.get(id(metric))
    if attribute is None:
        # Lightning's two sentences (one when the module holds no Metric at all), then what tracklight adds
        said = "Could not find the `LightningModule` attribute for the `torchmetrics.Metric` logged."
        if attributes:
            said += (
                f" You can fix this by calling `self.log({name}, ..., metric_attribute=name)` where `name` is one of "
                f"{list(attributes.values())}. Fix: pass metric_attribute=, or assign"
            )
        else:
            said += " You can fix this by setting an attribute for the metric in your `LightningModule`. Fix: assign"
        raise LightningMisuseError(
            f"{said} the Metric logged as {name!r} in __init__ (self.my_metric = Metric(...)), so that its state is "
            "saved and restored with the module."
        )
    return attribute


def _log(
    module: pl.LightningModule,
    name: str,
    value: Any,
    prog_bar: bool = False,
    logger: bool | None = None,
    on_step: bool | None = None,
    on_epoch: bool | None = None,
    reduce_fx: Any = "mean",
    enable_graph: bool = False,
    sync_dist: bool = False,
    sync_dist_group: Any = None,
    add_dataloader_idx: bool = True,
    batch_size: int | None = None,
    metric_attribute: str | None = None,
    rank_zero_only: bool = False,
) -> None:
    """``LightningModule.log`` through tracklight's store (same arguments, same checks)."""
    trainer = module._trainer
    results = None
    if trainer is not None and not trainer.barebones:
        facts = module.__dict__[_STATE]
        active = facts.active
        state = trainer.state
        # active_store(), inlined: this is the hot path
        hit = state.stage is active[0] and state.fn is active[1]
        results = active[2] if hit else active_store(trainer, active)
    if type(results) is not LightningStore or module._fabric is not None:
        # not ours to handle: Lightning warns, raises or forwards to Fabric as it always does
        return pl.LightningModule.log(
            module,
            name,
            value,
            prog_bar,
            logger,
            on_step,
            on_epoch,
            reduce_fx,
            enable_graph,
            sync_dist,
            sync_dist_group,
            add_dataloader_idx,
            batch_size,
            metric_attribute,
            rank_zero_only,
        )
    fx = module._current_fx_name
    if isinstance(value, Tensor):
        value = keep_tensor(name, value, "self.log", fx)
        metric = False
    else:
        value, metric = normalize(name, value, "self.log", fx)
    if fx is None:
        raise LightningMisuseError(_not_managed(name))
    levels = known_levels.get((fx, on_step, on_epoch))
    if levels is None:
        levels = resolve_levels(fx, name, on_step, on_epoch, "self.log", LightningMisuseError)
    on_step, on_epoch = levels
    if add_dataloader_idx and "/dataloader_idx_" in name:
        raise LightningMisuseError(_dataloader_idx_in_name(name, "self.log"))
    connector = trainer._logger_connector  # type: ignore[union-attr]
    if connector._current_fx != fx and connector._first_loop_iter in (None, True):
        results.reset(metrics=False, fx=fx)  # the first batch of a new loop: start this hook's values afresh
    if metric and metric_attribute is None:
        metric_attribute = _metric_attribute(module, value, name)
    if facts.dataloader_iter and batch_size is None and trainer.training:  # type: ignore[union-attr]
        raise LightningMisuseError(
            "With `def training_step(self, dataloader_iter)`, `self.log(..., batch_size=...)` should be provided: "
            f"the step cannot see the batch, so the batch size of {name!r} cannot be inferred. "
            f"Fix: pass self.log({name!r}, ..., batch_size=n)."
        )
    if logger is None:
        logger = True
    elif logger and trainer.logger is None and name not in facts.warned_no_logger:  # type: ignore[union-attr]
        facts.warned_no_logger.add(name)
        rank_zero_warn(
            f"You called `self.log({name!r}, ..., logger=True)` but have no logger configured. You can enable one by "
            "doing `Trainer(logger=ALogger(...))`: without one the value only reaches callback_metrics. Fix: pass "
            "Trainer(logger=...), e.g. Trainer(logger=tracklight.loggers.CSVLogger('logs')).",
            category=TracklightWarning,
        )
    results.record(
        fx,
        name,
        value,
        metric,
        prog_bar,
        logger,
        on_step,
        on_epoch,
        reduce_fx,
        enable_graph,
        sync_dist and facts.distributed,
        sync_dist_group,
        add_dataloader_idx,
        batch_size,
        metric_attribute,
        rank_zero_only,
    )
    connector._current_fx = fx
    return None


def _log_dict(
    module: pl.LightningModule,
    dictionary: Any,
    prog_bar: bool = False,
    logger: bool | None = None,
    on_step: bool | None = None,
    on_epoch: bool | None = None,
    reduce_fx: Any = "mean",
    enable_graph: bool = False,
    sync_dist: bool = False,
    sync_dist_group: Any = None,
    add_dataloader_idx: bool = True,
    batch_size: int | None = None,
    rank_zero_only: bool = False,
) -> None:
    """``LightningModule.log_dict`` through tracklight's store."""
    if module._fabric is not None:
        return pl.LightningModule.log_dict(
            module,
            dictionary,
            prog_bar,
            logger,
            on_step,
            on_epoch,
            reduce_fx,
            enable_graph,
            sync_dist,
            sync_dist_group,
            add_dataloader_idx,
            batch_size,
            rank_zero_only,
        )
    log = module.log
    for name, value in dict_items(dictionary, "self.log_dict"):
        log(
            name=name,
            value=value,
            prog_bar=prog_bar,
            logger=logger,
            on_step=on_step,
            on_epoch=on_epoch,
            reduce_fx=reduce_fx,
            enable_graph=enable_graph,
            sync_dist=sync_dist,
            sync_dist_group=sync_dist_group,
            add_dataloader_idx=add_dataloader_idx,
            batch_size=batch_size,
            rank_zero_only=rank_zero_only,
        )
    return None


# A pickled bound method is restored as getattr(module, __name__): with these names, unpickling a module
# saved mid-run (torch.save(model)) gives it Lightning's own methods back instead of failing.
_log.__name__ = _log.__qualname__ = "log"
_log_dict.__name__ = _log_dict.__qualname__ = "log_dict"
