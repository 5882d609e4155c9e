"""Hostile values, generated: for every backend that runs offline here, ``log_metrics`` stores each value so
that it reads back equal (as that backend stores numbers) or raises ``InvalidMetricError`` naming the key, and
``log_hyperparams`` stores every tree (converted as ``params.sanitize`` says) without raising. Nothing else
escapes, nothing hangs (the suite's per-test timeout).

The SDK backends are slow to start, so each test makes one logger and feeds it every example, each at its
own step (metrics) or under its own top-level key (hyperparameters); the logger is read back once at the end.
The examples are the same on every run (``derandomize``) so CI never meets a new one by chance; set
``TRACKLIGHT_FUZZ_EXAMPLES=500`` to explore further with fresh random examples.
"""

from __future__ import annotations

import decimal
import enum
import itertools
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from _backends import NEPTUNE_PREFIX, Backend, backend_fixtures, read_csv_metrics, read_tensorboard_metrics
from tracklight import InvalidMetricError, params

_EXPLORE = int(os.environ.get("TRACKLIGHT_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_EXPLORE or 60,
    derandomize=not _EXPLORE,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

backend, root, isolated, wandb_service = backend_fixtures()

#: What a value the backends must refuse is expected to give.
INVALID = "invalid"


# ---- metric values, each with what it must read back as ---------------------------------------------------

_finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def _numbers() -> st.SearchStrategy[tuple[Any, Any]]:
    """(value, the float it is) for every kind of number a user logs."""
    return st.one_of(
        st.floats().map(lambda f: (f, f)),
        st.integers(-(2**63), 2**64).map(lambda i: (i, float(i))),
        st.booleans().map(lambda b: (b, float(b))),
        st.floats(width=16).map(lambda f: (np.float16(f), f)),
        st.floats(width=32).map(lambda f: (np.float32(f), f)),
        st.floats().map(lambda f: (np.float64(f), f)),
        st.integers(-(2**31), 2**31 - 1).map(lambda i: (np.int32(i), float(i))),
        st.integers(0, 2**64 - 1).map(lambda i: (np.uint64(i), float(i))),
        st.booleans().map(lambda b: (np.bool_(b), float(b))),
        st.floats(width=32).map(lambda f: (torch.tensor(f), f)),
        _finite32.map(lambda f: (torch.tensor([f]), f)),
        _finite32.map(lambda f: (torch.tensor(f, requires_grad=True) * 1, f)),
        st.integers(-(2**63), 2**63 - 1).map(lambda i: (torch.tensor(i), float(i))),
        _finite32.map(lambda f: (torch.tensor(f, dtype=torch.bfloat16), float(torch.tensor(f, dtype=torch.bfloat16)))),
        _finite32.map(lambda f: (np.array([[f]], dtype=np.float32), f)),
    )


class StrRaises:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:  # hypothesis shows the values it draws
        return "StrRaises()"


def _not_numbers() -> st.SearchStrategy[tuple[Any, Any]]:
    """(value, INVALID) for everything that is not one number."""
    return st.one_of(
        st.integers(2**1024, 2**1100).map(lambda i: (i, INVALID)),
        st.integers(2**1024, 2**1100).map(lambda i: (-i, INVALID)),
        st.complex_numbers().map(lambda z: (z, INVALID)),
        st.complex_numbers(width=64).map(lambda z: (np.complex64(z), INVALID)),
        st.just((torch.tensor(1 + 2j), INVALID)),
        st.just((torch.zeros((), device="meta"), INVALID)),
        st.integers(2, 4).map(lambda n: (torch.ones(n), INVALID)),
        st.sampled_from([0, 2, 3]).map(lambda n: (np.zeros(n), INVALID)),
        st.text(max_size=5).map(lambda s: (s, INVALID)),
        st.text(max_size=5).map(lambda s: (np.str_(s), INVALID)),
        st.sampled_from([None, [1.0], (1.0,), b"1", decimal.Decimal("1.5"), StrRaises(), object()]).map(
            lambda v: (v, INVALID)
        ),
        st.just((np.datetime64("2020-01-01"), INVALID)),
    )


_METRIC_KEYS = ["loss", "acc", "lr", "train/loss", "val/acc_top5", "epoch_time"]


@st.composite
def metric_dicts(draw: st.DrawFn) -> dict[str, tuple[Any, Any]]:
    keys = draw(st.lists(st.sampled_from(_METRIC_KEYS), min_size=1, max_size=4, unique=True))
    mostly_good = st.one_of(_numbers(), _numbers(), _numbers(), _not_numbers())
    return {key: draw(mostly_good) for key in keys}


# ---- how each backend stores a number ----------------------------------------------------------------------


def _float32(value: float) -> float:
    """As TensorBoard stores it: float32, infinite beyond its range (as ``SummaryWriter`` does)."""
    from tracklight.formats.tfevents import to_float32

    return float(np.float32(to_float32(value)))


def _sql_float(value: float) -> float:
    """As MLflow's SQL store keeps it: infinity is stored as the largest float of its sign."""
    return math.copysign(1.7976931348623157e308, value) if math.isinf(value) else value


def _stored(backend: Backend, logger: Any) -> list[tuple[dict[str, dict[int, float]], Callable[[float], float]]]:
    """What the logger stored, with how it stores a number; the collection's two members are read each."""
    if backend.id == "collection":
        return [(read_csv_metrics(logger[0]), float), (read_tensorboard_metrics(logger[1]), _float32)]
    stored = backend.read_metrics(logger)
    if backend.id == "neptune":
        for key, values in _nonfinite_neptune(logger).items():
            stored.setdefault(key, {}).update(values)
    return [(stored, {"tensorboard": _float32, "mlflow": _sql_float}.get(backend.id, float))]


def _same(got: float, expected: float) -> bool:
    if math.isnan(expected):
        return math.isnan(got)
    return got == expected or math.isclose(got, expected, rel_tol=1e-15)


def _nonfinite_neptune(logger: Any) -> dict[str, dict[int, float]]:
    """Neptune keeps NaN and infinity as text in a series ``<key>_nonfinite`` beside the number series."""
    from _comet_neptune_readers import neptune_runs

    found: dict[str, dict[int, float]] = {}
    for run in neptune_runs(logger.save_dir):
        for operation in run.operations:
            path = operation["path"]
            if operation["type"] == "LogStrings" and path[0] == NEPTUNE_PREFIX and path[-1].endswith("_nonfinite"):
                key = "/".join([*path[1:-1], path[-1][: -len("_nonfinite")]])
                for entry in operation["values"]:
                    found.setdefault(key, {})[int(entry["step"])] = float(entry["value"])
    return found


# ---- the tests ---------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::tracklight.TracklightWarning")  # Neptune's note on non-finite values
def test_metrics_are_stored_as_they_are_or_refused_naming_the_key(backend: Backend, root: Path) -> None:
    logger = backend.make(root)
    steps = itertools.count()
    expected: dict[str, dict[int, float]] = {}

    @FUZZ
    @given(metric_dicts())
    @example({"loss": (np.complex64(1 + 2j), INVALID)})
    @example({"loss": (0.5, 0.5), "acc": (10**400, INVALID)})
    @example({"loss": (torch.zeros((), device="meta"), INVALID)})
    @example({"loss": (float("nan"), float("nan")), "acc": (float("inf"), float("inf")), "lr": (-0.0, -0.0)})
    def log(drawn: dict[str, tuple[Any, Any]]) -> None:
        step = next(steps)
        metrics = {key: value for key, (value, _) in drawn.items()}
        invalid = [key for key, (_, want) in drawn.items() if want is INVALID]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's float16 overflow to inf
            if invalid:
                with pytest.raises(InvalidMetricError) as raised:
                    logger.log_metrics(metrics, step=step)
                assert repr(invalid[0]) in str(raised.value) and "Fix:" in str(raised.value)
                return
            logger.log_metrics(metrics, step=step)
        for key, (_, want) in drawn.items():
            expected.setdefault(key, {})[step] = want

    log()
    logger.finalize("success")
    for stored, as_stored in _stored(backend, logger):
        wrong = {
            (key, step): (want, stored.get(key, {}).get(step))
            for key, values in expected.items()
            for step, want in values.items()
            if step not in stored.get(key, {}) or not _same(stored[key][step], as_stored(want))
        }
        assert not wrong, f"{len(wrong)} values read back differently: {dict(list(wrong.items())[:8])}"


# ---- hyperparameter trees ----------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


_HOSTILE_TEXT = [
    "",
    " ",
    "null",
    "~",
    "yes",
    "1e3",
    "0x10",
    "!!python/object:os.system",
    "a\nb",
    "tab\there",
    "quote'\"",
    "ünïcödé",
    "🙂",
    "\ud800",
    "nul\x00byte",
    "x" * 300,
]

_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(_HOSTILE_TEXT),
    st.sampled_from([Path("/data/set"), PurePosixPath("rel/path"), Color.RED, Color.BLUE, b"by\xfftes", math.sqrt]),
    st.floats(width=32).map(np.float32),
    st.integers(-(2**31), 2**31 - 1).map(np.int64),
    st.lists(_finite32, max_size=3).map(torch.tensor),
    st.just(StrRaises()),
    st.frozensets(st.integers(0, 9), max_size=3),
)
_names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
_trees = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_names, inner, min_size=1, max_size=3)),
    max_leaves=12,
)


