"""Scalars out of TensorBoard event files, fast: TFRecord framing and the few protobuf fields scalars use.

An event file is a sequence of records (8-byte length, 4-byte CRC, payload, 4-byte CRC); each payload is an
``Event`` protobuf (wall_time=1 double, step=2 varint, summary=5) whose summary holds values (tag=1,
simple_value=2 float, image=4, tensor=8, metadata=9). Parsing a million records one by one in Python takes
seconds, so this module reads them in bulk:

1. Framing: runs of records whose lengths repeat with a short period (one record per step, or one per
   metric in turn, as torch's ``SummaryWriter`` writes them) are located with numpy in one go.
2. Decoding: records of equal length are stacked into a byte matrix; the first one is parsed field by field
   and becomes a template (which columns hold the wall time, the step and each float); every row whose
   other bytes equal the template's is decoded with numpy at once. Rows that differ get their own template,
   and records that are not plain scalar events (images, tensors, hparams, graphs) are parsed one by one.

Nothing here imports TensorBoard: the reader needs no extra to read scalars and images.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Decoded", "decode", "frames"]

_HEADER = 12  # length (8) + its CRC (4)
_FOOTER = 4
_MAX_TEMPLATES = 64  # per record length; past that, the rest are parsed one by one
_SCALAR_PLUGINS = {"scalars"}


class DamagedRecord(ValueError):
    """A record whose payload is not a well-formed Event; the message says where."""


# ---- framing ----------------------------------------------------------------------------------------------


def frames(data: bytes) -> tuple[np.ndarray, np.ndarray, bool]:
    """Payload offsets and lengths of every complete record, and whether the file ends in a cut-short one."""
    n = len(data)
    buf = np.frombuffer(data, dtype=np.uint8)
    starts: list[Any] = []
    lengths: list[Any] = []
    recent: list[int] = []
    pos = 0
    while pos + _HEADER <= n:
        length = int.from_bytes(data[pos : pos + 8], "little")
        if pos + _HEADER + length + _FOOTER > n:
            return _joined(starts), _joined(lengths), True
        starts.append(pos + _HEADER)
        lengths.append(length)
        pos += _HEADER + length + _FOOTER
        recent.append(length)
        if len(recent) > 8:
            del recent[0]
        for period in (1, 2, 3, 4):
            if len(recent) >= 2 * period and recent[-period:] == recent[-2 * period : -period]:
                pos = _bulk(buf, pos, recent[-period:], starts, lengths)
                break
    return _joined(starts), _joined(lengths), pos < n


def _bulk(buf: np.ndarray, pos: int, cycle: list[int], starts: list[Any], lengths: list[Any]) -> int:
    """From ``pos``, take as many whole repeats of ``cycle`` (record lengths) as the file holds."""
    offsets = np.cumsum([0] + [_HEADER + length + _FOOTER for length in cycle])
    stride = int(offsets[-1])
    expected = np.asarray(cycle, dtype=np.uint64)
    window = 64
    while True:
        available = (len(buf) - pos) // stride
        count = min(window, available)
        if count <= 0:
            return pos
        bases = pos + stride * np.arange(count)[:, None] + offsets[:-1][None, :]
        found = buf[bases[..., None] + np.arange(8)].copy().view("<u8")[..., 0]
        good = (found == expected).all(axis=1)
        whole = int(count if good.all() else np.argmin(good))
        if whole:
            starts.append((bases[:whole] + _HEADER).ravel())
            lengths.append(np.tile(expected, whole).astype(np.int64))
            pos += whole * stride
        if whole < count or count == available:
            return pos
        window *= 4


def _joined(parts: list[Any]) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.atleast_1d(np.asarray(part, dtype=np.int64)) for part in parts])


# ---- decoding ---------------------------------------------------------------------------------------------


@dataclass
class Decoded:
    """What the records of one file hold: scalar points per tag (with the record index, to keep file order),
    images, and the hyperparameters of TensorBoard's HPARAMS plugin (raw plugin content)."""

    scalars: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = field(default_factory=dict)
    images: list[tuple[str, int, float, bytes]] = field(default_factory=list)
    hparams_content: list[bytes] = field(default_factory=list)
    plugins: dict[str, str] = field(default_factory=dict)  # tag -> plugin, from the first value that said
    #: ``(record index, step)`` of each ``SessionLog.START``: TensorBoard drops the events read before it at that
    #: step or later (a restarted run's purge).
    purges: list[tuple[int, int]] = field(default_factory=list)

    def add(self, tag: str, order: Any, step: Any, wall: Any, value: Any) -> None:
        self.scalars.setdefault(tag, []).append(
            (np.atleast_1d(order), np.atleast_1d(step), np.atleast_1d(wall), np.atleast_1d(value))
        )


