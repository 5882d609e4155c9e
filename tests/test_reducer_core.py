"""The reducer without a Trainer: the reductions table, MetricReducer's cadence and values, its errors,
the loggers it sends to (a list, a LoggerCollection, Fabric's), and that values stay on the device."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import warnings
from typing import Any

import pytest
import torch
import torchmetrics

from tracklight._errors import TracklightWarning
from tracklight.loggers import CSVLogger, LoggerCollection
from tracklight.reducer import REDUCTIONS, InvalidMetricError, LoggingMisuseError, MetricReducer
from tracklight.reducer._table import resolve_reduction
from tracklight.reducer._values import Scalar


class ListLogger:
    """Keeps every ``log_metrics`` call; duck-typed, as MetricReducer accepts any logger-like object."""

    def __init__(self) -> None:
        self.calls: list[tuple[int | None, dict[str, float]]] = []
        self.saves = 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append((step, dict(metrics)))

    def save(self) -> None:
        self.saves += 1


# ---- the table ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("mean", "mean"),
        ("AVG", "mean"),
        ("Mean", "mean"),
        (torch.mean, "mean"),
        ("sum", "sum"),
        (sum, "sum"),
        (torch.sum, "sum"),
        ("MAX", "max"),
        (max, "max"),
        (torch.max, "max"),
        ("min", "min"),
        (min, "min"),
        (torch.min, "min"),
    ],
)
def test_every_spelling_of_a_reduction_resolves(spelling: Any, name: str) -> None:
    assert resolve_reduction(spelling, "k") is REDUCTIONS[name]


@pytest.mark.parametrize("bad", ["median", torch.median, lambda x: x, "std"])
def test_other_reductions_are_refused_naming_the_key_and_the_fix(bad: Any) -> None:
    with pytest.raises(LoggingMisuseError, match=r"'val_loss'.*Fix: .*torchmetrics"):
        resolve_reduction(bad, "val_loss")


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_folding_matches_a_float64_reference(name: str) -> None:
    values = [0.25, -1.5, 3.0, 1e-3, 7.125]
    weights = [4.0, 4.0, 1.0, 3.0, 2.0]
    reduction = REDUCTIONS[name]
    folded = reduction.fold(torch.tensor(values, dtype=torch.float32), weights, torch.float64)
    f32 = [float(torch.tensor(v, dtype=torch.float32)) for v in values]
    expected = {
        "mean": math.fsum(v * w for v, w in zip(f32, weights, strict=True)),
        "sum": math.fsum(f32),
        "max": max(f32),
        "min": min(f32),
    }[name]
    assert folded.dtype == torch.float64
    assert float(folded) == pytest.approx(expected, rel=1e-15)
    # merging partial states (tensor with tensor, tensor with float, float with float) gives the same
    a = reduction.fold(torch.tensor(values[:2]), weights[:2], torch.float64)
    b = reduction.fold(torch.tensor(values[2:]), weights[2:], torch.float64)
    assert float(reduction.merge_tensors(a, b)) == pytest.approx(expected, rel=1e-15)
    assert float(reduction.merge_tensors(a, float(b))) == pytest.approx(expected, rel=1e-15)
    assert reduction.merge(float(a), float(b)) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("name", ["max", "min"])
def test_a_nan_step_is_kept_by_max_and_min_in_any_order(name: str) -> None:
    reduction = REDUCTIONS[name]
    assert math.isnan(reduction.merge(math.nan, 1.0))
    assert math.isnan(reduction.merge(1.0, math.nan))
    assert math.isnan(float(reduction.fold(torch.tensor([1.0, math.nan, 2.0]), None, torch.float64)))


# ---- MetricReducer: cadence, keys, steps ---------------------------------------------------------------------


def test_training_and_validation_cadence_keys_and_steps() -> None:
    logger = ListLogger()
    reducer = MetricReducer(logger, log_every_n_steps=2)
    reducer.start_epoch("train")
    for step in range(5):
        reducer.log("loss", torch.tensor(float(step)), prog_bar=True, on_epoch=True, batch_size=2)
        reducer.log("lr", 0.1)  # training default: on_step only
        reducer.step()
        if step == 2:  # validation inside the training epoch, with two dataloaders
            reducer.start_epoch("validate")
            for dataloader_idx, values in enumerate([(1.0, 3.0), (10.0,)]):
                for value in values:
                    reducer.start_batch(dataloader_idx=dataloader_idx)
                    reducer.log("acc", torch.tensor(value), batch_size=1)  # validation default: on_epoch only
                    reducer.log("seen", value, on_step=True, on_epoch=False)
                    reducer.step()
            assert reducer.end_epoch() == {
                "acc/dataloader_idx_0": 2.0,
                "acc/dataloader_idx_1": 10.0,
            }
    epoch = reducer.end_epoch()

    assert epoch == {"loss_epoch": 2.0}
    assert logger.calls == [
        (1, {"loss_step": 1.0, "lr": 0.1, "epoch": 0}),
        (0, {"seen/dataloader_idx_0": 1.0}),
        (1, {"seen/dataloader_idx_0": 3.0}),
        (0, {"seen/dataloader_idx_1": 10.0}),
        (3, {"acc/dataloader_idx_0": 2.0, "acc/dataloader_idx_1": 10.0, "epoch": 0}),
        (3, {"loss_step": 3.0, "lr": 0.1, "epoch": 0}),
        (4, {"loss_epoch": 2.0, "epoch": 0}),  # the step of the epoch's last batch, as Lightning
    ]
    assert logger.saves == len(logger.calls)
    assert reducer.global_step == 5 and reducer.current_epoch == 1
    assert reducer.progress_bar_metrics == {"loss_step": 4.0, "loss_epoch": 2.0}
    callback = reducer.callback_metrics
    assert set(callback) == {
        "loss",
        "loss_step",
        "loss_epoch",
        "lr",
        "acc/dataloader_idx_0",
        "acc/dataloader_idx_1",
    }
    assert all(isinstance(value, torch.Tensor) for value in callback.values())
    assert callback["loss"].item() == 2.0 and callback["lr"].dtype == torch.float32


def test_gradient_accumulation_and_should_stop() -> None:
    logger = ListLogger()
    reducer = MetricReducer(logger, log_every_n_steps=3)
    with reducer.epoch("train"):
        for batch in range(4):
            reducer.log("loss", float(batch))
            reducer.step(optimizer_stepped=batch % 2 == 1)  # two batches per optimizer step
        reducer.should_stop = True  # the last step is sent whatever the cadence
        reducer.log("loss", 9.0)
        reducer.step()
    assert reducer.global_step == 3
    assert logger.calls == [(2, {"loss": 9.0, "epoch": 0})]


def test_an_exception_inside_an_epoch_closes_it_without_sending() -> None:
    logger = ListLogger()
    reducer = MetricReducer(logger)
    with pytest.raises(KeyError), reducer.epoch("validate"):
        reducer.log("acc", 1.0)
        raise KeyError("data")
    assert reducer.stage is None and logger.calls == []
    with reducer.epoch("validate"):
        reducer.log("acc", 0.5)
    assert logger.calls == [(0, {"acc": 0.5, "epoch": 0})]


def test_an_explicit_step_key_sets_the_step_of_epoch_values() -> None:
    logger = ListLogger()
    reducer = MetricReducer(logger)
    with reducer.epoch("validate"):
        reducer.log("step", 41.0, reduce_fx="max")
        reducer.log("acc", 0.5)
        reducer.step()
    assert logger.calls == [(41, {"acc": 0.5})]


def test_epoch_mean_is_the_exact_weighted_mean_in_float64() -> None:
    samples = [0.1 * i + 1e-9 * i * i for i in range(1001)]
    sizes = [7] * 142 + [7]  # 143 batches: the last one uneven
    sizes[-1] = 1001 - 7 * 142
    reducer = MetricReducer()
    reducer.start_epoch("validate")
    start = 0
    for size in sizes:
        batch = torch.tensor(samples[start : start + size], dtype=torch.float64)
        reducer.log("mean", batch.mean(), batch_size=size)
        reducer.log("mean_py", float(batch.mean()), batch_size=size)
        start += size
        reducer.step()
    result = reducer.end_epoch()
    exact = math.fsum(samples) / len(samples)
    assert result["mean"] == pytest.approx(exact, rel=1e-12)
    assert result["mean_py"] == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_long_epochs_fold_their_buffers_without_changing_the_result(name: str) -> None:
    from tracklight.reducer._entry import FOLD_AT

    values = [math.sin(i) * 3 + 0.01 * i for i in range(3 * FOLD_AT + 17)]
    sizes = [1 + i % 5 for i in range(len(values))]
    reducer = MetricReducer()
    reducer.start_epoch("validate")
    for i, (value, size) in enumerate(zip(values, sizes, strict=True)):
        logged = value if i % 3 == 0 else torch.tensor(value, dtype=torch.float64)  # numbers and tensors mixed
        reducer.log("v", logged, reduce_fx=name, batch_size=size)
        reducer.step()
        pending = next(iter(reducer._stores["validate"].entries.values())).pending
        assert len(pending) < FOLD_AT  # memory stays bounded however long the epoch
    result = reducer.end_epoch()["v"]
    expected = {
        "mean": math.fsum(v * s for v, s in zip(values, sizes, strict=True)) / sum(sizes),
        "sum": math.fsum(values),
        "max": max(values),
        "min": min(values),
    }[name]
    assert result == pytest.approx(expected, rel=1e-12)


def test_batch_size_is_inferred_from_the_batch() -> None:
    reducer = MetricReducer()
    reducer.start_epoch("validate")
    for size in (4, 1):
        batch = {"x": torch.zeros(size, 3), "y": [torch.zeros(size)]}
        reducer.start_batch(batch)
        reducer.log("v", torch.tensor(float(size)))
        reducer.step()
    assert reducer.end_epoch()["v"] == pytest.approx((4 * 4 + 1 * 1) / 5)
    reducer.start_epoch("validate")
    reducer.start_batch({"text": "no tensors here"})
    with pytest.raises(LoggingMisuseError, match=r"batch_size=n"):
        reducer.log("v", torch.tensor(1.0))


def test_metrics_are_reduced_by_their_own_compute_and_reset_per_epoch() -> None:
    logger = ListLogger()
    reducer = MetricReducer(logger, log_every_n_steps=1)
    metric = torchmetrics.MeanMetric()
    for epoch_values in ([1.0, 2.0, 6.0], [10.0]):
        with reducer.epoch("train"):
            for value in epoch_values:
                metric(torch.tensor([value, value + 1]))
                reducer.log("m", metric, on_epoch=True)
                reducer.step()
    steps = [call[1]["m_step"] for call in logger.calls if "m_step" in call[1]]
    epochs = [call[1]["m_epoch"] for call in logger.calls if "m_epoch" in call[1]]
    assert steps == [1.5, 2.5, 6.5, 10.5]  # forward value of each step
    assert epochs == [pytest.approx(10.5 / 3), 10.5]  # compute() of the epoch, reset in between


def test_a_metric_collection_goes_through_log_dict() -> None:
    reducer = MetricReducer()
    collection = torchmetrics.MetricCollection({"hi": torchmetrics.MaxMetric(), "total": torchmetrics.SumMetric()})
    with reducer.epoch("validate"):
        for value in (3.0, 5.0, 1.0):
            collection(torch.tensor(value))
            reducer.log_dict(collection)
            reducer.step()
    assert {k: float(v) for k, v in reducer.callback_metrics.items()} == {"hi": 5.0, "total": 9.0}


def test_values_changed_in_place_after_log_keep_the_logged_value() -> None:
    reducer = MetricReducer()
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    buffer = torch.zeros(())
    with reducer.epoch("validate"):
        for _ in range(3):
            buffer += 1
            reducer.log("buffer", buffer, reduce_fx="sum")
            reducer.log("weight", weight[0], reduce_fx="sum")
            with torch.no_grad():
                weight.add_(1.0)
            reducer.step()
    assert reducer.callback_metrics["buffer"].item() == 1 + 2 + 3
    assert reducer.callback_metrics["weight"].item() == 1 + 2 + 3


# ---- errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "pattern"),
    [
        ({"a": {"b": 1.0}}, {}, InvalidMetricError, r"nested dictionaries cannot be logged. Fix: flatten 'bad'"),
        ({"a": 1.0}, {}, InvalidMetricError, r"`dict` values cannot be logged.*'bad'.*Fix: use reducer.log_dict"),
        ("text", {}, InvalidMetricError, r"`str` values cannot be logged.*'bad'.*string.*Fix"),
        (None, {}, InvalidMetricError, r"`reducer.log\(bad, None\)` was called, but `NoneType` .*'bad'.*Fix"),
        ([1.0, 2.0], {}, InvalidMetricError, r"`list` values cannot be logged.*'bad'.*Fix"),
        (torch.ones(3), {}, InvalidMetricError, r"single element. You can try.*'bad'.*shape \(3,\).*Fix: reduce it"),
        (1.0, {"on_step": False, "on_epoch": False}, LoggingMisuseError, r"is not useful: 'bad'.*Fix"),
        (1.0, {"reduce_fx": "median"}, LoggingMisuseError, r"are supported.*Found: median \(for 'bad'\).*Fix"),
    ],
)
def test_bad_values_and_flags_name_the_key_and_the_fix(
    value: Any, kwargs: dict[str, Any], error: type[Exception], pattern: str
) -> None:
    reducer = MetricReducer()
    reducer.start_epoch("train")
    with pytest.raises(error, match=pattern) as raised:
        reducer.log("bad", value, **kwargs)
    assert isinstance(raised.value, ValueError)  # what Lightning raises for the same mistakes


def test_misuse_of_the_loop_boundaries_names_the_fix() -> None:
    reducer = MetricReducer()
    with pytest.raises(LoggingMisuseError, match=r"outside an epoch.*Fix: call reducer.start_epoch"):
        reducer.log("x", 1.0)
    with pytest.raises(LoggingMisuseError, match=r"'eval'.*Fix"):
        reducer.start_epoch("eval")
    reducer.start_epoch("train")
    with pytest.raises(LoggingMisuseError, match=r"'train' epoch is open.*end_epoch"):
        reducer.start_epoch("train")
    reducer.log("x", 1.0)
    twice = r"`reducer.log\(x, ...\)` twice.*'x' changed on_epoch: False then True.*Fix"
    with pytest.raises(LoggingMisuseError, match=twice):
        reducer.log("x", 1.0, on_epoch=True)
    reducer.log("x", 2.0, reduce_fx=torch.mean)  # the same reduction spelled another way is the same call
    with pytest.raises(LoggingMisuseError, match=r"dataloader_idx.*Fix: log it as 'y'"):
        reducer.log("y/dataloader_idx_0", 1.0)
    with pytest.raises(LoggingMisuseError, match=r"log_dict\(\) takes a dict"):
        reducer.log_dict([("a", 1.0)])


def test_integer_tensors_warn_once_and_are_reduced_as_floats() -> None:
    reducer = MetricReducer()
    with reducer.epoch("validate"):
        lightnings = r"`reducer.log\('count', ...\)` in your `validation_step` but the value needs to be floating"
        with pytest.warns(TracklightWarning, match=lightnings + ".*Fix"):
            reducer.log("count", torch.tensor(3))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            reducer.log("count", torch.tensor(4))
        reducer.step()
    assert reducer.callback_metrics["count"].item() == 3.5


# ---- where results go ----------------------------------------------------------------------------------------


def test_results_reach_a_list_of_loggers_and_a_logger_collection(tmp_path: Any) -> None:
    first, second = ListLogger(), ListLogger()
    csv_logger = CSVLogger(tmp_path, name="csv")
    for target in ([first, second], LoggerCollection([csv_logger])):
        reducer = MetricReducer(target, log_every_n_steps=1)
        with reducer.epoch("train"):
            for step in range(3):
                reducer.log("loss", torch.tensor(step + 0.5), on_epoch=True)
                reducer.step()
    assert first.calls == second.calls and len(first.calls) == 4
    csv_logger.finalize("success")
    lines = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    assert lines == ["epoch,loss_epoch,loss_step,step", "0,,0.5,0", "0,,1.5,1", "0,,2.5,2", "0,1.5,,2"]


def test_works_beside_fabric_loggers(tmp_path: Any) -> None:
    from lightning.fabric import Fabric

    logger = CSVLogger(tmp_path, name="fabric")
    fabric = Fabric(accelerator="cpu", devices=1, loggers=[logger])
    model = fabric.setup_module(torch.nn.Linear(2, 1))
    reducer = MetricReducer(fabric.loggers, log_every_n_steps=2)
    with reducer.epoch("train"):
        for step in range(4):
            loss = model(torch.ones(3, 2)).pow(2).mean()
            reducer.log("loss", loss, on_epoch=True, batch_size=3)
            fabric.log_dict({"direct": float(step)}, step=step)
            reducer.step()
    logger.finalize("success")
    text = (tmp_path / "fabric" / "version_0" / "metrics.csv").read_text()
    header = text.splitlines()[0].split(",")
    assert {"direct", "loss_step", "loss_epoch", "epoch", "step"} <= set(header)


# ---- no host transfers until a step is logged --------------------------------------------------------------


class TransferCountingTensor(torch.Tensor):
    """A real tensor that records each move to the host of it, or of anything computed from it."""

    transfers: list[int] = []
    step = -1

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in ("item", "tolist", "__float__", "__bool__", "numpy", "__int__", "cpu") or (
            name == "to" and any(a == "cpu" or getattr(a, "type", None) == "cpu" for a in args[1:])
        ):
            cls.transfers.append(cls.step)
        return super().__torch_function__(func, types, args, kwargs or {})


def test_no_host_transfer_except_on_logged_steps_and_at_epoch_end() -> None:
    TransferCountingTensor.transfers = []
    reducer = MetricReducer(ListLogger(), log_every_n_steps=50)
    base = torch.tensor(0.0).as_subclass(TransferCountingTensor)
    reducer.start_epoch("train")
    for step in range(120):
        TransferCountingTensor.step = step
        for key in range(10):
            reducer.log(f"m{key}", base + step * 0.01 + key, on_step=True, on_epoch=True, prog_bar=key == 0)
        reducer.step()
    TransferCountingTensor.step = 999
    reducer.end_epoch()
    assert set(TransferCountingTensor.transfers) == {49, 99, 999}
    # one batched transfer per logged step for the ten step values, not one per key
    assert TransferCountingTensor.transfers.count(49) == 1


# ---- small guarantees ----------------------------------------------------------------------------------------


def test_reduced_values_pickle_and_become_tensors_of_their_dtype() -> None:
    value = Scalar(0.5, torch.float64)
    copy = pickle.loads(pickle.dumps(value))
    assert copy == 0.5 and copy.dtype == torch.float64
    assert value.as_tensor().dtype == torch.float64 and value.as_tensor() is value.as_tensor()


def test_importing_the_reducer_package_imports_neither_torch_nor_lightning() -> None:
    code = "import sys, tracklight.reducer; print('torch' in sys.modules, 'lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_hook_table_agrees_with_the_installed_lightning() -> None:
    from lightning.pytorch.trainer.connectors.logger_connector.fx_validator import _FxValidator

    from tracklight.reducer._hooks import HOOKS

    theirs = _FxValidator.functions
    assert set(theirs) <= set(HOOKS), f"hooks tracklight has no rule for: {sorted(set(theirs) - set(HOOKS))}"
    for hook, options in theirs.items():
        ours = HOOKS[hook]
        if options is None:
            assert ours is None, hook
        else:
            assert ours is not None, hook
            assert (ours.allowed_on_step, ours.allowed_on_epoch) == (
                options["allowed_on_step"],
                options["allowed_on_epoch"],
            ), hook
            assert (ours.default_on_step, ours.default_on_epoch) == (
                options["default_on_step"],
                options["default_on_epoch"],
            ), hook
