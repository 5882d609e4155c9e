"""TensorBoard event files for scalars, encoded by hand.

Building a protobuf object per scalar is what makes ``SummaryWriter.add_scalar`` slow. A scalar
event is a handful of bytes, so we write them directly: ``Event{wall_time, step, summary{value*}}``
with ``Summary.Value{tag, simple_value}``, framed as TFRecords (length, masked CRC32C, data, masked
CRC32C). TensorBoard's own reader (``EventAccumulator``) reads the result; the tests check that.

Encoding is pure (``encode_*``); :class:`EventFile` only moves the bytes to disk.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import re
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Any

from tracklight._errors import warn
from tracklight._fs import DeletionWatch, copy_open_file, open_no_follow, set_aside
from tracklight.formats import flushing as _flushing


def _crc32c(data: bytes) -> int:
    """CRC32C, found on first use so that importing this module needs neither ``crc32c`` nor TensorBoard
    (``tracklight.loggers`` imports it, and a bare install must import)."""
    global _crc32c
    try:  # the C implementation is ~100x faster than the pure-Python fallback
        from crc32c import crc32c as found
    except ImportError:  # only without the 'tensorboard' extra's crc32c
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c as found  # type: ignore[no-redef]
    _crc32c = found
    return int(found(data))


_pack_double = struct.Struct("<d").pack
_pack_float = struct.Struct("<f").pack
_pack_u64 = struct.Struct("<Q").pack
_pack_u32 = struct.Struct("<I").pack

_FLOAT32_MAX = 3.4028234663852886e38
#: Entries kept in each of the caches below before they start over.
_CACHE_LIMIT = 10_000
_tag_prefixes: dict[str, bytes] = {}
_header_crcs: dict[int, bytes] = {}


def varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative numbers as 64-bit two's complement (int64 fields)."""
    if 0 <= value < 0x80:
        return bytes((value,))
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data`` (the checksum TensorBoard's reader verifies)."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def to_float32(value: float) -> float:
    """``value`` as float32 stores it: numbers beyond float32's range become infinite, as in ``SummaryWriter``."""
    try:
        value = float(value)
    except OverflowError:  # an int beyond even float64's range
        return math.inf if value > 0 else -math.inf
    if abs(value) > _FLOAT32_MAX and not math.isinf(value):
        try:
            _pack_float(value)  # the values just above the maximum still round down to it
        except OverflowError:
            return math.copysign(math.inf, value)
    return value


def _value_prefix(tag: str) -> bytes:
    """Bytes of ``Summary.value`` up to the float: field 1 (Value, length), tag, simple_value key."""
    prefix = _tag_prefixes.get(tag)
    if prefix is None:
        if len(_tag_prefixes) >= _CACHE_LIMIT:  # a run that makes up new keys forever must not grow us forever
            _tag_prefixes.clear()
        tag_bytes = tag.encode("utf-8")
        inner = b"\x0a" + varint(len(tag_bytes)) + tag_bytes + b"\x15"
        prefix = _tag_prefixes[tag] = b"\x0a" + varint(len(inner) + 4) + inner
    return prefix


def encode_summary(scalars: Iterable[tuple[str, float]]) -> bytes:
    """The ``summary`` field (5) of an ``Event``: one ``Summary.Value{tag, simple_value}`` per ``(tag, value)``."""
    if not isinstance(scalars, (list, tuple)):
        scalars = list(scalars)  # read twice when a value needs the slow path
    try:
        summary = b"".join([_value_prefix(tag) + _pack_float(value) for tag, value in scalars])
    except (OverflowError, struct.error):  # beyond float32 (or even float64): stored as infinity
        summary = b"".join([_value_prefix(tag) + _pack_float(to_float32(value)) for tag, value in scalars])
    return b"\x2a" + varint(len(summary)) + summary


class SummaryLayout:
    """The ``summary`` field for a fixed sequence of tags, filled with one ``struct.pack`` per event.

    Logging the same keys step after step is the common case, so the tag bytes are laid out once and
    each event only packs its values between them.

    Example:
        >>> layout = SummaryLayout(["loss", "acc"])
        >>> layout.pack([0.5, 0.75]) == encode_summary([("loss", 0.5), ("acc", 0.75)])
        True
    """

    def __init__(self, tags: Sequence[str]) -> None:
        prefixes = [_value_prefix(tag) for tag in tags]
        self.tags = tuple(tags)
        size = sum(len(prefix) + 4 for prefix in prefixes)
        field = b"\x2a" + varint(size)
        self._struct = struct.Struct(f"<{len(field)}s" + "".join(f"{len(prefix)}sf" for prefix in prefixes))
        self._args: list[Any] = [field]
        for prefix in prefixes:
            self._args += (prefix, 0.0)

    def pack(self, values: Sequence[float]) -> bytes:
        """The field for ``values`` (one per tag, in order)."""
        args = self._args.copy()
        args[2::2] = values
        try:
            return self._struct.pack(*args)
        except (OverflowError, struct.error):
            args[2::2] = [to_float32(value) for value in values]
            return self._struct.pack(*args)


def encode_event(step: int, wall_time: float, summary_field: bytes) -> bytes:
    """An ``Event{wall_time, step, summary}`` around a field from :func:`encode_summary` or :class:`SummaryLayout`."""
    return b"\x09" + _pack_double(wall_time) + b"\x10" + varint(step) + summary_field


def encode_scalars(step: int, wall_time: float, scalars: Iterable[tuple[str, float]]) -> bytes:
    """One ``Event`` holding every ``(tag, value)`` pair as a ``simple_value`` (float32, like SummaryWriter)."""
    return encode_event(step, wall_time, encode_summary(scalars))


def encode_file_version(wall_time: float) -> bytes:
    """The first event of every file: ``file_version = "brain.Event:2"``."""
    version = b"brain.Event:2"
    return b"\x09" + _pack_double(wall_time) + b"\x1a" + varint(len(version)) + version


def encode_session_start(step: int, wall_time: float) -> bytes:
    """``Event{wall_time, step, session_log{status: START}}``: TensorBoard's readers drop the events of the run read
    before it whose step is ``step`` or more (what ``SummaryWriter(purge_step=...)`` writes)."""
    return b"\x09" + _pack_double(wall_time) + b"\x10" + varint(step) + b"\x3a\x02\x08\x01"


def frame(event: bytes) -> bytes:
    """A TFRecord: length, masked CRC of the length, data, masked CRC of the data."""
    size = len(event)
    header = _header_crcs.get(size)
    if header is None:
        if len(_header_crcs) >= _CACHE_LIMIT:
            _header_crcs.clear()
        length = _pack_u64(size)
        header = _header_crcs[size] = length + _pack_u32(masked_crc(length))
    return header + event + _pack_u32(masked_crc(event))


def event_file_name(directory: str) -> str:
    return os.path.join(
        directory, f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.tracklight"
    )


_STAMP = re.compile(r"tfevents\.(\d{10})")


def write_purge_file(directory: str, purge_step: int) -> str:
    """A small event file that makes TensorBoard drop what the files before it hold at ``purge_step`` or later.

    TensorBoard reads a folder's event files in name order, and a ``SessionLog.START`` event purges the steps from
    its own onwards among the events read so far. So the file must sort after every file already there and before
    every file this process writes next: its name carries a timestamp newer than theirs (waiting for the next
    second if one was made this second) and ``-`` where other names have a host name, which sorts first.
    """
    newest = max((int(found.group(1)) for name in os.listdir(directory) if (found := _STAMP.search(name))), default=0)
    wait = newest + 1 - time.time()
    if 0 < wait <= 2:  # a file of this very second (a restart within it): only a later second sorts after it
        time.sleep(wait)
    path, fd = _create(os.path.join(directory, f"events.out.tfevents.{int(time.time()):010d}.-resume.{os.getpid()}"))
    try:
        now = time.time()
        _append(fd, frame(encode_file_version(now)) + frame(encode_session_start(purge_step, now)))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


class EventFile:
    """Buffers framed scalar events and appends them to one event file, several times a second.

    Adding an event takes no lock (``deque.append`` is atomic), so neither a flush on the background
    thread nor a SIGTERM handler that flushes on the training thread can block or interrupt it half-way.
    The file is created on the first write and kept open until :meth:`close`; it is reopened in append
    mode after that, so a logger can go on after ``finalize`` (fit, then test, in one process). A file
    deleted (or whose folder is removed) while it is open is written again, whole, by the background
    flusher within about a second of the next write: the open descriptor still holds every event.

    With ``max_bytes``, a file that has grown past it is left as it is and the next events go to a new
    segment, named after the first file with ``.000001``, ``.000002``... appended (TensorBoard reads
    the event files of a folder in name order). A run folder mirrored to an object store, which cannot
    append, so re-uploads at most ``max_bytes`` of scalars at a time.

    Example:
        >>> import tempfile
        >>> events = EventFile(tempfile.mkdtemp())
        >>> events.add_scalars(1, [("loss", 0.5)])
        >>> events.close()
    """

    def __init__(self, directory: str, max_bytes: int | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.path: str | None = None
        self._first_path: str | None = None
        self._segment = 0
        self._size = 0
        self._fd: int | None = None
        self._queue: collections.deque[bytes] = collections.deque()
        #: Records taken from the queue whose write failed; they go first at the next flush.
        self._held: list[bytes] = []
        self._lock = _flushing.WriterLock()
        self._failed_once = False
        #: How many times the file was written again after it was deleted under us.
        self.restores = 0
        self._watch = DeletionWatch()
        self._pid = os.getpid()
        self._background = _flushing.Background(self)

    def add_scalars(self, step: int, scalars: Iterable[tuple[str, float]]) -> None:
        self.add_summary(step, encode_summary(scalars))

    def add_summary(self, step: int, summary_field: bytes) -> None:
        """Queue one event at ``step`` (the wall time is now) holding an already encoded ``summary`` field."""
        self._queue.append(frame(encode_event(step, time.time(), summary_field)))
        if self._background.resting:  # an event after close(): flush in the background again
            self._background.wake()

    def flush(self, force: bool = False, check: bool = True) -> None:
        """Append the queued events. ``check=False`` (the training thread's ``save()``) leaves noticing a file
        deleted under us, and copying it back, to the background flusher."""
        with self._lock:
            queue = self._queue
            if queue:
                popleft = queue.popleft
                self._held.extend([popleft() for _ in range(len(queue))])
            try:
                held = bool(self._held)  # events about to be written: look before they go into a deleted file
                if check and self._fd is not None and self.path and self._watch.lost(self._fd, self.path, force, held):
                    self._restore(self.path)
                if not self._held:
                    return
                data = b"".join(self._held)
                _append(self._open(), data)
            except OSError as err:
                self._report(err)
                return
            self._size += len(data)
            self._held.clear()
            if not force:  # a forced flush (close, exit) checked first and leaves the file as it should be
                self._watch.wrote()

    def close(self) -> None:
        """Write everything, close the file and stop background flushing (no thread left behind) until the
        next event, which goes to a new file."""
        self._background.rest()
        self.flush(force=True)
        with self._lock:
            self._close_fd()

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _open(self) -> int:
        """The descriptor to append to: the open file, or the file reopened after :meth:`close`, or a new
        one (the next segment once the file passed ``max_bytes``)."""
        if self._fd is not None:
            if self.max_bytes is None or self._size < self.max_bytes:
                return self._fd
            self._close_fd()
            self._segment += 1
            return self._new_file()
        if self.path is not None:
            try:
                self._fd = open_no_follow(self.path, os.O_RDWR | os.O_APPEND)
                return self._fd
            except FileNotFoundError:
                warn(
                    f"{self.path} was deleted after it was closed; the events it held are lost. New ones go to a "
                    "new file beside it."
                )
                self._segment += 1
        return self._new_file()

    def _new_file(self) -> int:
        """Create the first file (or the next segment), starting with its file-version record."""
        os.makedirs(self.directory, exist_ok=True)
        if self._first_path is None:
            path, fd = _create(event_file_name(self.directory))
            self._first_path = path
        else:
            path, fd = _create(f"{self._first_path}.{self._segment:06d}")
        header = frame(encode_file_version(time.time()))
        try:
            _append(fd, header)
        except BaseException:
            os.close(fd)
            raise
        self.path, self._fd, self._size = path, fd, len(header)
        return fd

    def _restore(self, path: str) -> None:
        """The open file was deleted, its folder removed or another file put at its path: write what the
        open file holds to a new file at the path (the other file is renamed aside, never deleted)."""
        assert self._fd is not None
        replaced = os.path.lexists(path)
        if replaced:
            kept = set_aside(path, "replaced")
        fd = copy_open_file(self._fd, path)
        os.close(self._fd)
        self._fd = fd
        self.restores += 1
        what = f"replaced by another file (renamed to {kept})" if replaced else "deleted (or its folder removed)"
        warn(
            f"TensorBoard event file {path} was {what} while the run was writing it. It was written again with "
            "every event so far, which tracklight still held open."
        )

    def _report(self, err: OSError) -> None:
        if not self._failed_once:
            self._failed_once = True
            warn(
                f"Could not write TensorBoard events to {self.directory} ({err}); {len(self._held)} event(s) "
                "are kept in memory and written at the next flush."
            )


def _create(name: str) -> tuple[str, int]:
    """A new file named ``name``, or ``name.1``, ``name.2``... when another writer of this process (a
    pickled copy of the logger) made one by that name in the same second."""
    number = 0
    while True:
        path = name if number == 0 else f"{name}.{number}"
        try:
            return path, open_no_follow(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            number += 1


def _append(fd: int, data: bytes) -> None:
    """Append ``data`` whole or not at all: TensorBoard stops reading a file at a torn record, so what a
    failed write (a full disk) left is cut off again before the records are retried."""
    start = os.lseek(fd, 0, os.SEEK_END)
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise
