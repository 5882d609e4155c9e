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
from tracklight._fs import atomic_write_text, open_no_follow, set_aside
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

    Returns the converted dict and a list of notes, one per value that changed type, naming its key. A value
    that cannot be converted at all (its ``__str__`` raises, it contains itself, it nests too deep) becomes a
    placeholder string, named in its note; nothing here raises for a value.
    """
    notes: list[str] = []
    clean = {}
    for key, value in to_dict(params).items():
        name = _key_text(key, "", notes)
        clean[name] = _clean(value, name, notes, ())
    return clean, notes


#: Containers nested deeper than this are logged as a placeholder (a cycle would nest forever).
MAX_DEPTH = 64


class _Quiet(str):
    """A note for a lossless conversion (a ``Path`` to its string): listed when there is a warning anyway,
    never the reason for one."""


def _clean(value: Any, key: str, notes: list[str], parents: tuple[int, ...]) -> Any:
    try:
        return _convert(value, key, notes, parents)
    except Exception as err:  # a broken __str__, __iter__, property...: the value must not break training
        return _placeholder(value, key, notes, f"could not be read ({_error_text(err)})")


def _convert(value: Any, key: str, notes: list[str], parents: tuple[int, ...]) -> Any:
    if isinstance(value, enum.Enum):
        converted = value.value if isinstance(value.value, _PLAIN) else value.name
        notes.append(f"{key!r} ({type(value).__name__} member -> {converted!r})")
        return _convert(converted, key, notes, parents)
    if isinstance(value, str):
        return _text(value, key, notes)
    if isinstance(value, _PLAIN):
        # numpy's float64 and str_ subclass float and str, but yaml.safe_dump refuses them: keep the base type.
        return value if type(value) in _PLAIN else _plain_base(value)
    if isinstance(value, os.PathLike):
        converted = _text(os.fspath(value), key, notes)
        notes.append(_Quiet(f"{key!r} ({type(value).__name__} -> {converted!r})"))
        return converted
    if isinstance(value, (Namespace, Mapping, set, frozenset)) or _is_sequence(value) or _is_dataclass_instance(value):
        if id(value) in parents:
            return _placeholder(value, key, notes, "contains itself", "<cycle>")
        if len(parents) >= MAX_DEPTH:
            return _placeholder(value, key, notes, f"is nested more than {MAX_DEPTH} levels deep", "<too deep>")
        return _container(value, key, notes, (*parents, id(value)))
    if module_prefix(value) in ("torch", "numpy") and hasattr(value, "tolist"):
        return _clean_array(value, key, notes)
    if callable(value):
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        converted = name if isinstance(name, str) else repr(value)
        notes.append(f"{key!r} ({_kind(value)} -> {converted!r})")
        return _text(converted, key, notes)
    if isinstance(value, bytes):
        converted = value.decode("utf-8", errors="replace")
        notes.append(f"{key!r} (bytes -> str)")
        return converted
    converted = _text(str(value), key, notes)
    notes.append(f"{key!r} ({type(value).__name__} object -> its str(): {_shorten(converted)!r})")
    return converted


def _is_sequence(value: Any) -> bool:
    # Other sequences than list and tuple too: OmegaConf's ListConfig (Hydra configs) is a list, as Lightning
    # stores it. Strings and bytes are sequences that are not containers.
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _container(value: Any, key: str, notes: list[str], parents: tuple[int, ...]) -> Any:
    if _is_sequence(value):
        return [_clean(v, f"{key}[{i}]", notes, parents) for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = sorted((_clean(v, key, notes, parents) for v in value), key=repr)
        notes.append(f"{key!r} ({type(value).__name__} -> sorted list)")
        return items
    clean = {}
    for k, v in to_dict(value).items():
        name = _key_text(k, key, notes)
        clean[name] = _clean(v, f"{key}/{name}", notes, parents)
    return clean


def _text(value: str, key: str, notes: list[str]) -> str:
    """``value`` as a plain ``str`` that UTF-8 can encode (lone surrogates escaped): every file is UTF-8."""
    value = str.__str__(value)
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", errors="backslashreplace").decode("utf-8")
        notes.append(f"{key!r} (text UTF-8 cannot encode -> escaped: {_shorten(value)!r})")
    return value


def _key_text(key: Any, parent: str, notes: list[str]) -> str:
    """A mapping's key as text; one whose ``str()`` raises gets a placeholder."""
    where = f"{parent}/" if parent else ""
    try:
        return _text(key if isinstance(key, str) else str(key), f"{where}<a key>", notes)
    except Exception as err:
        name = f"<unprintable {type(key).__name__} key>"
        notes.append(f"{where + name!r} (a key whose str() raised {_error_text(err)} -> the placeholder {name!r})")
        return name


def _placeholder(value: Any, key: str, notes: list[str], why: str, text: str | None = None) -> str:
    """Log a placeholder instead of ``value``, and say so in its note."""
    text = text or f"<unloggable {type(value).__name__}>"
    notes.append(f"{key!r} ({type(value).__name__} that {why} -> the placeholder {text!r})")
    return text


def _error_text(err: BaseException) -> str:
    try:
        return _shorten(f"{type(err).__name__}: {err}")
    except Exception:  # an exception whose own __str__ raises
        return type(err).__name__


