"""Reading a CSV table's file: lines across a failed append, rows compared by value, checks on resume."""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Iterable, Iterator

from tracklight._errors import warn
from tracklight._fs import open_no_follow


def joined(handle: io.TextIOWrapper, tail: str) -> Iterator[str]:
    """The lines of ``handle`` then of ``tail``, the first line of ``tail`` finishing the last one of ``handle``."""
    with handle:
        last = ""
        for line in handle:
            if last:
                yield last
            last = line
    yield from (last + tail).splitlines(keepends=True)


def records(handle: Iterable[str]) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV file's header, and its rows as their non-empty fields (so a wider header does not change a row)."""
    reader = csv.reader(handle)
    header = next((values for values in reader if values), [])
    rows = [{key: value for key, value in zip(header, values, strict=False) if value} for values in reader if values]
    return header, rows


def end_with_newline(fd: int) -> None:
    """Finish a last line cut short (a process killed mid-write) so appended rows start on their own line."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) not in (b"\n", b"\r"):
        os.write(fd, b"\r\n")


def not_utf8(path: str) -> str | None:
    """Where the file stops being UTF-8 text (``metrics.csv`` is written as UTF-8), or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with open(path, "rb", opener=open_no_follow) as handle:
            while chunk := handle.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as err:
                    return f"byte {offset + err.start} ({chunk[err.start : err.start + 1]!r}) is not UTF-8 text"
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return "it ends inside a UTF-8 character"
    return None


def warn_if_cut_short(path: str) -> None:
    try:
        with open(path, "rb", opener=open_no_follow) as handle:
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
