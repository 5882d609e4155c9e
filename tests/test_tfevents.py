"""The hand-written TensorBoard encoders, checked against TensorBoard's own protobufs and readers.

``tracklight.formats.tfevents`` writes ``Event`` protobufs and TFRecord frames byte by byte; here every
piece is parsed by ``tensorboard.compat.proto``, read back by TensorBoard's record readers and
compared with what ``torch.utils.tensorboard.SummaryWriter`` stores for the same values.
"""

from __future__ import annotations

import glob
import math
import os
import random
import struct
import threading
import time
import warnings

import pytest
from tensorboard.backend.event_processing import event_file_loader, io_wrapper
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

from tracklight._errors import TracklightWarning
from tracklight.formats import tfevents as _tfevents
from tracklight.formats.tfevents import (
    EventFile,
    SummaryLayout,
    encode_event,
    encode_file_version,
    encode_scalars,
    encode_summary,
    event_file_name,
    frame,
    masked_crc,
    to_float32,
)

STEPS = [0, 1, 127, 128, 300, 2**31, 2**53 + 1, 2**63 - 1, -1, -128, -(2**63)]

# Values whose float32 form is worth checking: rounding, subnormals, the edges of float32's range, specials.
AWKWARD_VALUES = [
    0.0,
    -0.0,
    0.1,
    1 / 3,
    -2.5e-7,
    1e-40,  # subnormal in float32
    1e-46,  # underflows to 0
    3.4028234663852886e38,  # float32 max
    3.40282356e38,  # above the max but rounds down to it
    3.5e38,  # rounds to infinity
    1e39,
    -1e39,
    1e300,
    math.inf,
    -math.inf,
    math.nan,
    7,
    -(2**31),
    2**53 + 1,
    2**64,
    10**40,  # an int beyond float32's range
]
# SummaryWriter raises on an int beyond float64's range; tracklight stores infinity (checked on its own below).
BEYOND_FLOAT64 = [10**400, -(10**400)]


def _bits(value: float) -> bytes:
    """float32 bit pattern, so NaN compares equal to NaN and -0.0 differs from 0.0."""
    return struct.pack("<f", value)


def _events(path: str) -> list[event_pb2.Event]:
    return list(event_file_loader.LegacyEventFileLoader(path).Load())


def _only_file(directory: str) -> str:
    (path,) = glob.glob(os.path.join(directory, "events.out.tfevents.*"))
    return path


# ---- Event encoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_encode_scalars_parses_as_an_event(step: int) -> None:
    wall_time = 1_700_000_000.123456789
    event = event_pb2.Event.FromString(encode_scalars(step, wall_time, [("loss", 0.5), ("acc", 0.25)]))

    assert event.step == step
    assert event.wall_time == wall_time
    assert [(value.tag, value.simple_value) for value in event.summary.value] == [("loss", 0.5), ("acc", 0.25)]
    assert all(value.WhichOneof("value") == "simple_value" for value in event.summary.value)


@pytest.mark.parametrize("step", [s for s in STEPS if s != 0])
def test_encode_scalars_is_byte_identical_to_protobuf(step: int) -> None:
    # protobuf writes fields in number order and omits only a zero step, so every other event must match exactly
    scalars = [("train/loss", 0.125), ("val/acc", 0.75), ("x", 0.0)]
    expected = event_pb2.Event(
        wall_time=123.5,
        step=step,
        summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in scalars]),
    ).SerializeToString()

    assert encode_scalars(step, 123.5, scalars) == expected


@pytest.mark.parametrize(
    "tag",
    ["損失/λ", "emoji/🚀", "with space/and-dash", "a" * 127, "b" * 128, "c" * 5000, "é" * 100],
    ids=["cjk-greek", "emoji", "punctuation", "len127", "len128", "len5000", "multibyte200"],
)
def test_tags_of_any_length_and_script_round_trip(tag: str) -> None:
    event = event_pb2.Event.FromString(encode_scalars(3, 1.0, [(tag, 2.0)]))

    assert event.summary.value[0].tag == tag
    assert event.summary.value[0].simple_value == 2.0


