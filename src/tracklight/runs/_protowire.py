"""Just enough of protobuf's wire format to read the records of a W&B run file without the ``wandb`` package.

The ``cli`` extra must read every backend's runs (``tracklight ls`` on what the demo wrote), and W&B's record
classes live in ``wandb.proto``, which only a full ``wandb`` install brings (with a Go binary and a dozen
packages). The fields read here are few and have kept their numbers since W&B's format began, so decoding
them by number is smaller than a dependency; ``tests/test_runs_readers.py`` checks the result against
``wandb.proto``'s own parser.
"""

from __future__ import annotations

import struct

__all__ = ["Message", "WireError", "parse"]

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """Bytes that are not a protobuf message."""


class Message:
    """One decoded message: its fields by number, each a list of raw values (int for varints and fixed
    numbers, bytes for length-delimited fields), in the order they came."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[int, list[int | bytes]]) -> None:
        self.fields = fields

    def has(self, number: int) -> bool:
        return number in self.fields

    def _last(self, number: int) -> int | bytes | None:
        values = self.fields.get(number)
        return values[-1] if values else None

    def integer(self, number: int, signed: bool = True) -> int:
        """An int32/int64 field (two's complement), or 0 when absent."""
        value = self._last(number)
        if not isinstance(value, int):
            return 0
        return value - (1 << 64) if signed and value >= 1 << 63 else value

    def sint(self, number: int) -> int:
        """A zigzag-encoded sint32/sint64 field."""
        value = self.integer(number, signed=False)
        return (value >> 1) ^ -(value & 1)

    def double(self, number: int) -> float:
        value = self._last(number)
        return struct.unpack("<d", struct.pack("<Q", value))[0] if isinstance(value, int) else 0.0

    def text(self, number: int) -> str:
        value = self._last(number)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""

    def texts(self, number: int) -> list[str]:
        return [v.decode("utf-8", "replace") for v in self.fields.get(number, []) if isinstance(v, bytes)]

    def message(self, number: int) -> Message:
        value = self._last(number)
        return parse(value) if isinstance(value, bytes) else Message({})

    def messages(self, number: int) -> list[Message]:
        return [parse(v) for v in self.fields.get(number, []) if isinstance(v, bytes)]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("a varint runs past the end of the message")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def parse(data: bytes) -> Message:
    """Decode one message's fields (nested messages stay bytes until asked for).

    Raises:
        WireError: the bytes are cut short or use a wire type protobuf 3 does not write.
    """
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _BYTES:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise WireError(f"field {number} is longer than the message")
            value, pos = data[pos : pos + length], pos + length
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > len(data):
                raise WireError(f"field {number} is longer than the message")
            value, pos = int.from_bytes(data[pos : pos + size], "little"), pos + size
        else:
            raise WireError(f"field {number} has wire type {wire}, which protobuf 3 does not write")
        fields.setdefault(number, []).append(value)
    return Message(fields)
