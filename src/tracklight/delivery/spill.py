"""The spill file of background delivery: JSON lines on disk for what a backend could not take yet.

Line one is a header naming the sink that can send the items and its target (which run). Every
other line is one item; a line of kind ``_target`` updates the target (the run got an id after the
file was started). Items before the byte offset kept in ``<file>.offset`` were delivered already.
Resending an item twice is harmless for the backends that use this (MLflow ignores a metric point it
already has), so the offset is a saving, not a guarantee.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from tracklight._errors import TracklightError

Item = dict[str, Any]

#: Format version written in every header.
SPILL_VERSION = 1


class SpillFile:
    """Append items, read them back from the first undelivered one, forget them once delivered.

    Not thread-safe: the owning :class:`~tracklight.delivery.Delivery` calls every method under its lock,
    except :meth:`read`, which only reads bytes that are already written.
    """

    def __init__(self, path: str, header: Callable[[], dict[str, Any]] | None = None) -> None:
        self.path = os.path.abspath(path)
        self.offset_path = self.path + ".offset"
        self.rejected_path = self.path.removesuffix(".jsonl") + ".rejected.jsonl"
        self.kept: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.header: dict[str, Any] | None = None
        self._make_header = header
        self._offset = 0
        self._end = 0
        self._handle: Any = None
        if os.path.exists(self.path):
            self._load()

    @property
    def unsent(self) -> int:
        """How many items in the file are not delivered yet."""
        return sum(self.kept.values())

    @property
    def pending(self) -> bool:
        """Whether the file holds lines not yet replayed (items, or only control lines)."""
        return self.header is not None and self._offset < self._end

    @property
    def exists(self) -> bool:
        return self.header is not None

    def target(self) -> dict[str, Any]:
        """The header's target with every later ``_target`` line applied."""
        return dict((self.header or {}).get("target", {}))

    # ---- writing ------------------------------------------------------------------------------------

    def append(self, items: Iterable[Item]) -> None:
        handle = self._open_for_append()
        lines = []
        for item in items:
            lines.append(json.dumps(item, default=str))
            self.kept[item["kind"]] += 1
        if lines:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            self._end = handle.tell()

    def append_target(self, target: dict[str, Any]) -> None:
        """Record that the target changed (e.g. the run now has an id), if the file exists."""
        if self.header is None:
            return
        handle = self._open_for_append()
        handle.write(json.dumps({"kind": "_target", "target": target}) + "\n")
        handle.flush()
        self._end = handle.tell()
        self.header["target"].update(target)

    def reject(self, item: Item, error: str) -> None:
        """Keep an item the backend refused for good, with the reason, beside the spill file."""
        os.makedirs(os.path.dirname(self.rejected_path), exist_ok=True)
        with open(self.rejected_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"item": item, "error": error}, default=str) + "\n")
        self.rejected[item["kind"]] += 1

    def sync(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self.sync()
            self._handle.close()
            self._handle = None

    # ---- reading back ---------------------------------------------------------------------------------

    def pending_range(self) -> tuple[int, int]:
        """The byte range holding undelivered items: read it with :meth:`read`."""
        return self._offset, self._end

    def read(self, start: int, end: int, max_items: int) -> list[tuple[Item, int]]:
        """Up to ``max_items`` items from ``start``, each with the byte offset just after it."""
        entries: list[tuple[Item, int]] = []
        with open(self.path, "rb") as handle:
            handle.seek(start)
            position = start
            while position < end and len(entries) < max_items:
                line = handle.readline()
                if not line:
                    break
                position += len(line)
                try:
                    item = json.loads(line)
                except ValueError:  # a line cut short by a crash: nothing to send
                    item = {"kind": "_broken"}
                entries.append((item, position))
        return entries

    def commit(self, offset: int, delivered: Counter[str]) -> None:
        """Everything before ``offset`` is delivered; forget the file once all of it is."""
        self._offset = offset
        self.kept.subtract(delivered)
        self.kept = +self.kept
        if self._offset >= self._end:
            self._remove()
        else:
            # No fsync: a lost offset only means some items are sent twice, which the backends ignore.
            temporary = f"{self.offset_path}.{os.getpid()}.tmp"
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(str(offset))
            os.replace(temporary, self.offset_path)

    # ---- internals ----------------------------------------------------------------------------------

    def _open_for_append(self) -> Any:
        if self._handle is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")
            if self.header is None:
                target = self._make_header() if self._make_header is not None else {}
                self.header = {"tracklight_spill": SPILL_VERSION, "created": time.time(), **target}
                self.header.setdefault("target", {})
                self._handle.write(json.dumps(self.header, default=str) + "\n")
                self._handle.flush()
                self._offset = self._handle.tell()
        return self._handle

    def _load(self) -> None:
        with open(self.path, "rb") as handle:
            first = handle.readline()
            try:
                header = json.loads(first)
            except ValueError as err:
                raise TracklightError(f"{self.path} is not a tracklight spill file (bad header: {err}).") from err
            if not isinstance(header, dict) or "tracklight_spill" not in header:
                raise TracklightError(f"{self.path} is not a tracklight spill file (no 'tracklight_spill' header).")
            header.setdefault("target", {})
            offset = len(first)
            try:
                with open(self.offset_path, encoding="utf-8") as saved:
                    offset = max(offset, int(saved.read().strip() or 0))
            except (FileNotFoundError, ValueError):
                pass
            position = len(first)
            for line in handle:
                position += len(line)
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if item.get("kind") == "_target":
                    header["target"].update(item.get("target", {}))
                elif position > offset and not str(item.get("kind", "_")).startswith("_"):
                    self.kept[item["kind"]] += 1
            self._end = position
        self.header = header
        self._offset = min(offset, self._end)

    def _remove(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        for path in (self.path, self.offset_path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        self.header = None
        self._offset = self._end = 0
        self.kept.clear()