def test_many_values_in_one_event() -> None:
    scalars = [(f"metric/{i}", i * 0.5) for i in range(2000)]
    event = event_pb2.Event.FromString(encode_scalars(9, 1.0, scalars))

    assert [(value.tag, value.simple_value) for value in event.summary.value] == scalars


def test_an_empty_summary_is_still_a_valid_event() -> None:
    event = event_pb2.Event.FromString(encode_scalars(4, 2.0, []))

    assert event.step == 4
    assert event.HasField("summary")
    assert len(event.summary.value) == 0


def test_file_version_event() -> None:
    event = event_pb2.Event.FromString(encode_file_version(55.25))

    assert event.file_version == "brain.Event:2"
    assert event.wall_time == 55.25
    assert event.step == 0


def test_float32_values_equal_what_summary_writer_stores(tmp_path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path / "torch"))
    for step, value in enumerate(AWKWARD_VALUES):
        writer.add_scalar("v", value, step)
    writer.close()
    theirs = [event.summary.value[0].simple_value for event in _events(_only_file(str(tmp_path / "torch")))[1:]]

    ours_generic = [
        event_pb2.Event.FromString(encode_scalars(step, 1.0, [("v", value)])).summary.value[0].simple_value
        for step, value in enumerate(AWKWARD_VALUES)
    ]
    layout = SummaryLayout(["v"])
    ours_layout = [
        event_pb2.Event.FromString(encode_event(step, 1.0, layout.pack([value]))).summary.value[0].simple_value
        for step, value in enumerate(AWKWARD_VALUES)
    ]

    assert len(theirs) == len(AWKWARD_VALUES)
    assert [_bits(v) for v in ours_generic] == [_bits(v) for v in theirs]
    assert [_bits(v) for v in ours_layout] == [_bits(v) for v in theirs]


@pytest.mark.parametrize("value", AWKWARD_VALUES + BEYOND_FLOAT64, ids=lambda v: repr(v)[:24])
def test_to_float32_agrees_with_protobuf(value: float) -> None:
    try:
        expected = summary_pb2.Summary.Value(simple_value=value).simple_value
    except (OverflowError, TypeError, ValueError):  # protobuf refuses ints beyond float64; we store infinity
        expected = math.inf if value > 0 else -math.inf
    assert _bits(to_float32(value)) == _bits(expected)


# ---- SummaryLayout: the hot path ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [[0.5, 0.25, -1.0], [1, 2, 3], [math.nan, math.inf, -0.0], [1e39, -1e40, 10**40], [3.4e38, 1e-45, 2**64]],
    ids=["floats", "ints", "specials", "overflow", "edges"],
)
def test_summary_layout_matches_the_generic_encoder(values: list[float]) -> None:
    tags = ["train/loss", "损失", "x" * 200]
    layout = SummaryLayout(tags)

    assert layout.tags == tuple(tags)
    assert layout.pack(values) == encode_summary(list(zip(tags, values, strict=True)))
    event = event_pb2.Event.FromString(encode_event(12, 3.0, layout.pack(values)))
    assert [value.tag for value in event.summary.value] == tags


def test_summary_layout_is_reusable_and_independent_between_calls() -> None:
    layout = SummaryLayout(["a", "b"])
    first = layout.pack([1.0, 2.0])
    second = layout.pack([3.0, 4.0])

    assert layout.pack([1.0, 2.0]) == first
    assert event_pb2.Event.FromString(encode_event(1, 1.0, second)).summary.value[1].simple_value == 4.0


def test_summary_layout_with_no_tags() -> None:
    assert SummaryLayout([]).pack([]) == encode_summary([])


# ---- TFRecord framing and checksums -------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 100, 4096, 100_000])
def test_masked_crc_equals_tensorboards(size: int) -> None:
    data = random.Random(size).randbytes(size)

    assert masked_crc(data) == masked_crc32c(data)


