"""A wide CSV table (one column per key, sorted) that grows new columns without rewriting on every flush."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from tracklight._errors import warn
from tracklight.formats import flushing as _flushing

_tmp_names = itertools.count()

#: Rewrites (a new key changes the header) take at most this share of the time, however large the file.
_MAX_REWRITE_SHARE = 0.25


class CSVTable:
    """Appends rows to ``path``; the header is the sorted union of every key seen, as in Lightning's CSVLogger.

    :meth:`append` only queues the row (no lock, no I/O), so the training loop never waits on the disk.
    Rows whose keys fit the current header are appended by :meth:`write_ready` (a ``save()``) or by the
    background flusher within a quarter of a second. A new key means rewriting the whole file under a
    new header; that happens on the background thread at most once per ``rewrite_interval`` seconds
    (less often if rewriting the file takes long), however many new keys arrive meanwhile, and at once
    on a forced flush (``finalize``, exit, SIGTERM). So rows reach the disk within about a second.

    An existing file is never deleted: its header and rows are kept and new rows are appended. A write
    that fails keeps the data in memory, warns once and is retried on the next flush.

    Example:
        >>> import os, tempfile
        >>> table = CSVTable(os.path.join(tempfile.mkdtemp(), "metrics.csv"))
        >>> table.append({"loss": 0.5, "step": 0})
        >>> table.append({"acc": 0.9, "step": 1})
        >>> table.close()
        >>> open(table.path).read().splitlines()
        ['acc,loss,step', ',0.5,0', '0.9,,1']
    """

    def __init__(self, path: str, rewrite_interval: float = 0.75) -> None:
        self.path = path
        self.rewrite_interval = rewrite_interval
        self._rows: deque[Mapping[str, Any]] = deque()
        self._io_lock = _flushing.WriterLock()
        self._fd: int | None = None
        self._unwritten = b""  # the end of an append that failed halfway; it goes out before anything else
        _warn_if_cut_short(path)
        self._columns = self._read_header()
        self._column_set = set(self._columns)
        self._known = set(self._columns)
        self._last_rewrite = 0.0
        self._rewrite_seconds = 0.0
        self._failed_once = False
        self._closed = False
        self._pid = os.getpid()
        _flushing.register(self)

    @property
    def columns(self) -> list[str]:
        """The header the file has once everything queued is written."""
        return sorted(self._known) if len(self._known) != len(self._column_set) else list(self._columns)

    @property
    def pending(self) -> list[Mapping[str, Any]]:
        """The rows queued and not yet written, oldest first."""
        return list(self._rows)

    def append(self, row: Mapping[str, Any]) -> None:
        """Queue one row (a mapping of column to value). Safe to call from any thread and from signal handlers."""
        if not self._known.issuperset(row):
            # Keys are recorded before the row is queued, so a flusher that sees the row also sees its keys.
            self._known.update(row)
        self._rows.append(row)
        if self._closed:  # logging again after close(): flush in the background again
            self._closed = False
            _flushing.register(self)

    def write_ready(self) -> None:
        """Append the queued rows if they fit the current header; never rewrite, never wait for the flusher."""
        if not self._rows or not self._io_lock.acquire(blocking=False):
            return
        try:
            # Creating the file (no header yet) costs nothing; rewriting one with rows waits for the flusher.
            self._write(rewrite_due=not self._columns)
        finally:
            self._io_lock.release()

    def flush(self, force: bool = False) -> None:
        """Write the queued rows; a needed header rewrite waits for ``rewrite_interval`` unless ``force``."""
        with self._io_lock:
            self._write(rewrite_due=force or self._rewrite_due())

    def close(self) -> None:
        """Write everything (rewriting the header if needed), release the file and stop background flushing."""
        self.flush(force=True)
        with self._io_lock:
            self._close_fd()
            lost = len(self._rows) + (1 if self._unwritten else 0)
        _flushing.unregister(self)
        self._closed = True
        if lost:
            warn(
                f"{self.path} could not be written; the rows logged since the last successful write "
                f"({len(self._rows)} queued, plus any half-written one) are lost. Check free space and permissions."
            )

    def __del__(self) -> None:
        # A logger dropped without finalize() still gets its last rows written; a forked child's copy does not
        # write the parent's rows a second time.
        try:
            if not self._closed and self._pid == os.getpid():
                self.close()
        except Exception:
            pass

    # ---- internals (called with the I/O lock held) ---------------------------------------------------------

    def _rewrite_due(self) -> bool:
        wait = max(self.rewrite_interval, self._rewrite_seconds / _MAX_REWRITE_SHARE)
        return time.monotonic() - self._last_rewrite >= wait

    def _write(self, rewrite_due: bool) -> None:
        try:
            if self._unwritten:
                self._append_bytes(b"")
            count = len(self._rows)  # read before the keys: every one of these rows has its keys in _known
            if not count:
                return
            if len(self._known) == len(self._column_set):
                self._append_bytes(self._format(self._take(count), self._columns))
            elif rewrite_due:
                rows = self._take(count)
                try:
                    self._rewrite(sorted(self._known), rows)
                except BaseException:
                    self._rows.extendleft(reversed(rows))
                    raise
        except OSError as err:
            self._report(err)

    def _take(self, count: int) -> list[Mapping[str, Any]]:
        popleft = self._rows.popleft
        return [popleft() for _ in range(count)]

    @staticmethod
    def _format(rows: Iterable[Mapping[str, Any]], columns: list[str]) -> bytes:
        buffer = io.StringIO()
        # A missing key gives None, which csv writes as an empty field, as DictWriter's restval="" does.
        csv.writer(buffer).writerows(map(row.get, columns) for row in rows)
        return buffer.getvalue().encode("utf-8")

    def _open_fd(self) -> int:
        if self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                _end_with_newline(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _append_bytes(self, data: bytes) -> None:
        """Append ``data`` after whatever an earlier failed append left; keep what does not get written."""
        view = memoryview(self._unwritten + data)
        self._unwritten = b""
        try:
            fd = self._open_fd()
            while view:
                view = view[os.write(fd, view) :]
        finally:
            self._unwritten = bytes(view)

    def _rewrite(self, columns: list[str], rows: list[Mapping[str, Any]]) -> None:
        """Copy the existing rows under the new header into a temporary file, add ``rows``, swap it in."""
        started = time.monotonic()
        self._close_fd()  # the append descriptor would keep pointing at the replaced file
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{os.path.basename(self.path)}.{os.getpid()}.{next(_tmp_names)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
                if os.path.exists(self.path):
                    os.fchmod(fd, os.stat(self.path).st_mode & 0o777)
                writer = csv.writer(out)
                writer.writerow(columns)
                if os.path.exists(self.path):
                    with open(self.path, newline="", encoding="utf-8") as old:
                        reader = csv.reader(old)
                        old_columns = next((values for values in reader if values), [])
                        writer.writerows(
                            map(dict(zip(old_columns, values, strict=False)).get, columns)
                            for values in reader
                            if values
                        )
                writer.writerows(map(row.get, columns) for row in rows)
                out.flush()
                os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._columns = columns
        self._column_set = set(columns)
        self._last_rewrite = time.monotonic()
        self._rewrite_seconds = self._last_rewrite - started

    def _read_header(self) -> list[str]:
        try:
            with open(self.path, newline="", encoding="utf-8") as handle:
                return next((values for values in csv.reader(handle) if values), [])
        except FileNotFoundError:
            return []

    def _report(self, err: OSError) -> None:
        if self._failed_once:
            return
        self._failed_once = True
        warn(
            f"Could not write {self.path} ({err}). The rows not yet written are kept in memory and written at "
            "the next flush (tried several times a second); free space or fix permissions to let them through."
        )


def _end_with_newline(fd: int) -> None:
    """Finish a last line cut short (a process killed mid-write) so appended rows start on their own line."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) not in (b"\n", b"\r"):
        os.write(fd, b"\r\n")


def _warn_if_cut_short(path: str) -> None:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) in (b"\n", b"\r"):
                return
    except FileNotFoundError:
        return
    warn(
        f"The last line of {path} was cut short (a process stopped while writing it?); it is kept as it is "
        "and new rows start on the next line."
    )
