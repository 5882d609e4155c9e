"""A wide CSV table (one column per key, sorted) that grows new columns without rewriting on every flush."""

from __future__ import annotations

import csv
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from typing import IO, Any

from tracklight import _flushing
from tracklight._errors import TracklightWarning


class CSVTable:
    """Appends rows to ``path``; the header is the sorted union of every key seen, as in Lightning's CSVLogger.

    Rows whose keys fit the current header are appended on :meth:`flush` at once. A new key means the
    header must change, which means rewriting the file: that rewrite happens at most once per
    ``rewrite_interval`` seconds (plus at a forced flush), however many new keys arrive meanwhile. A
    background thread flushes at least every second, so a killed process loses at most that much.

    An existing file is never deleted: its header and rows are kept and new rows are appended.
    """

    def __init__(self, path: str, rewrite_interval: float = 1.0) -> None:
        self.path = path
        self.rewrite_interval = rewrite_interval
        self._lock = threading.RLock()
        self._pending: list[Mapping[str, Any]] = []
        self._handle: IO[str] | None = None
        self._writer: Any = None
        self._last_rewrite = 0.0
        self._failed_once = False
        self._columns = self._read_header()
        self._known = set(self._columns)
        self._header_stale = False
        _flushing.register(self)

    @property
    def columns(self) -> list[str]:
        with self._lock:
            return sorted(self._known) if self._header_stale else list(self._columns)

    def append(self, row: Mapping[str, Any]) -> None:
        with self._lock:
            self._pending.append(row)
            if not self._known.issuperset(row):
                self._known.update(row)
                self._header_stale = True

    def flush(self, force: bool = False) -> None:
        """Write pending rows; postpone a header rewrite until ``rewrite_interval`` has passed unless forced."""
        with self._lock:
            if not self._pending:
                return
            if self._header_stale and not force and time.monotonic() - self._last_rewrite < self.rewrite_interval:
                return
            try:
                if self._header_stale:
                    self._rewrite()
                else:
                    self._append_pending()
            except OSError as err:
                self._report(err)

    def close(self) -> None:
        self.flush(force=True)
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = self._writer = None
        _flushing.unregister(self)

    # ---- internals ---------------------------------------------------------------------------------------

    def _read_header(self) -> list[str]:
        try:
            with open(self.path, newline="", encoding="utf-8") as handle:
                return next(csv.reader(handle), [])
        except FileNotFoundError:
            return []

    def _open_for_append(self) -> None:
        if self._handle is not None:
            return
        new_file = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        if not new_file:
            _end_with_newline(self.path)
        self._handle = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._handle, fieldnames=self._columns, restval="")
        if new_file:
            self._writer.writeheader()

    def _append_pending(self) -> None:
        self._open_for_append()
        self._writer.writerows(self._pending)
        self._handle.flush()  # type: ignore[union-attr]
        self._pending.clear()

    def _rewrite(self) -> None:
        """Copy the existing rows under the new header into a temporary file, add the pending rows, swap it in."""
        columns = sorted(self._known)
        if self._handle is not None:
            self._handle.close()
            self._handle = self._writer = None
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".metrics.", suffix=".csv.tmp")
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
                writer = csv.DictWriter(out, fieldnames=columns, restval="")
                writer.writeheader()
                if os.path.exists(self.path):
                    with open(self.path, newline="", encoding="utf-8") as old:
                        reader = csv.reader(old)
                        old_columns = next(reader, [])
                        for values in reader:
                            writer.writerow(dict(zip(old_columns, values, strict=False)))
                writer.writerows(self._pending)
            if os.path.exists(self.path):
                os.chmod(tmp, os.stat(self.path).st_mode & 0o777)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self._columns = columns
        self._header_stale = False
        self._pending.clear()
        self._last_rewrite = time.monotonic()

    def _report(self, err: OSError) -> None:
        if self._failed_once:
            return
        self._failed_once = True
        warnings.warn(
            f"Could not write {self.path} ({err}). The {len(self._pending)} row(s) not yet written are kept in "
            "memory and written at the next flush; free space or fix permissions to let them through.",
            TracklightWarning,
            stacklevel=3,
        )


def _end_with_newline(path: str) -> None:
    """Finish a last line cut short (a process killed mid-write) so appended rows start on their own line."""
    with open(path, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) not in (b"\n", b"\r"):
            handle.write(b"\n")