def decode(data: bytes, starts: np.ndarray, lengths: np.ndarray, decoded: Decoded | None = None) -> Decoded:
    """Decode every record; raises :class:`DamagedRecord` for a payload that is not an Event."""
    out = decoded or Decoded()
    buf = np.frombuffer(data, dtype=np.uint8)
    leftovers: list[int] = []
    for length in np.unique(lengths):
        members = np.flatnonzero(lengths == length)
        if len(members) < 16:
            leftovers.extend(members.tolist())
            continue
        for part, rows in _matrices(buf, starts[members], int(length)):
            leftovers.extend(_decode_rows(out, rows, members[part]))
    for index in sorted(leftovers):
        start = int(starts[index])
        _one(out, data, start, start + int(lengths[index]), index)
    return out


def _matrices(buf: np.ndarray, starts: np.ndarray, length: int) -> Any:
    """``(slice of starts, byte matrix)`` for records of one length: zero-copy strided views over runs of
    evenly spaced records (the usual case), else one gathered copy."""
    breaks = np.flatnonzero(np.diff(starts, 2)) + 1 if len(starts) > 2 else np.zeros(0, dtype=np.int64)
    if len(breaks) > 64:
        yield slice(None), buf[starts[:, None] + np.arange(length)]
        return
    edges = [0, *sorted(set((breaks + 1).tolist())), len(starts)]
    for begin, end in itertools.pairwise(edges):
        if end - begin == 0:
            continue
        stride = int(starts[begin + 1] - starts[begin]) if end - begin > 1 else length
        view = np.lib.stride_tricks.as_strided(
            buf[int(starts[begin]) :], shape=(end - begin, length), strides=(stride, 1), writeable=False
        )
        yield slice(begin, end), view


def _decode_rows(out: Decoded, rows: np.ndarray, order: np.ndarray) -> list[int]:
    """Decode the rows that fit a template (up to ``_MAX_TEMPLATES`` of them); returns the others' order."""
    leftovers: list[int] = []
    pending = np.ones(len(rows), dtype=bool)
    for _ in range(_MAX_TEMPLATES):
        if not pending.any():
            return leftovers
        first = int(np.argmax(pending))
        layout = _layout(bytes(rows[first]))
        if layout is None:  # not a plain scalar event: those are parsed one by one
            pending[first] = False
            leftovers.append(int(order[first]))
            continue
        match = pending.copy()
        for a, b in layout.fixed:
            match &= (rows[:, a:b] == rows[first, a:b]).all(axis=1)
        if layout.step_cols:
            head, last = layout.step_cols[0], layout.step_cols[-1]
            match &= (rows[:, head:last] >= 0x80).all(axis=1) & (rows[:, last] < 0x80)
        _take(out, rows[match], order[match], layout)
        pending &= ~match
    return leftovers + order[pending].tolist()


@dataclass
class _Layout:
    wall_col: int | None
    step_cols: list[int]
    floats: list[tuple[str, int]]  # (tag, column of the 4 bytes)
    fixed: list[tuple[int, int]]  # column ranges every row of the template has the same bytes in


def _layout(payload: bytes) -> _Layout | None:
    """Where a plain scalar event keeps its wall time, step and floats; None for any other event."""
    wall_col: int | None = None
    step_cols: list[int] = []
    floats: list[tuple[str, int]] = []
    variable: list[int] = []
    try:
        for number, wire, a, b in _fields(payload, 0, len(payload)):
            if number == 1 and wire == 1:
                wall_col = a
                variable.extend(range(a, a + 8))
            elif number == 2 and wire == 0:
                step_cols = list(range(b, a))  # _fields gives (end, start) for varints: see below
                variable.extend(step_cols)
            elif number == 5 and wire == 2:
                for value_number, value_wire, c, d in _fields(payload, a, b):
                    if value_number != 1 or value_wire != 2:
                        return None
                    tag, column = None, None
                    for item_number, item_wire, e, f in _fields(payload, c, d):
                        if item_number == 1 and item_wire == 2:
                            tag = payload[e:f].decode("utf-8", "replace")
                        elif item_number == 2 and item_wire == 5:
                            column = e
                        else:
                            return None
                    if tag is None or column is None:
                        return None
                    floats.append((tag, column))
                    variable.extend(range(column, column + 4))
            else:
                return None
    except (IndexError, ValueError):
        return None
    if not floats:
        return None
    mask = np.ones(len(payload), dtype=bool)
    mask[variable] = False
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return _Layout(wall_col, step_cols, floats, list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=False)))


def _take(out: Decoded, rows: np.ndarray, order: np.ndarray, layout: _Layout) -> None:
    if not len(rows):
        return
    if layout.wall_col is None:
        wall = np.zeros(len(rows))
    else:
        wall = np.ascontiguousarray(rows[:, layout.wall_col : layout.wall_col + 8]).view("<f8")[:, 0]
    step = np.zeros(len(rows), dtype=np.int64)
    for shift, column in enumerate(layout.step_cols):
        step |= (rows[:, column].astype(np.int64) & 0x7F) << (7 * shift)
    for tag, column in layout.floats:
        value = np.ascontiguousarray(rows[:, column : column + 4]).view("<f4")[:, 0].astype(np.float64)
        out.add(tag, order, step, wall, value)


