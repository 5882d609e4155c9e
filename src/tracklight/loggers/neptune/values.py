"""Values Neptune accepts: hyperparameters as nested namespaces of plain atoms, media as ``File`` contents.

Pure conversion; ``NeptuneLogger`` writes the results.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

#: Neptune cuts string-series entries at this many characters.
MAX_TEXT = 1000
#: Neptune's integer atoms are 32-bit: it skips (with a log line only) any int beyond them.
_INT32 = range(-(2**31), 2**31)


def hyperparams(clean: Mapping[str, Any]) -> dict[str, Any]:
    """Sanitized hyperparameters as Neptune atoms: numbers, strings and booleans stay, the rest (lists, ``None``,
    non-finite floats, ints beyond 32 bits) become their ``str`` so Neptune stores them instead of warning and
    dropping them."""
    converted: dict[str, Any] = {}
    for key, value in clean.items():
        if isinstance(value, Mapping):
            converted[str(key)] = hyperparams(value)
        elif (
            isinstance(value, (bool, str))
            or (isinstance(value, int) and value in _INT32)
            or (isinstance(value, float) and math.isfinite(value))
        ):
            converted[str(key)] = value
        else:
            converted[str(key)] = str(value)
    return converted


def text_chunks(text: str) -> list[str]:
    """``text`` cut into string-series entries Neptune keeps whole."""
    if len(text) <= MAX_TEXT:
        return [text]
    return [text[start : start + MAX_TEXT] for start in range(0, len(text), MAX_TEXT)]


def checkpoint_names(callback: Any) -> dict[str, str]:
    """The files a ``ModelCheckpoint`` keeps (last, top k, best) by the name they get in the run.

    The name is the path relative to the callback's ``dirpath``, without extension, as Lightning's
    NeptuneLogger named them (``epoch=1-step=20``, ``last``).
    """
    paths: list[str] = []
    last = getattr(callback, "last_model_path", "") or ""
    if last:
        paths.append(last)
    paths.extend(getattr(callback, "best_k_models", None) or {})
    best = getattr(callback, "best_model_path", "") or ""
    if best:
        paths.append(best)
    dirpath = getattr(callback, "dirpath", None)
    names: dict[str, str] = {}
    for path in paths:
        if os.path.isfile(path):
            names[checkpoint_name(path, dirpath)] = path
    return names


def checkpoint_name(path: str, dirpath: str | None) -> str:
    path = os.path.normpath(path)
    if dirpath:
        root = os.path.normpath(os.fspath(dirpath))
        if path.startswith(root + os.sep):
            path = path[len(root) + 1 :]
    stem, _ = os.path.splitext(path)
    # A file outside dirpath keeps its whole path; Neptune paths have no empty or drive segments.
    return stem.replace(os.sep, "/").replace(":", "").strip("/")


def leaf_paths(structure: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Paths of the fields (not namespaces) in a piece of ``run.get_structure()``."""
    found: set[str] = set()
    for key, value in structure.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            found |= leaf_paths(value, path)
        else:
            found.add(path)
    return found
