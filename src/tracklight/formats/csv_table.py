"""A wide CSV table (one column per key, sorted) that grows new columns without rewriting on every flush."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tracklight._errors import warn
from tracklight._fs import DeletionWatch, folder_lock, open_no_follow, set_aside
from tracklight.formats import _csv_held
from tracklight.formats import flushing as _flushing
from tracklight.formats._csv_files import end_with_newline, joined, not_utf8, records, warn_if_cut_short
from tracklight.formats._csv_held import HeldRows

_tmp_names = itertools.count()

#: Rewrites (a new key changes the header) take at most this share of the time, however large the file.
_MAX_REWRITE_SHARE = 0.25
#: Rows kept in memory while no disk takes them (a full disk); rows logged beyond this are dropped and counted.
MAX_ROWS_IN_MEMORY = 100_000

#: The open tables of this process by path: a copy of a logger (``copy.deepcopy``, pickled and loaded in the same
#: process) writes through the same table, so its rows go into the file once and in order.
_open_tables: weakref.WeakValueDictionary[str, CSVTable] = weakref.WeakValueDictionary()
_open_lock = threading.Lock()


class CSVTable(HeldRows):
    """Appends rows to ``path``; the header is the sorted union of every key seen, as in Lightning's CSVLogger.

    :meth:`append` only queues the row (no lock, no I/O), so the training loop never waits on the disk.
    Rows whose keys fit the current header are appended by :meth:`write_ready` (a ``save()``) or by the
    background flusher within a quarter of a second. A new key means rewriting the whole file under a
    new header; that happens on the background thread at most once per ``rewrite_interval`` seconds
    (less often if rewriting the file takes long), however many new keys arrive meanwhile, and at once
    on a forced flush (``finalize``, exit, SIGTERM). So rows reach the disk within about a second.

    An existing file is never deleted: its header and rows are kept and new rows are appended. A write
    that fails keeps the rows in memory (at most :data:`MAX_ROWS_IN_MEMORY`; later rows are dropped and
    counted), warns once and is retried on every flush; what is still held (and what was dropped) is said
    with the numbers at :meth:`rest` (``finalize``) and at exit. :meth:`held` and :meth:`snapshot` let an
    uploader (an object-store run) take the rows no disk holds straight from memory.

    A process forked from the one that made the table (a ``DataLoader`` worker) writes each of its rows at
    once (it may end with ``os._exit``, which runs no exit hook) and never writes the parent's queued rows.

    What the file may meet, and what the table does (each with a warning naming the paths):

    * it is deleted, or its folder removed, while the run writes it: the table keeps the file open, so
      within about a second of the next write the background flusher copies everything the open file
      holds into a new one at the same path;
    * another file is put in its place: one that holds every row the table wrote (another table on the same
      path, such as a pickled copy's, widened the header) is taken over and appended to, silently; any other
      is renamed aside and the table's own file written again at the path;
    * it is not UTF-8 text when a run resumes onto it: it is renamed aside and a fresh file started;
    * it is a symbolic link: the link is never followed; it is renamed aside and a regular file started.

    Example:
        >>> import os, tempfile
        >>> table = CSVTable(os.path.join(tempfile.mkdtemp(), "metrics.csv"))
        >>> table.append({"loss": 0.5, "step": 0})
        >>> table.append({"acc": 0.9, "step": 1})
        >>> table.close()
        >>> open(table.path).read().splitlines()
        ['acc,loss,step', ',0.5,0', '0.9,,1']
    """

    @classmethod
    def shared(cls, path: str) -> CSVTable:
        """The table this process has open on ``path``, or a new one: copies of a logger share it."""
        key = os.path.abspath(path)
        with _open_lock:
            table = _open_tables.get(key)
            if table is None or table._pid != os.getpid():
                table = _open_tables[key] = cls(path)
            return table

    def __init__(self, path: str, rewrite_interval: float = 0.75) -> None:
        self.path = path
        self.rewrite_interval = rewrite_interval
        self._rows: deque[Mapping[str, Any]] = deque()
        self._io_lock = _flushing.WriterLock()
        self._fd: int | None = None
        self._unwritten = b""  # the end of an append that failed halfway; it goes out before anything else
        #: How many times the file was written again after it was deleted or replaced under us.
        self.restores = 0
        self._watch = DeletionWatch()
        self._columns = self._adopt_existing()
        self._column_set = set(self._columns)
        self._known = set(self._columns)
        self._last_rewrite = 0.0
        self._rewrite_seconds = 0.0
        self._failed_once = False
        self._closed = False
        self._pid = os.getpid()
        self._write_through = False  # a forked child's copy: each row is written at once
        #: Rows refused because MAX_ROWS_IN_MEMORY rows were already held while no disk took them.
        self.dropped = 0
        self.max_rows_in_memory = MAX_ROWS_IN_MEMORY
        self._failing: str | None = None  # the last write error, while writes fail
        self._unwritten_rows = 0
        self._appended = 0
        self._said: tuple[str, int, int] | None = None  # (when, held, dropped) last reported
        #: Set by an uploader (see :meth:`stored`): where the held rows are kept and the state it took.
        self.stored_at: tuple[str, tuple[int, int, int]] | None = None
        self._background = _flushing.Background(self)
        _csv_held.track(self)

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
        if self._failing is not None and len(self._rows) + self._unwritten_rows >= self.max_rows_in_memory:
            self.dropped += 1  # no disk takes rows and memory holds its share: counted, said at finalize and exit
            return
        if not self._known.issuperset(row):
            # Keys are recorded before the row is queued, so a flusher that sees the row also sees its keys.
            self._known.update(row)
        self._rows.append(row)
        self._appended += 1
        if self._write_through:
            self.flush(force=True)
        elif self._background.resting:  # logging again after rest() or close(): flush in the background again
            self._closed = False
            self._background.wake()

    def write_ready(self) -> None:
        """Append the queued rows if they fit the current header; never rewrite, never wait for the flusher."""
        if not self._rows or not self._io_lock.acquire(blocking=False):
            return
        try:
            # Creating the file (no header yet) costs nothing; rewriting one with rows waits for the flusher,
            # and so does writing again a file deleted under us.
            self._write(rewrite_due=not self._columns, check=False)
        finally:
            self._io_lock.release()

    def flush(self, force: bool = False) -> None:
        """Write the queued rows; a needed header rewrite waits for ``rewrite_interval`` unless ``force``."""
        with self._io_lock:
            self._write(rewrite_due=force or self._rewrite_due(), force=force)

    def rest(self, report: bool = True) -> None:
        """Write everything and stop background flushing until the next row (``finalize``: no thread left
        behind, while the file stays open for a later ``test`` or ``validate``). Rows still held in memory (a full
        disk) keep being retried in the background; they and the rows dropped are said with their numbers."""
        self._background.rest()
        self.flush(force=True)  # after resting: a row appended meanwhile is written here or wakes it again
        if self.held_rows():
            self._background.wake()  # retried several times a second while the process lives
        if report:  # else the caller reports, once an uploader took what it could
            self.report("finalize")

    def close(self) -> None:
        """Write everything (rewriting the header if needed), release the file and stop background flushing."""
        self.rest()
        self._background.rest()  # nothing is retried after close (until the next row)
        with self._io_lock:
            self._close_fd()
        self._closed = True
        self.report("close")

    # ---- rows no disk takes --------------------------------------------------------------------------------

    def snapshot(self) -> tuple[tuple[int, int, int] | None, bytes]:
        """The whole file as it would be with every held row written: what an uploader sends in its place."""
        with self._io_lock:
            token = self.held()
            buffer = io.StringIO(newline="")
            self._write_all(buffer, self.columns, list(self._rows))
            return token, buffer.getvalue().encode("utf-8")

    def __del__(self) -> None:
        # A logger dropped without finalize() still gets its last rows written; a forked child's copy does not
        # write the parent's rows a second time.
        try:
            if not self._closed and self._pid == os.getpid() and not _csv_held.exited():
                self.close()
        except Exception:
            pass

    # ---- internals (called with the I/O lock held) ---------------------------------------------------------

    def _rewrite_due(self) -> bool:
        wait = max(self.rewrite_interval, self._rewrite_seconds / _MAX_REWRITE_SHARE)
        return time.monotonic() - self._last_rewrite >= wait

    def _write(self, rewrite_due: bool, force: bool = False, check: bool = True) -> None:
        # Other processes may write this file too (a forked DataLoader worker, a logger pickled to a spawned
        # process): checking which file is at the path and writing or replacing it is one step for all of them.
        with folder_lock(self.path):
            self._write_locked(rewrite_due, force, check)

    def _write_locked(self, rewrite_due: bool, force: bool, check: bool) -> None:
        try:
            count = len(self._rows)  # read before the keys: every one of these rows has its keys in _known
            lost = check and self._fd is not None and self._watch.lost(self._fd, self.path, force, writing=count > 0)
            if lost and not self._adopt_replacement():
                self._restore(self._take(count))
                count = -1
            elif lost:  # continued with the file another writer put there: our rows it lacks were queued again
                count = len(self._rows)
            if count < 0:
                pass
            elif not count:
                if not self._unwritten:
                    return
                self._append_bytes(b"")
            elif len(self._known) == len(self._column_set):
                # After whatever an earlier failed write left; if this one fails too, the rows wait as bytes
                # (a tenth of the memory of the rows themselves).
                self._append_bytes(self._format(self._take(count), self._columns))
            elif rewrite_due:
                rows = self._take(count)
                try:
                    self._rewrite(sorted(self._known), rows)
                except BaseException:
                    self._rows.extendleft(reversed(rows))
                    raise
            else:
                if self._unwritten:
                    self._append_bytes(b"")
                return
            if not force:  # a forced flush (finalize, exit) checked first and leaves the file as it should be
                self._watch.wrote()
            self._failing = None
        except OSError as err:
            self._failing = f"{type(err).__name__}: {err}"
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
            fd = self._open_no_link(os.O_RDWR | os.O_APPEND | os.O_CREAT)
            try:
                if self._columns and not os.fstat(fd).st_size:
                    self._start_again(fd)
                end_with_newline(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def _open_no_link(self, flags: int) -> int:
        """Open the file, never through a symbolic link: one put in its place is renamed aside first."""
        try:
            return open_no_follow(self.path, flags)
        except OSError as err:
            if not os.path.islink(self.path):
                raise
            self._set_aside("link", f"was replaced by a symbolic link ({err.strerror})")
            return open_no_follow(self.path, flags)

    def _start_again(self, fd: int) -> None:
        """The file vanished while the table held no descriptor of it: what it held is gone; say so and
        start it again under the current header."""
        os.write(fd, self._format([dict(zip(self._columns, self._columns, strict=True))], self._columns))
        warn(
            f"{self.path} was deleted after the table last wrote it; the rows it held before are lost. "
            "It was started again with the header and the new rows."
        )

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
            self._unwritten_rows = self._unwritten.count(b"\n")

    def _rewrite(self, columns: list[str], rows: list[Mapping[str, Any]]) -> int:
        """Copy the existing rows under the new header into a temporary file, add ``rows``, swap it in.

        The old rows are read through the table's open descriptor when it has one (so they are found even
        if the file was deleted meanwhile), and the new file stays open for the next appends. Returns how
        many rows the file holds.
        """
        started = time.monotonic()
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{os.path.basename(self.path)}.{os.getpid()}.{next(_tmp_names)}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8", closefd=False) as out:
                with contextlib.suppress(OSError):  # keep the mode the file had
                    mode = os.fstat(self._fd).st_mode if self._fd is not None else os.stat(self.path).st_mode
                    os.fchmod(fd, mode & 0o777)
                columns, total = self._write_all(out, columns, rows)
                out.flush()
                os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._close_fd()
        self._fd = fd
        self._unwritten, self._unwritten_rows = b"", 0  # the rows a failed append left are in the new file
        self._columns = columns
        self._column_set = set(columns)
        self._last_rewrite = time.monotonic()
        self._rewrite_seconds = self._last_rewrite - started
        return total

    def _write_all(self, out: Any, columns: list[str], rows: list[Mapping[str, Any]]) -> tuple[list[str], int]:
        """Write to ``out`` the header, the file's rows and ``rows``; the header used (``columns`` widened by any
        column another writer of the file added) and how many rows were written."""
        lines = self._old_lines()
        reader = csv.reader(lines if lines is not None else ())
        old_columns = next((values for values in reader if values), [])
        if not self._known.issuperset(old_columns):
            self._known.update(old_columns)
            columns = sorted(self._known)
        writer = csv.writer(out)
        writer.writerow(columns)
        total = len(rows)
        for values in reader:
            if values:
                writer.writerow(map(dict(zip(old_columns, values, strict=False)).get, columns))
                total += 1
        writer.writerows(map(row.get, columns) for row in rows)
        return columns, total

    def _old_lines(self) -> Iterator[str] | None:
        """The file's lines followed by what a failed append left unwritten (its first part may finish the
        file's last line), or None when there is neither."""
        old = self._old_rows()
        tail = self._unwritten.decode("utf-8", errors="replace")
        if old is None:
            return iter(tail.splitlines(keepends=True)) if tail else None
        return joined(old, tail)

    def _old_rows(self) -> io.TextIOWrapper | None:
        """The existing file for reading (through the open descriptor when there is one), or None."""
        if self._fd is not None:
            old = open(os.dup(self._fd), newline="", encoding="utf-8", errors="replace")
            old.seek(0)
            return old
        try:
            return open(self.path, newline="", encoding="utf-8", errors="replace", opener=open_no_follow)
        except FileNotFoundError:
            return None

    def _adopt_replacement(self) -> bool:
        """The file at the path is no longer the one open: continue with it if it holds every column and row the
        open one holds, in order (another writer of this table, such as a pickled copy of the logger, widened the
        header; or a copy was moved into place); whether it was adopted."""
        try:
            with open(self.path, newline="", encoding="utf-8", errors="replace", opener=open_no_follow) as handle:
                there = records(handle)
        except OSError:  # deleted, a link, unreadable: not a file to continue
            return False
        lines = self._old_lines()
        assert lines is not None  # read through the open descriptor
        here = records(lines)
        remaining = iter(there[1])
        matched = 0
        for row in here[1]:  # the longest start of our rows that is a subsequence (`in` consumes the iterator)
            if row not in remaining:
                break
            matched += 1
        if here[1] and not matched:
            return False  # not a continuation of our file: someone else's file
        # Another writer of this file (a forked or spawned copy of the logger) rewrote it from what it held then:
        # our rows written after that go in again, after the rows queued before.
        self._rows.extendleft(reversed(here[1][matched:]))
        self._close_fd()
        self._unwritten, self._unwritten_rows = b"", 0
        self._columns = there[0]
        self._column_set = set(there[0])
        self._known.update(there[0])
        for row in here[1][matched:]:
            self._known.update(row)
        return True

    def _restore(self, rows: list[Mapping[str, Any]]) -> None:
        """The file was deleted (or its folder removed, or another file put in its place) while the table
        held it open: write everything the open file holds, and ``rows``, to a new file at its path."""
        try:
            replaced = os.path.lexists(self.path)
            if replaced:
                self._set_aside("replaced", "was replaced by another file while the run was writing it")
            total = self._rewrite(sorted(self._known), rows)
        except BaseException:
            self._rows.extendleft(reversed(rows))
            raise
        self.restores += 1
        if not replaced:
            warn(
                f"{self.path} was deleted (or its folder removed) while the run was writing it. It was written "
                f"again with every row logged so far ({total} rows), which tracklight still held open."
            )

    def _set_aside(self, label: str, why: str) -> None:
        kept = set_aside(self.path, label)
        warn(f"{self.path} {why}; it was renamed to {kept} (nothing deleted) and tracklight writes its own file.")

    def _adopt_existing(self) -> list[str]:
        """The header of a file a resumed run finds, after putting aside one that cannot be appended to."""
        if os.path.islink(self.path):
            self._set_aside("link", f"is a symbolic link (to {os.readlink(self.path)}), which is never followed")
            return []
        problem = not_utf8(self.path)
        if problem:
            self._set_aside("damaged", f"cannot be resumed: {problem}")
            return []
        warn_if_cut_short(self.path)
        return self._read_header()

    def _read_header(self) -> list[str]:
        try:
            with open(self.path, newline="", encoding="utf-8", opener=open_no_follow) as handle:
                return next((values for values in csv.reader(handle) if values), [])
        except FileNotFoundError:
            return []

    def _forked(self) -> None:
        """In a forked child: the parent writes its own queued rows; this copy writes each of its rows at once."""
        self._rows = deque()
        self._unwritten, self._unwritten_rows = b"", 0
        self._io_lock = _flushing.WriterLock()  # the parent's flusher may have held it at the fork
        self._background.forked()
        self._pid = os.getpid()
        self._write_through = True
        self._said = None


def _reset_open_lock() -> None:
    global _open_lock
    _open_lock = threading.Lock()


_csv_held.at_fork_in_child(_reset_open_lock)