def _one(out: Decoded, data: bytes, start: int, end: int, index: int) -> None:
    """Decode one record field by field (events that are not plain scalars, or the odd one out)."""
    wall, step, session_start = 0.0, 0, False
    values: list[tuple[int, int]] = []
    try:
        for number, wire, a, b in _fields(data, start, end):
            if number == 1 and wire == 1:
                wall = struct.unpack_from("<d", data, a)[0]
            elif number == 2 and wire == 0:
                step = _signed(_varint_at(data, b)[0])
            elif number == 5 and wire == 2:
                values.extend((c, d) for value_number, value_wire, c, d in _fields(data, a, b) if value_number == 1)
            elif number == 7 and wire == 2 and _is_session_start(data, a, b):
                session_start = True
        for c, d in values:
            _value(out, data, c, d, index, step, wall)
        if session_start:  # after the loop: the step may come after the session log in the record
            out.purges.append((index, step))
    except (IndexError, ValueError, struct.error) as err:
        raise DamagedRecord(f"the record at byte {start - _HEADER} is not a TensorBoard event ({err})") from err


def _is_session_start(data: bytes, start: int, end: int) -> bool:
    """Whether a ``SessionLog`` holds ``status: START`` (1)."""
    return any(
        number == 1 and wire == 0 and _varint_at(data, b)[0] == 1 for number, wire, a, b in _fields(data, start, end)
    )


def _value(out: Decoded, data: bytes, start: int, end: int, index: int, step: int, wall: float) -> None:
    tag, simple, tensor, plugin, content, image = "", None, None, None, b"", None
    for number, wire, a, b in _fields(data, start, end):
        if number == 1 and wire == 2:
            tag = data[a:b].decode("utf-8", "replace")
        elif number == 2 and wire == 5:
            simple = struct.unpack_from("<f", data, a)[0]
        elif number == 4 and wire == 2:
            image = _sub(data, a, b, 4)
        elif number == 8 and wire == 2:
            tensor = (a, b)
        elif number == 9 and wire == 2:
            plugin_data = _sub(data, a, b, 1)
            if plugin_data is not None:
                name = _sub(plugin_data, 0, len(plugin_data), 1)
                plugin = (name or b"").decode("utf-8", "replace")
                content = _sub(plugin_data, 0, len(plugin_data), 2) or b""
    if plugin is not None:
        out.plugins.setdefault(tag, plugin)
        if plugin == "hparams":
            out.hparams_content.append(content)
    if simple is not None:
        out.add(tag, index, step, wall, float(simple))
    elif tensor is not None and out.plugins.get(tag) in _SCALAR_PLUGINS:
        number_value = _tensor_scalar(data, *tensor)
        if number_value is not None:
            out.add(tag, index, step, wall, number_value)
    elif image is not None:
        out.images.append((tag, step, wall, image))


def _tensor_scalar(data: bytes, start: int, end: int) -> float | None:
    """The one number of a scalar ``TensorProto`` (float_val, double_val, int values or tensor_content)."""
    dtype = 1
    for number, wire, a, b in _fields(data, start, end):
        if number == 1 and wire == 0:
            dtype = _varint_at(data, b)[0]
        elif number == 4 and wire == 2 and b > a:
            code = {1: "<f", 2: "<d", 3: "<i", 9: "<q"}.get(dtype)
            return float(struct.unpack_from(code, data, a)[0]) if code else None
        elif (number == 5 and wire == 2 and b > a) or (number == 5 and wire == 5):
            return float(struct.unpack_from("<f", data, a)[0])
        elif (number == 6 and wire == 2 and b > a) or (number == 6 and wire == 1):
            return float(struct.unpack_from("<d", data, a)[0])
        elif number in (7, 10) and wire == 2 and b > a:
            return float(_signed(_varint_at(data, a)[0]))
    return None


def _sub(data: bytes, start: int, end: int, wanted: int) -> bytes | None:
    """The bytes of the length-delimited field ``wanted`` of the message in ``data[start:end]``."""
    for number, wire, a, b in _fields(data, start, end):
        if number == wanted and wire == 2:
            return bytes(data[a:b])
    return None


def _fields(data: bytes, start: int, end: int) -> Any:
    """Yield ``(field, wire type, a, b)``: for varints ``(end of the varint, start of the varint)`` (the value
    is read with :func:`_varint_at` from ``b``), for fixed 64/32-bit the offset in ``a``, for length-delimited
    the span ``a:b``."""
    pos = start
    while pos < end:
        key, pos = _varint_at(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            begin = pos
            _, pos = _varint_at(data, pos)
            yield number, wire, pos, begin
        elif wire == 1:
            yield number, wire, pos, pos + 8
            pos += 8
        elif wire == 2:
            size, pos = _varint_at(data, pos)
            if pos + size > end:
                raise ValueError(f"a field of {size} bytes runs past the end of its message")
            yield number, wire, pos, pos + size
            pos += size
        elif wire == 5:
            yield number, wire, pos, pos + 4
            pos += 4
        else:
            raise ValueError(f"wire type {wire} at byte {pos}")
    if pos != end:
        raise ValueError("a field runs past the end of its message")


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