def test_frame_layout() -> None:
    event = encode_scalars(5, 1.0, [("a", 1.0)])
    record = frame(event)

    (length,) = struct.unpack("<Q", record[:8])
    assert length == len(event)
    assert struct.unpack("<I", record[8:12])[0] == masked_crc32c(record[:8])
    assert record[12 : 12 + length] == event
    assert struct.unpack("<I", record[12 + length :])[0] == masked_crc32c(event)


def test_framed_records_are_read_back_by_tensorboards_reader(tmp_path) -> None:
    events = [encode_file_version(1.0)] + [
        encode_scalars(step, 1.0 + step, [(f"tag{step % 3}", step / 7)]) for step in range(300)
    ]
    # records of very different sizes, so the cached length headers are exercised too
    events.append(encode_scalars(301, 2.0, [(f"big/{i}", float(i)) for i in range(500)]))
    path = tmp_path / "events.out.tfevents.test"
    path.write_bytes(b"".join(frame(event) for event in events))

    assert list(event_file_loader.RawEventFileLoader(str(path)).Load()) == events
    parsed = _events(str(path))
    assert parsed[0].file_version == "brain.Event:2"
    assert [event.step for event in parsed[1:]] == [*range(300), 301]


def test_tensorboards_reader_checks_our_checksums(tmp_path) -> None:
    # A reader that ignored the CRCs would make the test above meaningless: corrupt one and it must stop there.
    records = [frame(encode_scalars(step, 1.0, [("a", float(step))])) for step in range(3)]
    corrupted = bytearray(records[1])
    corrupted[-1] ^= 0xFF
    path = tmp_path / "events.out.tfevents.corrupt"
    path.write_bytes(records[0] + bytes(corrupted) + records[2])

    assert [event.step for event in _events(str(path))] == [0]


def test_event_file_name_is_one_tensorboard_picks_up(tmp_path) -> None:
    path = event_file_name(str(tmp_path))

    assert os.path.dirname(path) == str(tmp_path)
    assert io_wrapper.IsSummaryEventsFile(path)
    assert os.path.basename(path).startswith("events.out.tfevents.")


# ---- EventFile: moving the bytes ----------------------------------------------------------------------


def test_event_file_writes_a_file_tensorboard_reads(tmp_path) -> None:
    directory = str(tmp_path / "run")
    events = EventFile(directory)
    before = time.time()
    for step in range(50):
        events.add_scalars(step, [("loss", 1.0 / (step + 1)), ("lr", 0.01)])
    events.close()
    after = time.time()

    parsed = _events(_only_file(directory))
    assert parsed[0].file_version == "brain.Event:2"
    assert [event.step for event in parsed[1:]] == list(range(50))
    assert all(before <= event.wall_time <= after for event in parsed[1:])
    accumulator = EventAccumulator(directory)
    accumulator.Reload()
    assert [(s.step, s.value) for s in accumulator.Scalars("loss")] == [
        (step, to_float32_value(1.0 / (step + 1))) for step in range(50)
    ]


