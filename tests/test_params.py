"""Hyperparameters: flattening, sanitizing, the conversion warning and hparams.yaml, tested alone."""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import warnings
from argparse import Namespace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from tracklight import TracklightError, TracklightWarning, params
from tracklight.loggers import CSVLogger, TensorBoardLogger


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Opaque:
    def __str__(self) -> str:
        return "opaque-thing"


@dataclasses.dataclass
class OptimizerConfig:
    lr: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)


@dataclasses.dataclass
class Config:
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    name: str = "run"


# ---- to_dict and flatten ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"lr": 0.1, "name": "x"}, {"lr": 0.1, "name": "x"}),
        (Namespace(lr=0.1, name="x"), {"lr": 0.1, "name": "x"}),
        (OptimizerConfig(lr=0.2, betas=(1.0, 2.0)), {"lr": 0.2, "betas": (1.0, 2.0)}),
        (None, {}),
    ],
    ids=["dict", "namespace", "dataclass", "none"],
)
def test_to_dict_accepts_dicts_namespaces_dataclasses_and_none(given: Any, expected: dict[str, Any]) -> None:
    assert params.to_dict(given) == expected


def test_to_dict_rejects_other_types_with_the_fix() -> None:
    with pytest.raises(TracklightError, match=r"got list.*log_hyperparams\(\{'config': value\}\)"):
        params.to_dict([1, 2])


def test_nested_dicts_namespaces_and_dataclasses_flatten_with_slashes() -> None:
    given = {
        "model": {"layers": 2, "act": {"name": "relu"}},
        "args": Namespace(batch_size=8, data=Namespace(root="/data")),
        "config": Config(),
        "empty": {},
    }
    clean, _ = params.sanitize(given)
    assert params.flatten(clean) == {
        "model/layers": 2,
        "model/act/name": "relu",
        "args/batch_size": 8,
        "args/data/root": "/data",
        "config/optimizer/lr": 0.1,
        "config/optimizer/betas": [0.9, 0.999],
        "config/name": "run",
        "empty": {},
    }
    assert params.flatten({"a": {"b": 1}}, separator=".") == {"a.b": 1}


# ---- sanitize -----------------------------------------------------------------------------------------


def _lightning_style_values() -> dict[str, Any]:
    return {
        "tensor_scalar": torch.tensor(0.5),
        "tensor_int": torch.tensor(3),
        "tensor_vector": torch.tensor([1.0, 2.0]),
        "tensor_big": torch.zeros(5000),
        "np_float": np.float64(0.25),
        "np_float32": np.float32(1.5),
        "np_int": np.int64(7),
        "np_bool": np.bool_(True),
        "np_str": np.str_("adam"),
        "np_array": np.arange(3),
        "function": math.sqrt,
        "lambda": lambda x: x,
        "partial": functools.partial(max, 1),
        "class": torch.optim.SGD,
        "module": torch.nn.Linear(2, 2),
        "enum_value": Color.BLUE,
        "enum_name": Color.RED,
        "path": Path("/tmp/data"),
        "pure_path": PurePosixPath("a/b"),
        "set": {3, 1, 2},
        "frozenset": frozenset({"b", "a"}),
        "object": Opaque(),
        "bytes": b"abc",
        "tuple": (1, "two", torch.tensor(3.0)),
        "nested": {"inner": [Color.RED, {"deep": np.float64(2.0)}]},
        "none": None,
        "nan": float("nan"),
    }


def test_sanitize_turns_everything_into_plain_values() -> None:
    clean, _ = params.sanitize(_lightning_style_values())
    assert clean["tensor_scalar"] == 0.5 and type(clean["tensor_scalar"]) is float
    assert clean["tensor_int"] == 3 and type(clean["tensor_int"]) is int
    assert clean["tensor_vector"] == [1.0, 2.0]
    assert clean["tensor_big"] == "tensor(shape=(5000,), dtype=torch.float32)"
    assert (type(clean["np_float"]), clean["np_float"]) == (float, 0.25)
    assert (type(clean["np_float32"]), clean["np_float32"]) == (float, 1.5)
    assert (type(clean["np_int"]), clean["np_int"]) == (int, 7)
    assert clean["np_bool"] is True
    assert (type(clean["np_str"]), clean["np_str"]) == (str, "adam")
    assert clean["np_array"] == [0, 1, 2]
    assert clean["function"] == "sqrt"
    assert clean["lambda"].endswith("<lambda>")
    assert "functools.partial" in clean["partial"]
    assert clean["class"] == "SGD"
    assert clean["module"].startswith("Linear(")
    assert (clean["enum_value"], clean["enum_name"]) == (2, "red")
    assert (clean["path"], clean["pure_path"]) == ("/tmp/data", "a/b")
    assert (clean["set"], clean["frozenset"]) == ([1, 2, 3], ["a", "b"])
    assert clean["object"] == "opaque-thing"
    assert clean["bytes"] == "abc"
    assert clean["tuple"] == [1, "two", 3.0]
    assert clean["nested"] == {"inner": ["red", {"deep": 2.0}]}
    assert clean["none"] is None and math.isnan(clean["nan"])


