"""Randomised ``self.log`` scenarios run through a real Trainer, with and without tracklight's opt-in.

A scenario is a seeded plan: for each hook (module hooks and a callback's), a list of log calls with
their flags, reduction, batch size and kind of value. :func:`run_scenario` runs ``fit`` (with sanity
check and two validation dataloaders of uneven lengths), then ``validate`` and ``test``, and captures
everything Lightning exposes: each ``log_metrics`` call of a logger, ``callback_metrics``,
``progress_bar_metrics``, ``logged_metrics`` and the dicts ``validate``/``test`` return.
:func:`assert_same` compares two captures: identical keys and steps, values within 1e-6 relative.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
import torchmetrics
from torch.utils.data import DataLoader, TensorDataset

from tracklight.loggers import Logger

TRAIN_HOOKS = (
    "training_step",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
)
EVAL_HOOKS = ("validation_step", "on_validation_batch_end", "test_step", "on_test_batch_start")
EPOCH_HOOKS = (
    "on_train_start",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_validation_start",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_test_epoch_end",
)
CALLBACK_HOOKS = ("on_train_batch_end", "on_validation_batch_end", "on_validation_epoch_end", "on_train_epoch_end")
REDUCE_FX: tuple[Any, ...] = ("mean", "avg", "sum", "MAX", "min", torch.mean, torch.sum, torch.max, min, sum)
KINDS = (
    "batch",
    "float",
    "int",
    "bool",
    "f64",
    "param",
    "shape1",
    "int_tensor",
    "metric",
    "loss",
    "dict",
    "collection",
    "step",
)


class CaptureLogger(Logger):
    """Records every ``log_metrics`` call as ``(step, {key: float})``."""

    def __init__(self) -> None:
        self.calls: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "capture"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self.calls.append((step, {key: float(value) for key, value in metrics.items()}))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass(frozen=True)
class LogCall:
    name: str
    kind: str
    prog_bar: bool
    logger: bool | None
    on_step: bool | None
    on_epoch: bool | None
    reduce_fx: Any
    batch_size: int | None
    scale: float


@dataclass
class Plan:
    seed: int
    calls: dict[str, list[LogCall]] = field(default_factory=dict)
    callback_calls: dict[str, list[LogCall]] = field(default_factory=dict)
    log_every_n_steps: int = 2
    train_batches: int = 5
    accumulate: int = 1
    val_check_interval: float | None = None
    max_steps: int = -1
    check_val_every_n_epoch: int = 1
    fast_dev_run: bool = False
    manual_optimization: bool = False
    float64_default: bool = False


def _levels(rng: random.Random, hook: str) -> tuple[bool | None, bool | None]:
    if hook in EPOCH_HOOKS:
        return rng.choice([(None, None), (False, True), (None, True), (False, None)])
    return rng.choice([(None, None), (True, True), (True, False), (False, True), (True, None), (None, True)])


def make_plan(seed: int) -> Plan:
    """A random but reproducible plan of log calls over hooks, flags, reductions, batch sizes and values."""
    rng = random.Random(seed)
    plan = Plan(
        seed,
        log_every_n_steps=rng.choice([1, 2, 3, 50]),
        accumulate=rng.choice([1, 1, 2]),
        val_check_interval=rng.choice([None, None, 0.5]),
        max_steps=rng.choice([-1, -1, 7]),
        check_val_every_n_epoch=rng.choice([1, 1, 2]),
        fast_dev_run=rng.random() < 0.1,
        manual_optimization=rng.random() < 0.15,
        float64_default=rng.random() < 0.1,
    )
    if plan.manual_optimization:
        plan.accumulate = 1
    names = [f"m{i}" for i in range(12)]

    def calls(hook: str, count: int, prefix: str) -> list[LogCall]:
        out = []
        for i in range(count):
            kind = rng.choice(KINDS)
            if kind == "loss" and hook != "training_step":
                kind = "batch"
            if kind in ("metric", "collection") and hook in EPOCH_HOOKS:
                kind = "float"
            if kind == "collection" and prefix:  # its keys are fixed: module and callback hooks share names
                kind = "dict"
            if kind == "step" and (prefix or hook not in ("validation_step", "on_validation_epoch_end")):
                kind = "float"
            on_step, on_epoch = _levels(rng, hook)
            reduce_fx = "mean" if kind in ("metric", "collection") else rng.choice(REDUCE_FX)
            out.append(
                LogCall(
                    name=f"{prefix}{rng.choice(names)}_{i}" if rng.random() < 0.8 else f"{prefix}shared",
                    kind=kind,
                    prog_bar=rng.random() < 0.3,
                    logger=rng.choice([None, None, True, False]),
                    on_step=on_step,
                    on_epoch=on_epoch,
                    reduce_fx=reduce_fx,
                    batch_size=rng.choice([None, None, 3, 7]),
                    scale=rng.uniform(0.5, 2.0),
                )
            )
        return out

    for hook in TRAIN_HOOKS + EVAL_HOOKS + EPOCH_HOOKS:
        plan.calls[hook] = calls(hook, rng.randint(0, 3), "")
    for hook in CALLBACK_HOOKS:
        plan.callback_calls[hook] = calls(hook, rng.randint(0, 2), "cb_")
    return plan


def _keys(call: LogCall) -> set[str]:
    if call.kind == "step":
        return {"step"}
    if call.kind == "collection":
        return {"c_max", "c_sum"}
    if call.kind == "dict":
        return {f"{call.name}_a", f"{call.name}_b"}
    return {call.name}


def _dedupe(calls: list[LogCall]) -> list[LogCall]:
    # the same key twice in one hook with other arguments is an error in both paths: keep the first
    kept: list[LogCall] = []
    seen: set[str] = set()
    for call in calls:
        if not _keys(call) & seen:
            kept.append(call)
            seen |= _keys(call)
    return kept


class _Logs:
    """Executes planned calls; values depend only on the batch, the step and the model, never on the path."""

    def __init__(self, module: ScenarioModule) -> None:
        self.module = module

    def value(self, call: LogCall, batch: Any, loss: Any = None) -> Any:
        module = self.module
        x = batch[0] if batch is not None else torch.full((2, 3), float(module.global_step + 1))
        base = float(module.global_step + 1) * call.scale
        if call.kind == "loss" and loss is not None:
            return loss * call.scale
        if call.kind == "batch":
            return x.float().mean() * call.scale + module.counter * 0.01
        if call.kind == "float":
            return base + module.counter * 0.125
        if call.kind == "int":
            return int(base) + module.counter
        if call.kind == "bool":
            return module.counter % 2 == 0
        if call.kind == "step":  # a "step" key sets the step of the logger call, where there is no step
            return float(module.global_step * 10 + 3)
        if call.kind == "f64":
            return (x.double().mean() + module.counter) * call.scale
        if call.kind == "param":
            return module.layer.weight[0, 0]
        if call.kind == "shape1":
            return (x.float().sum(0)[:1] * call.scale).reshape(1)
        if call.kind == "int_tensor":
            return torch.tensor(module.counter % 5)
        if call.kind == "metric":
            metric = module.metric_a
            metric(x.float().mean(1) * call.scale)
            return metric
        if call.kind == "collection":
            module.collection(x.float().mean(1) * call.scale)
            return module.collection
        if call.kind == "dict":
            return {f"{call.name}_a": base, f"{call.name}_b": x.float().max() * call.scale}
        return base

    def run(self, calls: list[LogCall], log: Any, log_dict: Any, batch: Any = None, loss: Any = None) -> None:
        module = self.module
        for call in _dedupe(calls):
            module.counter += 1
            kwargs: dict[str, Any] = {"prog_bar": call.prog_bar, "reduce_fx": call.reduce_fx}
            if call.logger is not None:
                kwargs["logger"] = call.logger
            if call.on_step is not None:
                kwargs["on_step"] = call.on_step
            if call.on_epoch is not None:
                kwargs["on_epoch"] = call.on_epoch
            if call.batch_size is not None:
                kwargs["batch_size"] = call.batch_size
            value = self.value(call, batch, loss)
            if call.kind in ("dict", "collection"):
                log_dict(value, **kwargs)
            elif call.kind == "step":
                kwargs.update(on_step=False, on_epoch=True, reduce_fx="max", logger=True)
                log("step", value, **kwargs)
            else:
                log(call.name, value, **kwargs)


class ScenarioModule(pl.LightningModule):
    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self.layer = torch.nn.Linear(3, 1)
        self.metric_a = torchmetrics.MeanMetric()
        self.collection = torchmetrics.MetricCollection(
            {"c_max": torchmetrics.MaxMetric(), "c_sum": torchmetrics.SumMetric()}
        )
        self.counter = 0
        self.logs = _Logs(self)
        self.automatic_optimization = not plan.manual_optimization

    def _run(self, hook: str, batch: Any = None, loss: Any = None) -> None:
        self.logs.run(self.plan.calls.get(hook, []), self.log, self.log_dict, batch, loss)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.layer(batch[0]).pow(2).mean()
        self._run("training_step", batch, loss)
        if self.plan.manual_optimization:
            optimizer = self.optimizers()
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            return None
        return loss

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._run("on_train_batch_start", batch)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._run("on_train_batch_end", batch)

    def on_before_backward(self, loss: Any) -> None:
        self._run("on_before_backward")

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        self._run("on_before_optimizer_step")

    def on_before_zero_grad(self, optimizer: Any) -> None:
        self._run("on_before_zero_grad")

    def on_train_start(self) -> None:
        self._run("on_train_start")

    def on_validation_start(self) -> None:
        self._run("on_validation_start")

    def on_validation_epoch_start(self) -> None:
        self._run("on_validation_epoch_start")

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._run("validation_step", batch)

    def on_validation_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._run("on_validation_batch_end", batch)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._run("test_step", batch)

    def on_test_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._run("on_test_batch_start", batch)

    def on_train_epoch_start(self) -> None:
        self._run("on_train_epoch_start")

    def on_train_epoch_end(self) -> None:
        self._run("on_train_epoch_end")

    def on_validation_epoch_end(self) -> None:
        self._run("on_validation_epoch_end")

    def on_test_epoch_end(self) -> None:
        self._run("on_test_epoch_end")

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def train_dataloader(self) -> Any:
        g = torch.Generator().manual_seed(self.plan.seed)
        return DataLoader(TensorDataset(torch.randn(4 * self.plan.train_batches, 3, generator=g)), batch_size=4)

    def val_dataloader(self) -> Any:
        g = torch.Generator().manual_seed(self.plan.seed + 1)
        return [
            DataLoader(TensorDataset(torch.randn(7, 3, generator=g)), batch_size=2),
            DataLoader(TensorDataset(torch.randn(5, 3, generator=g)), batch_size=4),
        ]

    def test_dataloader(self) -> Any:
        g = torch.Generator().manual_seed(self.plan.seed + 2)
        return DataLoader(TensorDataset(torch.randn(9, 3, generator=g)), batch_size=4)


class ScenarioCallback(pl.Callback):
    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def _run(self, hook: str, pl_module: ScenarioModule, batch: Any = None) -> None:
        pl_module.logs.run(self.plan.callback_calls.get(hook, []), self.log, self.log_dict, batch)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._run("on_train_batch_end", pl_module, batch)

    def on_validation_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._run("on_validation_batch_end", pl_module, batch)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._run("on_validation_epoch_end", pl_module)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._run("on_train_epoch_end", pl_module)


def run_scenario(plan: Plan, tmp_path: Any, callbacks: list[Any]) -> dict[str, Any]:
    """Run ``fit``, ``validate`` and ``test`` on the plan; return what the loggers and the Trainer exposed."""
    previous = torch.get_default_dtype()
    if plan.float64_default:
        torch.set_default_dtype(torch.float64)
    try:
        return _run_scenario(plan, tmp_path, callbacks)
    finally:
        torch.set_default_dtype(previous)


def _run_scenario(plan: Plan, tmp_path: Any, callbacks: list[Any]) -> dict[str, Any]:
    torch.manual_seed(plan.seed)
    capture = CaptureLogger()
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=3,
        logger=capture,
        callbacks=[ScenarioCallback(plan), *callbacks],
        log_every_n_steps=plan.log_every_n_steps,
        val_check_interval=plan.val_check_interval,
        max_steps=plan.max_steps,
        check_val_every_n_epoch=plan.check_val_every_n_epoch if plan.val_check_interval is None else 1,
        fast_dev_run=plan.fast_dev_run,
        accumulate_grad_batches=plan.accumulate,
        num_sanity_val_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=1,
    )
    module = ScenarioModule(plan)
    out: dict[str, Any] = {}
    trainer.fit(module)
    out["fit"] = _exposed(trainer)
    out["validate"] = trainer.validate(module, verbose=False)
    out["after_validate"] = _exposed(trainer)
    out["test"] = trainer.test(module, verbose=False)
    out["after_test"] = _exposed(trainer)
    out["log_metrics"] = capture.calls
    return out


def _exposed(trainer: pl.Trainer) -> dict[str, Any]:
    return {
        "callback_metrics": dict(trainer.callback_metrics),
        "progress_bar_metrics": dict(trainer.progress_bar_metrics),
        "logged_metrics": dict(trainer.logged_metrics),
    }


def assert_same(expected: Any, actual: Any, path: str = "") -> None:
    """Same structure and keys, same steps, tensors of the same dtype, values within 1e-6 relative.

    Values of order one may also differ by 1e-6 absolute: Lightning accumulates epoch values in float32,
    tracklight in float64, and where mixed-sign values cancel (a sum close to zero) Lightning's rounding
    error, not tracklight's, is what exceeds 1e-6 relative.
    """
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert sorted(expected) == sorted(actual), f"{path}: keys differ: {sorted(set(expected) ^ set(actual))}"
        for key in expected:
            assert_same(expected[key], actual[key], f"{path}/{key}")
    elif isinstance(expected, list | tuple):
        assert isinstance(actual, list | tuple) and len(expected) == len(actual), (
            f"{path}: {len(expected)} items expected, got {len(actual)}"
        )
        for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif (
        expected is None or isinstance(expected, str) or (isinstance(expected, int) and not isinstance(expected, bool))
    ):
        # steps, names: exact
        assert expected == actual, f"{path}: {expected!r} != {actual!r}"
    else:
        if isinstance(expected, torch.Tensor):
            assert isinstance(actual, torch.Tensor), f"{path}: a tensor expected, got {type(actual).__name__}"
            assert expected.dtype == actual.dtype, f"{path}: dtype {expected.dtype} != {actual.dtype}"
        a, b = float(expected), float(actual)
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6), (
            f"{path}: {a!r} != {b!r}"
        )