@st.composite
def hyperparameter_trees(draw: st.DrawFn) -> dict[str, Any]:
    tree = draw(st.dictionaries(_names, _trees, min_size=1, max_size=4))
    if draw(st.booleans()):
        tree["itself"] = tree  # a cycle
    return tree


def _same_param(stored: Any, want: Any) -> bool:
    """Backends differ in form, not content: MLflow and Neptune keep text (``str()`` of a list), Comet sorts
    the keys of a dict inside a list and writes infinity as "Infinity"."""
    return str(stored) == str(want) or str(_canonical(stored)) == str(_canonical(want))


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    # Non-finite numbers as text: "nan" (tracklight, for backends whose JSON loses NaN), "Infinity" (Comet).
    return {"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(value, value) if isinstance(value, str) else value


@pytest.mark.filterwarnings("ignore::tracklight.TracklightWarning")  # the conversion notes, checked below
def test_hyperparameter_trees_are_stored_as_sanitized(backend: Backend, root: Path) -> None:
    logger = backend.make(root)
    names = itertools.count()
    expected: dict[str, Any] = {}

    @FUZZ
    @given(hyperparameter_trees())
    # Found by this test once; kept: NaN inside lists and dicts (W&B and Comet JSON made it null), an int beyond
    # 32 bits (Neptune dropped it), U+0085 in text (YAML read it back as a space).
    @example({"nan": float("nan"), "nested": [{"nan": float("nan")}, [float("nan")]]})
    @example({"big": 2**40, "small": -(2**40), "in": {"big": 2**62}})
    @example({"text": "next\x85line", "para": "a\u2028b\u2029c"})
    def log(tree: dict[str, Any]) -> None:
        given = {f"h{next(names)}": tree}
        logger.log_hyperparams(given)
        expected.update(params.flatten(params.sanitize(given)[0]))

    log()
    logger.finalize("success")
    stored = backend.read_hparams(logger)
    wrong = {
        key: (want, stored.get(key, "<missing>"))
        for key, want in expected.items()
        if key not in stored or not _same_param(stored[key], want)
    }
    assert not wrong, f"{len(wrong)} of {len(expected)} values read back differently: {dict(list(wrong.items())[:8])}"