def test_every_sanitized_value_survives_safe_yaml() -> None:
    clean, _ = params.sanitize(_lightning_style_values())
    text = params.to_yaml(clean)
    assert "!!" not in text
    loaded = yaml.safe_load(text)
    assert loaded.keys() == clean.keys()
    assert loaded["nested"] == {"inner": ["red", {"deep": 2.0}]}


def test_notes_name_each_converted_key_and_leave_lossless_ones_alone() -> None:
    _, notes = params.sanitize(_lightning_style_values())
    # Paths are noted quietly: listed when there is a warning anyway, never the reason for one.
    quiet = {note.partition(" (")[0].strip("'") for note in notes if isinstance(note, params._Quiet)}
    assert quiet == {"path", "pure_path"}
    noted = {note.partition(" (")[0].strip("'") for note in notes if not isinstance(note, params._Quiet)}
    assert noted == {
        "tensor_vector",
        "tensor_big",
        "np_array",
        "function",
        "lambda",
        "partial",
        "class",
        "module",
        "enum_value",
        "enum_name",
        "set",
        "frozenset",
        "object",
        "bytes",
        "nested/inner[0]",
    }


def test_warning_names_every_converted_key_even_past_ten(tmp_path: Path) -> None:
    given = {f"key_{index}": Opaque() for index in range(14)}
    with pytest.warns(TracklightWarning) as caught:
        CSVLogger(tmp_path).log_hyperparams(given)
    [warning] = [w for w in caught if issubclass(w.category, TracklightWarning)]
    message = str(warning.message)
    assert "14 hyperparameter value(s)" in message
    for index in range(14):
        assert f"'key_{index}'" in message
    assert "CSVLogger" in message


def test_no_warning_when_nothing_changes(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CSVLogger(tmp_path).log_hyperparams({"lr": np.float32(0.5), "path": Path("x"), "shape": (1, 2)})


# ---- hparams.yaml -------------------------------------------------------------------------------------


@pytest.mark.parametrize("logger_class", [CSVLogger, TensorBoardLogger])
def test_hparams_yaml_has_no_python_tags(logger_class: type, tmp_path: Path) -> None:
    logger = logger_class(tmp_path)
    with pytest.warns(TracklightWarning):
        logger.log_hyperparams(_lightning_style_values())
    logger.finalize("success")
    text = Path(logger.log_dir, "hparams.yaml").read_text()
    assert "!!python" not in text and "!!" not in text
    loaded = yaml.safe_load(text)
    assert loaded["enum_name"] == "red" and loaded["tuple"] == [1, "two", 3.0]
    assert loaded["nested"] == {"inner": ["red", {"deep": 2.0}]}


def test_hparams_yaml_merges_into_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "hparams.yaml"
    path.write_text("lr: 0.1\noptimizer:\n  name: sgd\n  momentum: 0.9\n")
    store = params.HparamsYaml(str(path))
    store.update({"batch_size": 32, "optimizer": {"momentum": 0.5, "nesterov": True}})
    assert yaml.safe_load(path.read_text()) == {
        "lr": 0.1,
        "optimizer": {"name": "sgd", "momentum": 0.5, "nesterov": True},
        "batch_size": 32,
    }
    # a second writer (a resumed run) sees both
    assert params.HparamsYaml(str(path)).values["batch_size"] == 32


def test_hparams_yaml_reads_a_file_lightning_wrote_with_python_tags(tmp_path: Path) -> None:
    from lightning.pytorch.core.saving import save_hparams_to_yaml

    path = tmp_path / "hparams.yaml"
    save_hparams_to_yaml(str(path), {"shape": (1, 2), "args": Namespace(a=1), "fn": len, "lr": 0.1})
    assert "!!python" in path.read_text()
    store = params.HparamsYaml(str(path))
    with pytest.warns(TracklightWarning, match="Python-specific YAML tags"):
        store.update({"new": 1})
    assert yaml.safe_load(path.read_text()) == {
        "shape": [1, 2],
        "args": {"a": 1},
        "fn": "builtins.len",
        "lr": 0.1,
        "new": 1,
    }