def _clean_array(value: Any, key: str, notes: list[str]) -> Any:
    size = int(getattr(value, "size", 1)) if module_prefix(value) == "numpy" else int(value.numel())
    kind = "tensor" if module_prefix(value) == "torch" else type(value).__name__
    if size == 1 and getattr(value, "ndim", 0) == 0:
        return _clean(value.item(), key, notes, ())  # a complex item is not a plain value yet
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
    if all(isinstance(note, _Quiet) for note in notes):
        return
    shown = "; ".join(notes[:10])
    if len(notes) > 10:  # details for the first ten, but every converted key is named
        shown += "; and " + ", ".join(note.partition(" (")[0] for note in notes[10:])
    warn(
        f"{logger_name}: {len(notes)} hyperparameter value(s) were converted to plain values to be logged: "
        f"{shown}. Pass numbers, strings, lists or dicts to control exactly what is stored."
    )


def nan_as_text(value: Any) -> Any:
    """Sanitized hyperparameters with every NaN as the text ``"nan"``, for backends whose JSON turns NaN into
    null (W&B's config, Comet's nested parameters), which would store a wrong value without a word."""
    if isinstance(value, dict):
        return {key: nan_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [nan_as_text(item) for item in value]
    return "nan" if isinstance(value, float) and value != value else value


#: Characters YAML reads as line breaks inside a scalar (PyYAML writes them raw when unicode is allowed).
_YAML_BREAKS = ("\x85", "\u2028", "\u2029")


def to_yaml(params: Mapping[str, Any]) -> str:
    """Safe YAML (never ``!!python/object``) for already-sanitized hyperparameters."""
    readable = not _any_text(params, lambda text: any(char in text for char in _YAML_BREAKS))
    return yaml.safe_dump(dict(params), sort_keys=False, allow_unicode=readable, default_flow_style=False)


def _any_text(value: Any, test: Any) -> bool:
    if isinstance(value, str):
        return bool(test(value))
    if isinstance(value, Mapping):
        return any(_any_text(key, test) or _any_text(item, test) for key, item in value.items())
    if isinstance(value, list):
        return any(_any_text(item, test) for item in value)
    return False


class HparamsYaml:
    """An ``hparams.yaml`` that grows: each update merges into what the file already holds and rewrites it
    atomically, so a resumed run keeps the hyperparameters of the runs before it.

    A file that cannot be merged (not YAML, not UTF-8, not a mapping) or a symbolic link in its place is
    renamed aside, never followed, overwritten or deleted, and the new file is started with a warning
    naming both.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._values: dict[str, Any] | None = None
        #: Why the existing file cannot be merged (it is set aside at the first write), or None.
        self._unusable: tuple[str, str] | None = None
        #: How many writes the disk refused since the last one it took (0: the file is up to date).
        self._unsaved = 0

    @property
    def values(self) -> dict[str, Any]:
        if self._values is None:
            self._values = self._load()
        return self._values

    def update(self, clean: Mapping[str, Any]) -> None:
        _deep_update(self.values, clean)
        if self._unusable is not None:
            self._set_aside(*self._unusable)
        self._write()

    def restore(self) -> None:
        """Write the file again if it was written once and has since been deleted (with its folder, perhaps), or
        if the disk refused the last write."""
        if self._unsaved:
            self._write()
        elif self._values is not None and not os.path.lexists(self.path):
            atomic_write_text(self.path, to_yaml(self._values))
            warn(f"{self.path} was deleted while the run was going on; it was written again from memory.")

    def _write(self) -> None:
        """Write the file; a disk that refuses (full, read-only) leaves the values in memory, said once."""
        try:
            atomic_write_text(self.path, to_yaml(self.values))
        except OSError as err:
            self._unsaved += 1
            if self._unsaved == 1:
                warn(
                    f"Could not write {self.path} ({err}); the hyperparameters are kept in memory and written at "
                    "the next save() or finalize. Free space or fix permissions."
                )
        else:
            self._unsaved = 0

    # What an object-store run's uploader takes from memory while the staging disk refuses the file.

    def held(self) -> int | None:
        return self._unsaved or None

    def snapshot(self) -> tuple[int | None, bytes]:
        return self.held(), to_yaml(self.values).encode("utf-8")

    def stored(self, where: str, token: Any) -> None:
        pass

    def _set_aside(self, label: str, why: str) -> None:
        self._unusable = None
        if not os.path.lexists(self.path):
            return
        kept = set_aside(self.path, label)
        warn(f"{self.path} {why}; it was renamed to {kept} (nothing deleted) and a new {self.path} started.")

    def _load(self) -> dict[str, Any]:
        if os.path.islink(self.path):
            self._unusable = ("link", f"is a symbolic link (to {os.readlink(self.path)}), which is never followed")
            return {}
        try:
            with open(self.path, encoding="utf-8", opener=open_no_follow) as handle:
                loader = _PythonTagsAsPlain(handle)
                try:
                    loaded = loader.get_single_data()
                finally:
                    loader.dispose()
        except FileNotFoundError:
            return {}
        except (yaml.YAMLError, UnicodeDecodeError, IsADirectoryError) as err:
            self._unusable = ("damaged", f"could not be read as YAML ({_yaml_problem(err)})")
            return {}
        if loader.python_tags:
            warn(
                f"{self.path} holds Python-specific YAML tags ({', '.join(sorted(loader.python_tags))}), as "
                "Lightning writes for tuples, Namespaces or objects; they were read as plain lists, dicts and "
                "strings, and the file is rewritten as safe YAML.",
            )
        if loaded is None:  # an empty file
            return {}
        if not isinstance(loaded, Mapping):
            self._unusable = ("damaged", f"holds a {type(loaded).__name__}, not a mapping of names to values")
            return {}
        return sanitize(loaded)[0]


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


def _yaml_problem(err: Exception) -> str:
    """What is wrong with a file, in one line: YAML's problem and where, or the decoding error."""
    problem, mark = getattr(err, "problem", None), getattr(err, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return _shorten(str(err), 120)


def _deep_update(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value
