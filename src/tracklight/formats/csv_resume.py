"""Resuming a ``metrics.csv``: the rows an earlier process wrote past the step a run resumes from are moved aside.

A process killed after its last checkpoint has written rows for steps the resumed process logs again. Those rows
sit at the end of the file (steps grow as a run goes), so the file is read backwards from its end until a row at
or before the resume step, and only that tail is moved: resuming onto a file of millions of rows reads a few
kilobytes. The tail goes to a side file beside it (``metrics.superseded.csv``, under the same header) before the
table is cut, so nothing is ever lost, even if the process dies between the two.
"""

from __future__ import annotations

import csv
import os

from tracklight._errors import warn
from tracklight._fs import open_no_follow

__all__ = ["set_aside_rows_after"]

_FIRST_READ = 1 << 16


def set_aside_rows_after(path: str, last_step: int | None) -> tuple[str, int] | None:
    """Move the rows at the end of the CSV table ``path`` whose ``step`` is greater than ``last_step`` (every row
    when it is None) to a side file, warn once naming it, and return ``(side file, rows moved)``; None when there
    was nothing to move (no file, no ``step`` column, no such row).

    Rows out of step order before the last row at or before ``last_step`` stay where they are.
    """
    try:
        fd = open_no_follow(path, os.O_RDWR)
    except OSError:  # no file yet, or a link the table sets aside itself: nothing of ours to cut
        return None
    try:
        header = _first_line(fd)
        columns = next(csv.reader([header.decode("utf-8", "replace")]), [])
        if "step" not in columns:
            return None
        size = os.fstat(fd).st_size
        cut, rows = _cut(fd, len(header), size, columns.index("step"), last_step)
        if not rows:
            return None
        tail = os.pread(fd, size - cut, cut)
        side = _write_side_file(path, header if header.endswith(b"\n") else header + b"\r\n", tail)
        os.ftruncate(fd, cut)
        os.fsync(fd)
    finally:
        os.close(fd)
    after = "any step" if last_step is None else f"step {last_step}"
    warn(
        f"{path}: {rows} row(s) an earlier process wrote past {after} (where this run resumed) were moved to {side} "
        "(kept, not deleted); this run logs those steps again, so metrics.csv holds each step once."
    )
    return side, rows


def _first_line(fd: int) -> bytes:
    data = b""
    while True:
        chunk = os.pread(fd, _FIRST_READ, len(data))
        newline = chunk.find(b"\n")
        if newline >= 0 or not chunk:
            return data + (chunk[: newline + 1] if newline >= 0 else chunk)
        data += chunk


def _cut(fd: int, body: int, size: int, position: int, last_step: int | None) -> tuple[int, int]:
    """The offset where the rows to move start, and how many there are, reading backwards from the end."""
    span = _FIRST_READ
    while True:
        start = max(body, size - span)
        data = os.pread(fd, size - start, start)
        first = 0
        if start > body:  # the read began inside a line: that line is read again by a longer read, if needed
            first = data.find(b"\n") + 1
            if first == 0:
                span *= 4
                continue
        cut, rows, end = size, 0, len(data)
        while end > first:
            begin = data.rfind(b"\n", first, end - 1) + 1 or first
            line = data[begin:end]
            # A last line cut short (a process killed mid-write) may read as another step ("10" cut to "1"): moved.
            step = _step_of(line, position) if line.endswith(b"\n") else None
            if step is not None and last_step is not None and step <= last_step:
                return cut, rows
            cut, rows, end = start + begin, rows + 1, begin
        if start == body:
            return cut, rows
        span *= 4


def _step_of(line: bytes, position: int) -> float | None:
    """The step of one row (metric rows are numbers: no quoted fields), or None for a blank or damaged line."""
    fields = line.rstrip(b"\r\n").split(b",")
    if len(fields) <= position:
        return None
    try:
        return float(fields[position])
    except ValueError:
        return None


def _write_side_file(path: str, header: bytes, rows: bytes) -> str:
    stem, extension = os.path.splitext(path)
    number = 0
    while True:
        side = f"{stem}.superseded{extension}" if number == 0 else f"{stem}.superseded-{number}{extension}"
        try:
            fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            break
        except FileExistsError:
            number += 1
    try:
        data = header + rows + (b"" if rows.endswith(b"\n") else b"\r\n")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    return side
