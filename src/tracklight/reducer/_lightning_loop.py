"""What the opt-in puts inside a Lightning ``Trainer``: a store per loop and a logger connector that reads it.

Lightning's loops and callbacks keep driving the cadence (when a step is logged, when an epoch ends,
what ``trainer.callback_metrics`` holds); only the data structure and the moments values cross to the
host change. :class:`LightningStore` stands in for ``_ResultCollection``; :class:`ReducerConnector`
is Lightning's ``_LoggerConnector`` with progress-bar values kept as tensors until read, step values
synced only on logged steps, and every dict of tensors turned into floats in one batched transfer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.trainer.connectors.logger_connector.logger_connector import _LoggerConnector
from lightning.pytorch.utilities.data import extract_batch_size
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from tracklight.reducer._accumulator import Entry, Store
from tracklight.reducer._errors import LoggingMisuseError
from tracklight.reducer._hooks import not_useful
from tracklight.reducer._values import Scalar, materialize, normalize, to_floats

__all__ = ["LightningMisuseError", "LightningStore", "ReducerConnector"]


class LightningMisuseError(LoggingMisuseError, MisconfigurationException):
    """A misuse of ``self.log`` under the opt-in: both tracklight's error and Lightning's."""


def _possible_user_warning(message: str) -> None:
    rank_zero_warn(message, category=PossibleUserWarning)


def active_store(trainer: Any, cache: list[Any]) -> Any:
    """``trainer._results`` (the store of the running loop), remembered per stage in ``cache``.

    ``trainer._results`` walks several properties (a few microseconds); which loop runs, and so which store
    it returns, only changes with the trainer's ``(stage, fn)``.
    """
    state = trainer.state
    if state.stage is cache[0] and state.fn is cache[1]:
        return cache[2]
    results = trainer._results
    cache[:] = [state.stage, state.fn, results]
    return results


class LightningStore(Store):
    """Lightning's ``_ResultCollection`` interface over a :class:`Store`."""

    def __init__(self, training: bool, stage: str) -> None:
        super().__init__(
            training,
            infer_batch_size=extract_batch_size,
            misuse_error=LightningMisuseError,
            warn=_possible_user_warning,
            stage=stage,
            call="self.log",
        )

    def log(
        self,
        fx: str,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool = True,
        on_step: bool = False,
        on_epoch: bool = True,
        reduce_fx: Any = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_fn: Any = None,
        sync_dist_group: Any = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        metric_attribute: str | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        """What Lightning's own ``LightningModule.log`` calls: used for modules that override ``log``."""
        if not on_step and not on_epoch:
            raise LightningMisuseError(not_useful(name, "self.log"))
        value, metric = normalize(name, value, "self.log", fx)
        self.record(
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
            sync_dist,
            sync_dist_group,
            add_dataloader_idx,
            batch_size,
            metric_attribute,
            rank_zero_only,
        )

    @property
    def result_metrics(self) -> list[Entry]:
        return list(self.entries.values())

    def valid_items(self) -> Any:
        return ((entry.fx, entry) for entry in self.valid())

    def to(self, *args: Any, **kwargs: Any) -> LightningStore:
        # Values stay where they were logged; Lightning moves its states to the CPU only to free device memory
        # at teardown, and the next run resets them anyway.
        return self

    def cpu(self) -> LightningStore:
        return self


class ReducerConnector(_LoggerConnector):
    """Lightning's logger connector, reading a :class:`LightningStore` without per-batch host transfers."""

    #: Reduce ``sync_dist`` step values on every step (as Lightning does) instead of only on logged steps.
    sync_every_step = False
    #: Whether the Trainer runs distributed (its ``sync_dist`` values are reduced across ranks).
    distributed = False

    def _store(self) -> LightningStore:
        results = active_store(self.trainer, self.__dict__.setdefault("_tracklight_active", [None, None, None]))
        assert isinstance(results, LightningStore)
        return results

    def _point(self, store: LightningStore) -> str | None:
        # Every rank of a distributed Trainer reaches the epoch ends together: there the sync_dist keys are
        # checked across ranks even where this rank has none. Not so for independent Trainers that happen
        # to share a process group, so only a distributed Trainer names the point.
        if not self.distributed:
            return None
        return f"the end of a {store.stage or 'loop'} epoch"

    def _train_step_logged(self) -> bool:
        trainer = self.trainer
        if trainer.fit_loop._should_accumulate() and trainer.lightning_module.automatic_optimization:
            return False
        return bool(self.should_update_logs or trainer.fast_dev_run)  # type: ignore[attr-defined]

    def _collect(self, metrics: Mapping[str, dict[str, Any]]) -> None:
        self._progress_bar_metrics.update(metrics["pbar"])
        self._callback_metrics.update(metrics["callback"])
        self._logged_metrics.update(metrics["log"])

    def on_batch_end(self) -> None:
        store = self._store()
        # Step values with sync_dist are reduced across ranks only when the step reaches the loggers
        # (every evaluation step does), unless asked to on every step.
        if store.syncs_steps and (
            self.sync_every_step or (self._train_step_logged() if store.training else not self.trainer.sanity_checking)
        ):
            store.sync_step(f"a logged {store.stage} step")
        self._collect(store.metrics(True))
        store.batch = None
        store.batch_size = None

    def on_epoch_end(self) -> None:
        assert self._first_loop_iter is None
        store = self._store()
        self._collect(store.metrics(False, point=self._point(store)))
        self._current_fx = None

    def update_eval_epoch_metrics(self) -> dict[str, Any]:
        assert self._first_loop_iter is None
        if self.trainer.sanity_checking:
            return {}
        store = self._store()
        metrics = store.metrics(False, point=self._point(store))
        self._collect(metrics)
        # what trainer.validate()/test() return: plain floats, as Lightning's (which are .item() of tensors)
        return {key: float(value) if isinstance(value, Scalar) else value for key, value in metrics["log"].items()}

    def update_train_epoch_metrics(self) -> None:
        assert self._first_loop_iter is None
        store = self._store()
        self.log_metrics(store.metrics(False, point=self._point(store))["log"])
        self.reset_results()

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        trainer = self.trainer
        if not trainer.loggers or not metrics:
            return
        logged = self._logged_metrics
        for key, value in metrics.items():
            # keep the Scalar (and the dtype it carries) an evaluation epoch already put here
            if not (type(value) is float and isinstance(logged.get(key), Scalar) and logged[key] == value):
                logged[key] = value
        numbers = to_floats(metrics)
        if step is None:
            explicit = numbers.pop("step", None)
            if explicit is not None:
                step = int(explicit)
            else:
                numbers.setdefault("epoch", trainer.current_epoch)
                step = trainer.fit_loop.epoch_loop._batches_that_stepped
        for logger in trainer.loggers:
            logger.log_metrics(metrics=numbers, step=step)
            logger.save()

    @property
    def callback_metrics(self) -> dict[str, Any]:
        if self.trainer._results:
            self._callback_metrics.update(self.metrics["callback"])
        return materialize(self._callback_metrics)

    @property
    def logged_metrics(self) -> dict[str, Any]:
        if self.trainer._results:
            self._logged_metrics.update(self.metrics["log"])
        return materialize(self._logged_metrics)

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        if self.trainer._results:
            self._progress_bar_metrics.update(self.metrics["pbar"])
        self._progress_bar_metrics.update(to_floats(self._progress_bar_metrics))
        return self._progress_bar_metrics
