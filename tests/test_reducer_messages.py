"""The opt-in's errors and warnings keep Lightning's sentence, so a ``match=`` written for Lightning still matches.

Each case runs one real Trainer twice, on Lightning's own ``self.log`` and with ``LightningReducer()``: the
phrase is checked on Lightning's message (so the table holds Lightning's words, not ours), then on tracklight's,
which must also be of Lightning's exception class, hold all of Lightning's message and name the key and the fix.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torchmetrics
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, TensorDataset

from tracklight import TracklightWarning
from tracklight.reducer import LightningReducer


class TupleMetric(torchmetrics.Metric):
    """A Metric whose ``compute()`` returns a tuple: a logged Metric must compute one tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor) -> None:
        self.total += value

    def compute(self) -> Any:
        return self.total, self.total


def _log_tuple_metric(m: Any) -> None:
    m.tuple_metric(torch.tensor(1.0))
    m.log("bad", m.tuple_metric, on_step=False, on_epoch=True)


#: case -> (hook, what the hook does, Lightning's phrase)
CASES: dict[str, tuple[str, Callable[[Any], Any], str]] = {
    "None": ("training_step", lambda m: m.log("bad", None), r"`self.log\(bad, None\)` was called, but `NoneType`"),
    "dict": ("training_step", lambda m: m.log("bad", {"a": 1}), r"bad, {'a': 1}\)` was called, but `dict` values"),
    "dict of None": ("training_step", lambda m: m.log("bad", {"a": None}), r"`dict` values cannot be logged"),
    "nested dict": (
        "training_step",
        lambda m: m.log("bad", {"a": {"b": 1}}),
        r"`self.log\(bad, {'a': {'b': 1}}\)` was called, but nested dictionaries cannot be logged",
    ),
    "string": ("training_step", lambda m: m.log("bad", "foo"), r"`self.log\(bad, foo\)` was called, but `str`"),
    "list": ("training_step", lambda m: m.log("bad", [1, 2, 3]), r"\[1, 2, 3\]\)` was called, but `list`"),
    "tuple": ("training_step", lambda m: m.log("bad", (1, 2, 3)), r"\(1, 2, 3\)\)` was called, but `tuple`"),
    "nested list": ("training_step", lambda m: m.log("bad", [[1, 2], 3]), r"3\]\)` was called, but `list`"),
    "tensor of 2": ("training_step", lambda m: m.log("bad", torch.ones(2)), "tensor must have a single element"),
    "dataloader_idx in the key": (
        "training_step",
        lambda m: m.log("bad/dataloader_idx_0", 1.0),
        "`self.log` with the key `bad/dataloader_idx_0`",
    ),
    "hook that cannot log": ("on_fit_start", lambda m: m.log("bad", 1.0), "You can't `self.log\\(\\)` inside"),
    "on_step at epoch end": (
        "on_train_epoch_end",
        lambda m: m.log("bad", 1.0, on_step=True),
        r"You can't `self.log\(on_step=True\)` inside `on_train_epoch_end`, must be one of",
    ),
    "on_epoch=False at train start": (
        "on_train_start",
        lambda m: m.log("bad", 1.0, on_epoch=False),
        r"You can't `self.log\(on_epoch=False\)` inside `on_train_start`, must be one of \(True,\)",
    ),
    "module without a metric attribute": (
        "training_step",
        lambda m: m.log("bad", torchmetrics.MeanMetric()),
        "fix this by setting an attribute for the metric in your `LightningModule`",
    ),
    "dataloader_iter without batch_size": (
        "training_step",
        lambda m: m.log("bad", 1.0),
        r"With `def training_step\(self, dataloader_iter\)`, `self.log\(..., batch_size=...\)` should be provided",
    ),
    "both levels off": (
        "training_step",
        lambda m: m.log("bad", 1.0, on_step=False, on_epoch=False),
        "is not useful",
    ),
    "twice, other args": (
        "training_step",
        lambda m: (m.log("bad", 1.0), m.log("bad", 1.0, prog_bar=True)),
        r"self.log\(bad, ...\)` twice in `training_step`",
    ),
    "custom reduce_fx": (
        "training_step",
        lambda m: m.log("bad", 1.0, reduce_fx=torch.argmax),
        r"reduce_fx={min,max,mean,sum}\)` are supported",
    ),
    "metric not an attribute": (
        "training_step",
        lambda m: m.log("bad", torchmetrics.MeanMetric()),
        r"`self.log\(bad, ..., metric_attribute=name\)` where `name` is one of \['tuple_metric'\]",
    ),
    "compute() not a tensor": ("training_step", _log_tuple_metric, r"compute\(\)` return of.*bad' must be a tensor"),
}


