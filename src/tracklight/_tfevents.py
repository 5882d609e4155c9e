"""TensorBoard event files for scalars, encoded by hand.

Building a protobuf object per scalar is what makes ``SummaryWriter.add_scalar`` slow. A scalar
event is a handful of bytes, so we write them directly: ``Event{wall_time, step, summary{value*}}``
with ``Summary.Value{tag, simple_value}``, framed as TFRecords (length, masked CRC32C, data, masked
CRC32C). TensorBoard's own reader (``EventAccumulator``) reads the result; the tests check that.

Encoding is pure (``encode_*``); :class:`EventFile` only moves the bytes to disk.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import warnings
from collections.abc import Iterable

from tracklight import _flushing
from tracklight._errors import TracklightWarning

try:  # the C implementation is ~100x faster than the pure-Python fallback
    from crc32c import crc32c as _crc32c
except ImportError:  # pragma: no cover - exercised only without the 'tensorboard' extra's crc32c
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c as _crc32c  # type: ignore[no-redef]

_pack_double = struct.Struct("<d").pack
_pack_float = struct.Struct("<f").pack
_pack_u64 = struct.Struct("<Q").pack
_pack_u32 = struct.Struct("<I").pack

_tag_prefixes: dict[str, bytes] = {}


def varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative numbers as 64-bit two's complement (int64 fields)."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _value_prefix(tag: str) -> bytes:
    """Bytes of ``Summary.value`` up to the float: field 1 (Value, length), tag, simple_value key."""
    prefix = _tag_prefixes.get(tag)
    if prefix is None:
        tag_bytes = tag.encode("utf-8")
        inner = b"\x0a" + varint(len(tag_bytes)) + tag_bytes + b"\x15"
        prefix = _tag_prefixes[tag] = b"\x0a" + varint(len(inner) + 4) + inner
    return prefix


def encode_scalars(step: int, wall_time: float, scalars: Iterable[tuple[str, float]]) -> bytes:
    """One ``Event`` holding every ``(tag, value)`` pair as a ``simple_value`` (float32, like SummaryWriter)."""
    summary = b"".join([_value_prefix(tag) + _pack_float(value) for tag, value in scalars])
    return b"\x09" + _pack_double(wall_time) + b"\x10" + varint(step) + b"\x2a" + varint(len(summary)) + summary


def encode_file_version(wall_time: float) -> bytes:
    """The first event of every file: ``file_version = "brain.Event:2"``."""
    version = b"brain.Event:2"
    return b"\x09" + _pack_double(wall_time) + b"\x1a" + varint(len(version)) + version


def frame(event: bytes) -> bytes:
    """A TFRecord: length, masked CRC of the length, data, masked CRC of the data."""
    length = _pack_u64(len(event))
    return length + _pack_u32(masked_crc(length)) + event + _pack_u32(masked_crc(event))


def event_file_name(directory: str) -> str:
    return os.path.join(
        directory, f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.tracklight"
    )


class EventFile:
    """Buffers framed scalar events and appends them to one event file, at least once a second.

    The file is created on the first write and reopened in append mode after :meth:`close`, so a
    logger can go on after ``finalize`` (fit, then test, in one process).
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path: str | None = None
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._failed_once = False
        _flushing.register(self)

    def add_scalars(self, step: int, scalars: Iterable[tuple[str, float]]) -> None:
        record = frame(encode_scalars(step, time.time(), scalars))
        with self._lock:
            self._pending.append(record)

    def flush(self, force: bool = False) -> None:
        with self._lock:
            if not self._pending:
                return
            data = b"".join(self._pending)
            path = self.path
            try:
                if path is None:
                    os.makedirs(self.directory, exist_ok=True)
                    path = event_file_name(self.directory)
                    data = frame(encode_file_version(time.time())) + data
                with open(path, "ab") as handle:
                    handle.write(data)
            except OSError as err:
                self._report(err)
                return
            self.path = path
            self._pending.clear()

    def close(self) -> None:
        self.flush(force=True)

    def _report(self, err: OSError) -> None:
        if not self._failed_once:
            self._failed_once = True
            warnings.warn(
                f"Could not write TensorBoard events to {self.directory} ({err}); {len(self._pending)} event(s) "
                "are kept in memory and written at the next flush.",
                TracklightWarning,
                stacklevel=3,
            )