def to_float32_value(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def test_event_file_goes_on_after_close_in_the_same_file(tmp_path) -> None:
    events = EventFile(str(tmp_path))
    events.add_scalars(1, [("a", 1.0)])
    events.close()
    first_path = events.path
    events.add_scalars(2, [("a", 2.0)])
    events.close()

    assert events.path == first_path
    parsed = _events(_only_file(str(tmp_path)))
    assert [event.file_version for event in parsed].count("brain.Event:2") == 1
    assert [event.step for event in parsed[1:]] == [1, 2]


def test_close_without_events_creates_nothing(tmp_path) -> None:
    EventFile(str(tmp_path / "never")).close()

    assert not (tmp_path / "never").exists()


def test_events_reach_the_disk_without_an_explicit_flush(tmp_path) -> None:
    events = EventFile(str(tmp_path))
    events.add_scalars(7, [("a", 1.0)])

    def steps_on_disk() -> list[int]:
        # The flusher creates the file, then writes into it: wait for the event, not for the file.
        paths = glob.glob(str(tmp_path / "events.out.tfevents.*"))
        return [event.step for event in _events(paths[0])[1:]] if paths else []

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not steps_on_disk():
        time.sleep(0.05)
    assert steps_on_disk() == [7]
    assert len(glob.glob(str(tmp_path / "events.out.tfevents.*"))) == 1


def test_a_failed_write_keeps_the_events_and_warns_once(tmp_path) -> None:
    blocked = tmp_path / "run"
    blocked.write_text("a file where the run directory should be")
    events = EventFile(str(blocked))
    events.add_scalars(1, [("a", 1.0)])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events.flush()
        events.add_scalars(2, [("a", 2.0)])
        events.flush()
    assert [str(w.message) for w in caught if issubclass(w.category, TracklightWarning)] == [
        f"Could not write TensorBoard events to {blocked} ({_mkdir_error(blocked)}); 1 event(s) are kept in memory "
        "and written at the next flush."
    ]

    blocked.unlink()
    events.close()
    assert [event.step for event in _events(_only_file(str(blocked)))[1:]] == [1, 2]


def _mkdir_error(path) -> OSError:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        return err
    raise AssertionError("expected makedirs to fail")


def test_a_torn_write_is_cut_off_before_the_retry(tmp_path, monkeypatch) -> None:
    # Fault injection: the disk fills up half-way through a write. A torn record would make TensorBoard stop
    # reading the file there, hiding every later event, so the partial bytes must not stay.
    events = EventFile(str(tmp_path))
    events.add_scalars(1, [("a", 1.0)])
    events.flush()
    path = events.path
    assert path is not None
    size_before = os.path.getsize(path)

    real_write = os.write

    def write_half_then_fail(fd: int, data) -> int:
        if os.readlink(f"/proc/self/fd/{fd}") != path:  # os.write is process-wide: fail only our file's writes
            return real_write(fd, data)
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    for step in range(2, 6):
        events.add_scalars(step, [("a", float(step))])
    monkeypatch.setattr(_tfevents.os, "write", write_half_then_fail)
    with pytest.warns(TracklightWarning, match="No space left on device"):
        events.flush()
    monkeypatch.undo()

    assert os.path.getsize(path) == size_before
    events.close()
    assert [event.step for event in _events(path)[1:]] == [1, 2, 3, 4, 5]


def test_events_added_from_many_threads_are_written_exactly_once(tmp_path) -> None:
    events = EventFile(str(tmp_path))
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            events.flush()

    def producer(thread: int) -> None:
        for step in range(2000):
            events.add_scalars(step, [(f"t{thread}", float(step))])

    background = threading.Thread(target=flusher)
    background.start()
    producers = [threading.Thread(target=producer, args=(i,)) for i in range(4)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    stop.set()
    background.join()
    events.close()

    seen = [(event.summary.value[0].tag, event.step) for event in _events(_only_file(str(tmp_path)))[1:]]
    assert len(seen) == 4 * 2000
    assert set(seen) == {(f"t{i}", step) for i in range(4) for step in range(2000)}
    for i in range(4):  # each producer's events stay in the order it added them
        assert [step for tag, step in seen if tag == f"t{i}"] == list(range(2000))


def test_segments_follow_each_other_in_name_order_and_read_back_whole(tmp_path) -> None:
    events = EventFile(str(tmp_path), max_bytes=300)
    for step in range(100):
        events.add_scalars(step, [("loss", float(step))])
        if step % 7 == 0:
            events.flush()
    events.close()
    names = sorted(os.listdir(tmp_path))
    assert len(names) > 5
    assert names[1:] == [f"{names[0]}.{segment:06d}" for segment in range(1, len(names))]
    assert all(os.path.getsize(tmp_path / name) < 300 + 7 * 40 for name in names)  # one flush past the limit at most
    accumulator = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    accumulator.Reload()
    assert [(event.step, event.value) for event in accumulator.Scalars("loss")] == [(s, float(s)) for s in range(100)]
