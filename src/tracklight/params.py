"""Hyperparameters: turn what users pass into plain, safe values; flatten; write ``hparams.yaml``.

Every backend logs hyperparameters through these functions, so a value is converted the same way
everywhere and the user is told, once, what had to change.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from argparse import Namespace
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from tracklight._errors import TracklightError, warn
from tracklight._fs import atomic_write_text
from tracklight._imports import module_prefix

#: Arrays with more elements than this are logged as a short description instead of a list.
MAX_ARRAY_ELEMENTS = 1000

_PLAIN = (bool, int, float, str, type(None))


def to_dict(params: Any) -> dict[str, Any]:
    """The top level of ``params`` as a dict: accepts a mapping, an ``argparse.Namespace``, a dataclass or None."""
    if params is None:
        return {}
    if isinstance(params, Namespace):
        return dict(vars(params))
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return {field.name: getattr(params, field.name) for field in dataclasses.fields(params)}
    if isinstance(params, Mapping):
        return dict(params)
    raise TracklightError(
        f"Hyperparameters must be a dict, an argparse.Namespace or a dataclass, got {type(params).__name__}. "
        "Fix: wrap the value in a dict, e.g. log_hyperparams({'config': value})."
    )


def sanitize(params: Any) -> tuple[dict[str, Any], list[str]]:
    """Convert ``params`` into nested dicts of plain values that any backend and ``yaml.safe_dump`` accept.

    Returns the converted dict and a list of notes, one per value that changed type, naming its key.
    """
    notes: list[str] = []
    clean = {str(key): _clean(value, str(key), notes) for key, value in to_dict(params).items()}
    return clean, notes


def _clean(value: Any, key: str, notes: list[str]) -> Any:
    if isinstance(value, enum.Enum):
        converted = value.value if isinstance(value.value, _PLAIN) else value.name
        notes.append(f"{key!r} ({type(value).__name__} member -> {converted!r})")
        return converted
    if isinstance(value, _PLAIN):
        # numpy's float64 and str_ subclass float and str, but yaml.safe_dump refuses them: keep the base type.
        return value if type(value) in _PLAIN else _plain_base(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (Namespace, Mapping)) or _is_dataclass_instance(value):
        return {str(k): _clean(v, f"{key}/{k}", notes) for k, v in to_dict(value).items()}
    if isinstance(value, (list, tuple)) or (isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray))):
        # Other sequences too: OmegaConf's ListConfig (Hydra configs) is a list, as Lightning stores it.
        return [_clean(v, f"{key}[{i}]", notes) for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = sorted((_clean(v, key, notes) for v in value), key=repr)
        notes.append(f"{key!r} ({type(value).__name__} -> sorted list)")
        return items
    if module_prefix(value) in ("torch", "numpy") and hasattr(value, "tolist"):
        return _clean_array(value, key, notes)
    if callable(value):
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        converted = name if isinstance(name, str) else repr(value)
        notes.append(f"{key!r} ({_kind(value)} -> {converted!r})")
        return converted
    if isinstance(value, bytes):
        converted = value.decode("utf-8", errors="replace")
        notes.append(f"{key!r} (bytes -> str)")
        return converted
    converted = str(value)
    notes.append(f"{key!r} ({type(value).__name__} object -> its str(): {_shorten(converted)!r})")
    return converted


def _clean_array(value: Any, key: str, notes: list[str]) -> Any:
    size = int(getattr(value, "size", 1)) if module_prefix(value) == "numpy" else int(value.numel())
    kind = "tensor" if module_prefix(value) == "torch" else type(value).__name__
    if size == 1 and getattr(value, "ndim", 0) == 0:
        return _clean(value.item(), key, notes)  # a complex item is not a plain value yet
    if size <= MAX_ARRAY_ELEMENTS:
        if hasattr(value, "detach"):
            value = value.detach().cpu()
        notes.append(f"{key!r} ({kind} of shape {tuple(value.shape)} -> list)")
        return value.tolist()
    converted = f"{kind}(shape={tuple(value.shape)}, dtype={value.dtype})"
    notes.append(f"{key!r} ({kind} with {size} elements -> the description {converted!r})")
    return converted


def _plain_base(value: Any) -> Any:
    base: type
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return value


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _kind(value: Any) -> str:
    if isinstance(value, type):
        return "class"
    return "function" if hasattr(value, "__code__") else f"callable {type(value).__name__}"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def flatten(params: Mapping[str, Any], separator: str = "/") -> dict[str, Any]:
    """Flatten nested dicts into one level: ``{"opt": {"lr": 0.1}}`` becomes ``{"opt/lr": 0.1}``."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and value:
            for sub_key, sub_value in flatten(value, separator).items():
                flat[f"{key}{separator}{sub_key}"] = sub_value
        else:
            flat[str(key)] = value
    return flat


