"""The public surface is pinned: adding or removing a public name is a decision, made here on purpose."""

from __future__ import annotations

import importlib

import pytest

import tracklight
import tracklight.loggers

TRACKLIGHT_ALL = [
    "CSVLogger",
    "WandbLogger",
    "NeptuneLogger",
    "MLFlowLogger",
    "CometLogger",
    "InvalidMetricError",
    "Logger",
    "LoggerCollection",
    "MissingDependencyError",
    "TensorBoardLogger",
    "TracklightError",
    "TracklightWarning",
    "UnsafePathError",
    "__version__",
    "loggers",
    "media",
    "params",
    "reducer",
    "runs",
    "MetricReducer",
    "LightningReducer",
]

LOGGERS_ALL = [
    "CSVLogger",
    "CometLogger",
    "DummyExperiment",
    "Logger",
    "LoggerCollection",
    "MLFlowLogger",
    "NeptuneLogger",
    "TensorBoardLogger",
    "WandbLogger",
    "rank_zero_experiment",
    "rank_zero_only",
]


def test_tracklight_all_is_pinned() -> None:
    assert sorted(tracklight.__all__) == sorted(TRACKLIGHT_ALL)
    assert len(set(tracklight.__all__)) == len(tracklight.__all__)


def test_loggers_all_is_pinned() -> None:
    assert sorted(tracklight.loggers.__all__) == sorted(LOGGERS_ALL)
    assert len(set(tracklight.loggers.__all__)) == len(tracklight.loggers.__all__)


@pytest.mark.parametrize("name", TRACKLIGHT_ALL)
def test_every_tracklight_name_resolves(name: str) -> None:
    value = getattr(tracklight, name)
    assert value is not None
    namespace: dict[str, object] = {}
    exec(f"from tracklight import {name}", namespace)
    assert namespace[name] is value


@pytest.mark.parametrize("name", LOGGERS_ALL)
def test_every_loggers_name_resolves(name: str) -> None:
    value = getattr(tracklight.loggers, name)
    namespace: dict[str, object] = {}
    exec(f"from tracklight.loggers import {name}", namespace)
    assert namespace[name] is value


def test_top_level_names_are_the_loggers_names() -> None:
    for name in ("CSVLogger", "Logger", "LoggerCollection", "TensorBoardLogger"):
        assert getattr(tracklight, name) is getattr(tracklight.loggers, name)
    assert tracklight.loggers is importlib.import_module("tracklight.loggers")


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from tracklight.loggers import *", namespace)
    assert sorted(name for name in namespace if name != "__builtins__") == sorted(LOGGERS_ALL)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchLogger'"):
        _ = tracklight.NoSuchLogger
    with pytest.raises(AttributeError, match="no attribute 'NoSuchLogger'"):
        _ = tracklight.loggers.NoSuchLogger


def test_version_is_a_string() -> None:
    assert isinstance(tracklight.__version__, str) and tracklight.__version__[0].isdigit()


def test_dir_lists_the_public_names() -> None:
    assert set(TRACKLIGHT_ALL) <= set(dir(tracklight))


def test_fabric_loggers_all_is_pinned() -> None:
    import tracklight.fabric.loggers

    assert sorted(tracklight.fabric.loggers.__all__) == ["CSVLogger", "Logger", "TensorBoardLogger"]
    assert tracklight.fabric.loggers.Logger is tracklight.loggers.Logger  # one contract for Trainer and Fabric
