"""The spill file of background delivery: JSON lines on disk for what a backend could not take yet.

Line one is a header naming the sink that can send the items and its target (which run). Every
other line is one item; a line of kind ``_target`` updates the target (the run got an id after the
file was started). Items before the byte offset kept in ``<file>.offset`` were delivered already.
Resending an item twice is harmless for the backends that use this (MLflow ignores a metric point it
already has), so the offset is a saving, not a guarantee.

When the spill file's folder cannot be written (read-only, full, gone), the file moves to the
fallback folder, ``<temporary directory>/tracklight-spill`` (``$TMPDIR`` or ``/tmp``), carrying what
it held. A line that cannot be read back (cut short by a crash, edited by hand) is set aside with its
line number in ``<name>.rejected.jsonl``; every other line is still sent.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from tracklight._errors import TracklightError

Item = dict[str, Any]

#: Format version written in every header.
SPILL_VERSION = 1

#: The ``kind`` given to a line that cannot be read back as an item.
UNREADABLE = "unreadable line"


def fallback_dir() -> str:
    """Where spill files go when their own folder cannot be written."""
    return os.path.join(tempfile.gettempdir(), "tracklight-spill")


class SpillFile:
    """Append items, read them back from the first undelivered one, forget them once delivered.

    Not thread-safe: the owning :class:`~tracklight.delivery.Delivery` calls every method under its lock,
    except :meth:`read`, which only reads bytes that are already written.

    Args:
        path: The file. Created only when something is appended.
        header: Builds the header's fields (sink factory, destination, target) when the file is created.
        fallback: The folder the file moves to when ``path``'s folder cannot be written; ``None`` for
            :func:`fallback_dir`.
    """

    def __init__(
        self, path: str, header: Callable[[], dict[str, Any]] | None = None, fallback: str | None = None
    ) -> None:
        self.path = os.path.abspath(path)
        self.kept: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.header: dict[str, Any] | None = None
        #: Where the file was before it moved to the fallback folder, and why it moved.
        self.moved_from: str | None = None
        self.move_error: str | None = None
        #: Changes whenever the file's bytes are replaced (moved, removed): offsets read before are stale then.
        self.epoch = 0
        self._fallback = fallback
        self._make_header = header
        self._offset = 0
        self._offset_line = 1  # the line number of the line that starts at ``_offset``
        self._end = 0
        self._handle: Any = None
        if os.path.exists(self.path):
            self._load()

    @property
    def offset_path(self) -> str:
        return self.path + ".offset"

    @property
    def rejected_path(self) -> str:
        return self.path.removesuffix(".jsonl") + ".rejected.jsonl"

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
        """Write ``items``; raises ``OSError`` only when neither this folder nor the fallback takes them."""
        lines, kinds = [], []
        for item in items:
            lines.append(json.dumps(item, default=str))
            kinds.append(item["kind"])
        if not lines:
            return
        self._write("\n".join(lines) + "\n")
        self.kept.update(kinds)  # counted once written: a failed write leaves the items with the caller

    def append_target(self, target: dict[str, Any]) -> None:
        """Record that the target changed (e.g. the run now has an id), if the file exists."""
        if self.header is None:
            return
        self.header["target"].update(target)  # first: a file that moves takes the new target along
        self._write(json.dumps({"kind": "_target", "target": target}) + "\n")

    def reject(self, item: Item, error: str, line: int | None = None) -> None:
        """Keep an item the backend refused for good (or an unreadable line), with the reason, beside the file."""
        record: dict[str, Any] = {"item": item, "error": error}
        if line is not None:
            record["line"] = line
        text = json.dumps(record, default=str) + "\n"
        try:
            _append_text(self.rejected_path, text)
        except OSError:
            _append_text(os.path.join(self._fallback_dir(), os.path.basename(self.rejected_path)), text)
        self.rejected[str(item.get("kind", UNREADABLE))] += 1

    def sync(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                with contextlib.suppress(OSError):
                    handle.close()

    # ---- reading back ---------------------------------------------------------------------------------

    def pending_range(self) -> tuple[int, int]:
        """The byte range holding undelivered items: read it with :meth:`read`."""
        return self._offset, self._end

    def read(self, start: int, end: int, max_items: int) -> list[tuple[Item, int, int | None]]:
        """Up to ``max_items`` lines from ``start``: each item with the byte offset just after it and its line
        number (known when ``start`` is the first undelivered line).

        A line that is not a JSON object with a ``kind`` comes back as an item of kind ``_unreadable`` holding
        the reason and the text.
        """
        entries: list[tuple[Item, int, int | None]] = []
        number = self._offset_line if start == self._offset else None
        with open(self.path, "rb") as handle:
            handle.seek(start)
            position = start
            while position < end and len(entries) < max_items:
                line = handle.readline()
                if not line:
                    break
                position += len(line)
                entries.append((_parse(line), position, number))
                if number is not None:
                    number += 1
        return entries

    def commit(self, offset: int, delivered: Counter[str], lines: int = 0) -> None:
        """Everything before ``offset`` (``lines`` more lines) is delivered; forget the file once all of it is."""
        self._offset = offset
        self._offset_line += lines
        self.kept.subtract(delivered)
        self.kept = +self.kept
        if self._offset >= self._end:
            self._remove()
            return
        # No fsync, and a failure is ignored: a lost offset only means some items are sent twice, which the
        # backends ignore.
        with contextlib.suppress(OSError):
            temporary = f"{self.offset_path}.{os.getpid()}.tmp"
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(str(offset))
            os.replace(temporary, self.offset_path)

    # ---- internals ----------------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        try:
            handle = self._open_for_append()
            handle.write(text)
            handle.flush()
        except OSError as error:
            self._move_to_fallback(error)  # raises when the fallback folder cannot be written either
            handle = self._open_for_append()
            handle.write(text)
            handle.flush()
        self._end = handle.tell()

    def _open_for_append(self) -> Any:
        if self._handle is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            handle = open(self.path, "a", encoding="utf-8")  # kept open while delivering
            try:
                if self.header is None:
                    target = self._make_header() if self._make_header is not None else {}
                    header = {"tracklight_spill": SPILL_VERSION, "created": time.time(), **target}
                    header.setdefault("target", {})
                    handle.write(json.dumps(header, default=str) + "\n")
                    handle.flush()
                    self.header = header
                    self._offset, self._offset_line = handle.tell(), 2
                elif handle.tell() > 0 and not _ends_with_newline(self.path):
                    # The last line was cut short (a crash mid-write): end it, so the next item starts a line.
                    handle.write("\n")
                    handle.flush()
            except BaseException:
                handle.close()
                raise
            self._handle = handle
        return self._handle

    def _fallback_dir(self) -> str:
        return self._fallback if self._fallback is not None else fallback_dir()

    def _move_to_fallback(self, error: OSError) -> None:
        """Carry on in the fallback folder, taking along what is not delivered yet."""
        if self.moved_from is not None:
            raise error  # moved already: the fallback folder is failing too
        carried = b""
        if self.header is not None and self._end > self._offset:
            # Only whole lines: the failed write may have left half of one behind.
            with contextlib.suppress(OSError), open(self.path, "rb") as old:
                old.seek(self._offset)
                carried = old.read(self._end - self._offset)
        folder = self._fallback_dir()
        os.makedirs(folder, exist_ok=True)
        stem, suffix = os.path.splitext(os.path.basename(self.path))
        path = os.path.join(folder, stem + suffix)
        number = 1
        while os.path.exists(path) or os.path.exists(path + ".offset"):
            number += 1
            path = os.path.join(folder, f"{stem}-{number}{suffix}")
        self._close_quietly()
        with open(path, "x", encoding="utf-8") as new:
            if self.header is not None:
                new.write(json.dumps(self.header, default=str) + "\n")
            start = new.tell()
        if carried:
            with open(path, "ab") as new_bytes:
                new_bytes.write(carried)
        old_path = self.path
        self.epoch += 1
        self.moved_from, self.move_error, self.path = old_path, f"{type(error).__name__}: {error}", path
        if self.header is not None:
            self._offset, self._offset_line, self._end = start, 2, start + len(carried)
            self._forget(old_path)  # a copy left behind would only be sent twice, harmlessly

    def _close_quietly(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None

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
            except (OSError, ValueError):
                pass
            position, number, offset_line = len(first), 1, 2
            for line in handle:
                position += len(line)
                number += 1
                if position <= offset:
                    offset_line = number + 1
                item = _parse(line)
                if item["kind"] == "_target":
                    if isinstance(item.get("target"), dict):
                        header["target"].update(item["target"])
                elif position > offset and not item["kind"].startswith("_"):
                    self.kept[item["kind"]] += 1
                elif position > offset and item["kind"] == "_unreadable":
                    self.kept[UNREADABLE] += 1
            self._end = position
        self.header = header
        self._offset = min(offset, self._end)
        self._offset_line = offset_line

    def _remove(self) -> None:
        self._close_quietly()
        self._forget(self.path)
        self.epoch += 1
        self.header = None
        self._offset, self._offset_line, self._end = 0, 1, 0
        self.kept.clear()

    @staticmethod
    def _forget(path: str) -> None:
        for name in (path, path + ".offset"):
            with contextlib.suppress(OSError):
                os.remove(name)


def _parse(line: bytes) -> Item:
    """One line as an item; an ``_unreadable`` item with the reason and the text when it is not one."""
    try:
        item = json.loads(line)
    except ValueError as error:
        # Cut short: no end of line, or JSON that breaks off only where the line ends (an end of line is added
        # when the file is written to again).
        cut = not line.endswith(b"\n") or getattr(error, "pos", -1) >= len(_text(line))
        return _unreadable(line, "cut short (the process stopped while writing it)" if cut else f"not JSON ({error})")
    if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
        return _unreadable(line, "not an item (a JSON object with a 'kind')")
    if item["kind"].startswith("_") and item["kind"] != "_target":
        return _unreadable(line, f"unknown kind {item['kind']!r}")
    return item


def _unreadable(line: bytes, reason: str) -> Item:
    return {"kind": "_unreadable", "error": reason, "text": _text(line)}


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\n")


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _append_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