def warn_conversions(notes: list[str], logger_name: str) -> None:
    """Tell the user, in one warning, which hyperparameters were converted and how to avoid it."""
    if not notes:
        return
    shown = "; ".join(notes[:10])
    if len(notes) > 10:  # details for the first ten, but every converted key is named
        shown += "; and " + ", ".join(note.partition(" (")[0] for note in notes[10:])
    warn(
        f"{logger_name}: {len(notes)} hyperparameter value(s) were converted to plain values to be logged: "
        f"{shown}. Pass numbers, strings, lists or dicts to control exactly what is stored."
    )


def to_yaml(params: Mapping[str, Any]) -> str:
    """Safe YAML (never ``!!python/object``) for already-sanitized hyperparameters."""
    return yaml.safe_dump(dict(params), sort_keys=False, allow_unicode=True, default_flow_style=False)


class HparamsYaml:
    """An ``hparams.yaml`` that grows: each update merges into what the file already holds and rewrites it
    atomically, so a resumed run keeps the hyperparameters of the runs before it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._values: dict[str, Any] | None = None

    @property
    def values(self) -> dict[str, Any]:
        if self._values is None:
            self._values = self._load()
        return self._values

    def update(self, clean: Mapping[str, Any]) -> None:
        _deep_update(self.values, clean)
        atomic_write_text(self.path, to_yaml(self.values))

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                loader = _PythonTagsAsPlain(handle)
                try:
                    loaded = loader.get_single_data()
                finally:
                    loader.dispose()
        except FileNotFoundError:
            return {}
        except yaml.YAMLError as err:
            raise TracklightError(
                f"{self.path} exists but is not YAML ({err}); move it away to let tracklight write its own."
            ) from err
        if loader.python_tags:
            warn(
                f"{self.path} holds Python-specific YAML tags ({', '.join(sorted(loader.python_tags))}), as "
                "Lightning writes for tuples, Namespaces or objects; they were read as plain lists, dicts and "
                "strings, and the file is rewritten as safe YAML.",
            )
        return sanitize(loaded)[0] if isinstance(loaded, Mapping) else {}


class _PythonTagsAsPlain(yaml.SafeLoader):
    """A safe loader that reads ``!!python/...`` nodes (which Lightning's ``hparams.yaml`` may hold) as plain
    lists, dicts or strings instead of refusing them, and never constructs a Python object."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.python_tags: set[str] = set()

    def construct_python_tag(self, suffix: str, node: yaml.Node) -> Any:
        self.python_tags.add("!!python/" + suffix.partition(":")[0])
        if isinstance(node, yaml.SequenceNode):
            return self.construct_sequence(node, deep=True)
        if isinstance(node, yaml.MappingNode):
            return self.construct_mapping(node, deep=True)
        value = self.construct_scalar(node)  # type: ignore[arg-type]
        return value or suffix.partition(":")[2]  # !!python/name:builtins.len '' -> "builtins.len"


_PythonTagsAsPlain.add_multi_constructor("tag:yaml.org,2002:python/", _PythonTagsAsPlain.construct_python_tag)


def _deep_update(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value