class Module(pl.LightningModule):
    def __init__(self, case: str) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        if case != "module without a metric attribute":
            self.tuple_metric = TupleMetric()
        self.hook, self.action = CASES[case][:2]

    def _run(self, hook: str) -> None:
        if hook == self.hook:
            self.action(self)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        self._run("training_step")
        return self.layer(batch[0]).sum()

    def on_fit_start(self) -> None:
        self._run("on_fit_start")

    def on_train_start(self) -> None:
        self._run("on_train_start")

    def on_train_epoch_end(self) -> None:
        self._run("on_train_epoch_end")

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> Any:
        return DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)


class IterModule(Module):
    """A ``training_step`` that takes the iterator: the batch size cannot be inferred."""

    def training_step(self, dataloader_iter: Any) -> Any:  # type: ignore[override]
        batch = next(dataloader_iter)
        self._run("training_step")
        return self.layer(batch[0]).sum()


def _trainer(tmp_path: Any, callbacks: list[Any], logger: Any = False) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=2,
        callbacks=callbacks,
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=1,
    )


def _raised(tmp_path: Any, case: str, callbacks: list[Any]) -> BaseException:
    with pytest.raises(Exception) as raised, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = IterModule(case) if "dataloader_iter" in case else Module(case)
        _trainer(tmp_path, callbacks).fit(module)
    return raised.value


@pytest.mark.parametrize("case", sorted(CASES))
def test_errors_keep_lightnings_sentence(case: str, tmp_path: Any) -> None:
    phrase = CASES[case][2]
    theirs = _raised(tmp_path, case, [])
    assert re.search(phrase, str(theirs)), f"the table's phrase is not Lightning's: {theirs}"
    ours = _raised(tmp_path, case, [LightningReducer()])
    assert isinstance(ours, type(theirs)), f"{type(ours).__mro__} is not a {type(theirs)}"
    assert re.search(phrase, str(ours)), str(ours)  # what pytest.raises(match=phrase) does
    assert str(theirs).rstrip(".") in str(ours), f"\n{theirs}\n{ours}"  # all of Lightning's message
    assert "'bad" in str(ours) and ("Fix:" in str(ours)), str(ours)


class WarningModule(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        self.log("epoch", -batch_idx, logger=True)
        # a key no other test logs: Lightning and tracklight both warn once per key and process
        self.log("int_count_in_messages", torch.tensor(batch_idx), on_step=False, on_epoch=True)
        return self.layer(batch[0]).sum()

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> Any:
        return DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)


WARNINGS = (
    r"log\('epoch', ..., logger=True\)` but have no logger",
    r"`self.log\('int_count_in_messages', ...\)` in your `training_step` but the value needs to be floating to be "
    r"reduced. Converting it to torch.float32",
)


def test_warnings_keep_lightnings_sentence(tmp_path: Any) -> None:
    said = []
    for callbacks in ([], [LightningReducer()]):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _trainer(tmp_path, callbacks).fit(WarningModule())
        said.append([(str(w.message), w.category) for w in caught if issubclass(w.category, UserWarning)])
    for phrase in WARNINGS:
        theirs = [message for message, _ in said[0] if re.search(phrase, message)]
        ours = [(message, category) for message, category in said[1] if re.search(phrase, message)]
        assert theirs, f"the phrase is not Lightning's: {said[0]}"
        assert ours and all("Fix:" in message and category is TracklightWarning for message, category in ours)


def test_misconfiguration_stays_lightnings_class(tmp_path: Any) -> None:
    ours = _raised(tmp_path, "hook that cannot log", [LightningReducer()])
    assert isinstance(ours, MisconfigurationException)


def test_a_long_or_unprintable_value_is_shown_cut_and_never_hides_the_error() -> None:
    from tracklight import InvalidMetricError
    from tracklight.reducer import MetricReducer

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no str")

    reducer = MetricReducer()
    reducer.start_epoch("train")
    with pytest.raises(InvalidMetricError, match=r"`reducer.log\(x, <Unprintable>\)` was called, but `Unprintable`"):
        reducer.log("x", Unprintable())
    with pytest.raises(InvalidMetricError, match=r"`reducer.log\(x, \[0, 1, 2, .*\.\.\.\)` was called") as raised:
        reducer.log("x", list(range(1000)))
    assert len(str(raised.value)) < 500
