"""Reader of tracklight's spill files (:mod:`tracklight.delivery.spill`): what background delivery kept on disk
because the backend could not take it yet, before ``python -m tracklight.delivery replay`` sends it.

JSON lines: a header (``tracklight_spill``, its ``target``: tracking URI, experiment, run name and id), then
one item per line (``metric`` with key, value, step and a timestamp in milliseconds; ``param``; ``tag``;
``artifact``; ``status``) and ``_target`` lines that update the target. Read tolerantly: unknown kinds and
fields are skipped (newer writers may add some), and a line cut short by a crash is left out.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tracklight.runs._files import file_reader, mtime
from tracklight.runs._run import MediaFile, Points, Run, RunError, RunInfo, last_step, last_time

__all__ = ["SpillRun", "is_spill_file", "scan"]

_MARK = b"tracklight_spill"


class SpillRun(Run):
    backend = "spill"

    def __init__(self, ref: str, path: str) -> None:
        super().__init__(ref, path)
        self._parsed: tuple[dict[str, Any], list[dict[str, Any]]] | None = None

    def parsed(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The target (header plus every ``_target`` update) and the items, read once."""
        with self._lock:
            if self._parsed is None:
                self._parsed = _parse(self.path)
            return self._parsed

    def info(self) -> RunInfo:
        target, items = self.parsed()
        points = self.points()
        return RunInfo(
            ref=self.ref,
            backend=self.backend,
            name=target.get("run_name") or target.get("experiment_name"),
            version=target.get("run_id"),
            status=f"unsent ({len(items)} items)",
            steps=last_step(points),
            updated=last_time(points) or mtime(self.path),
            metrics=len(points),
            params=len(self.params()),
        )

    def _sources(self) -> list[str]:
        return [self.path]

    def params(self) -> dict[str, Any]:
        return {str(item.get("key")): item.get("value") for item in self.parsed()[1] if item.get("kind") == "param"}

    def _read(self) -> dict[str, Points]:
        columns: dict[str, tuple[list[int], list[float], list[float]]] = {}
        for item in self.parsed()[1]:
            if item.get("kind") != "metric":
                continue
            try:
                value = float(item["value"])
            except (KeyError, TypeError, ValueError):
                continue
            steps, values, times = columns.setdefault(str(item.get("key")), ([], [], []))
            steps.append(int(item.get("step") or 0))
            values.append(value)
            stamp = item.get("timestamp")
            times.append(float(stamp) / 1000 if stamp is not None else float("nan"))
        return {key: Points.of(*column) for key, column in columns.items()}

    def media(self) -> list[MediaFile]:
        found = []
        for item in self.parsed()[1]:
            path = item.get("path")
            if item.get("kind") == "artifact" and isinstance(path, str) and os.path.isfile(path):
                key = "/".join(part for part in (item.get("artifact_path"), os.path.basename(path)) if part)
                found.append(MediaFile(key, "file", None, os.path.basename(path), file_reader(path)))
        return found


def _parse(path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        with open(path, "rb") as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        raise RunError(path, f"cannot be read ({err.strerror})") from err
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or "tracklight_spill" not in header:
        raise RunError(path, "is not a tracklight spill file (its first line is not a spill header)")
    target = dict(header.get("target") or {})
    items = []
    for line in lines[1:]:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if not isinstance(item, dict):
            continue
        if item.get("kind") == "_target":
            target.update(item.get("target") or {})
        elif not str(item.get("kind", "_")).startswith("_"):
            items.append(item)
    return target, items


def is_spill_file(path: str) -> bool:
    if not path.endswith(".jsonl") or path.endswith(".rejected.jsonl"):
        return False
    try:
        with open(path, "rb") as handle:
            return _MARK in handle.readline(4096)
    except OSError:
        return False


def scan(folder: str, names: set[str]) -> list[Run]:
    """Every spill file in ``folder``."""
    paths = [os.path.join(folder, name) for name in sorted(names) if name.endswith(".jsonl")]
    return [SpillRun(path, path) for path in paths if is_spill_file(path)]
