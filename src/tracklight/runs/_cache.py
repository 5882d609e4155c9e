"""Points of big runs kept in a cache folder, so a second ``show`` or ``plot`` of a run with millions of points
loads numpy arrays instead of parsing the files again.

An entry is named after the run's files (absolute paths, sizes, modification times) and the reader's
backend, so any change to a file makes a new entry; only runs of at least :data:`MIN_POINTS` points are
kept, and the folder keeps the :data:`KEEP` newest entries. The folder is ``$TRACKLIGHT_CACHE_DIR``, else
``$XDG_CACHE_HOME/tracklight/points``, else ``~/.cache/tracklight/points``. A cache that cannot be written
(a read-only home) or read (a damaged entry) is passed over: the run is read from its files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable

import numpy as np

from tracklight.runs._run import Points

__all__ = ["MIN_POINTS", "cached"]

MIN_POINTS = 200_000
KEEP = 32


def folder() -> str:
    explicit = os.environ.get("TRACKLIGHT_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tracklight", "points")


def _key(backend: str, files: list[str], extra: str) -> str | None:
    digest = hashlib.sha1(f"{backend}\0{extra}".encode())
    for path in files:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        digest.update(f"\0{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def cached(backend: str, files: list[str], read: Callable[[], dict[str, Points]], extra: str = "") -> dict[str, Points]:
    """``read()``'s points, from the cache when ``files`` are unchanged since they were kept."""
    key = _key(backend, files, extra) if files else None
    if key is None:
        return read()
    path = os.path.join(folder(), f"{key}.npz")
    try:
        with np.load(path, allow_pickle=False) as stored:
            names = stored["names"].tolist()
            return {
                str(name): Points(stored[f"s{i}"], stored[f"v{i}"], stored[f"t{i}"]) for i, name in enumerate(names)
            }
    except (OSError, KeyError, ValueError):
        pass
    points = read()
    if sum(len(p) for p in points.values()) >= MIN_POINTS:
        _store(path, points)
    return points


def _store(path: str, points: dict[str, Points]) -> None:
    arrays: dict[str, np.ndarray] = {"names": np.array(list(points), dtype=str)}
    for index, series in enumerate(points.values()):
        arrays.update({f"s{index}": series.step, f"v{index}": series.value, f"t{index}": series.time})
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)  # type: ignore[arg-type]
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.remove(temporary)
        return
    entries = sorted(
        (entry for entry in os.scandir(directory) if entry.name.endswith(".npz")), key=lambda e: e.stat().st_mtime
    )
    for entry in entries[:-KEEP]:
        with contextlib.suppress(OSError):
            os.remove(entry.path)
