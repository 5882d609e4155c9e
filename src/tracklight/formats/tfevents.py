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
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Any

from tracklight._errors import warn
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


class EventFile:
    """Buffers framed scalar events and appends them to one event file, several times a second.

    Adding an event takes no lock (``deque.append`` is atomic), so neither a flush on the background
    thread nor a SIGTERM handler that flushes on the training thread can block or interrupt it half-way.
    The file is created on the first write and reopened in append mode after :meth:`close`, so a
    logger can go on after ``finalize`` (fit, then test, in one process).

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
        self._queue: collections.deque[bytes] = collections.deque()
        #: Records taken from the queue whose write failed; they go first at the next flush.
        self._held: list[bytes] = []
        self._lock = _flushing.WriterLock()
        self._failed_once = False
        _flushing.register(self)

    def add_scalars(self, step: int, scalars: Iterable[tuple[str, float]]) -> None:
        self.add_summary(step, encode_summary(scalars))

    def add_summary(self, step: int, summary_field: bytes) -> None:
        """Queue one event at ``step`` (the wall time is now) holding an already encoded ``summary`` field."""
        self._queue.append(frame(encode_event(step, time.time(), summary_field)))

    def flush(self, force: bool = False) -> None:
        with self._lock:
            queue = self._queue
            if queue:
                popleft = queue.popleft
                self._held.extend([popleft() for _ in range(len(queue))])
            if not self._held:
                return
            data = b"".join(self._held)
            path = self.path
            segment = self._segment
            if path is not None and self.max_bytes is not None and self._size >= self.max_bytes:
                path, segment = None, segment + 1
            try:
                if path is None:
                    os.makedirs(self.directory, exist_ok=True)
                    if self._first_path is None:
                        self._first_path = event_file_name(self.directory)
                    path = self._first_path if segment == 0 else f"{self._first_path}.{segment:06d}"
                    data = frame(encode_file_version(time.time())) + data
                _append(path, data)
            except OSError as err:
                self._report(err)
                return
            self._size = (self._size if path == self.path else 0) + len(data)
            self.path, self._segment = path, segment
            self._held.clear()

    def close(self) -> None:
        self.flush(force=True)

    def _report(self, err: OSError) -> None:
        if not self._failed_once:
            self._failed_once = True
            warn(
                f"Could not write TensorBoard events to {self.directory} ({err}); {len(self._held)} event(s) "
                "are kept in memory and written at the next flush."
            )


def _append(path: str, data: bytes) -> None:
    """Append ``data`` whole or not at all: TensorBoard stops reading a file at a torn record, so what a
    failed write (a full disk) left is cut off again before the records are retried."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)
