"""tracklight.delivery on its own: batching, bounded memory, retry, spill and replay.

The sink here is a real in-process sink that records what it receives; it fails on demand, which is
the fault injection (a backend that is down, hangs, or refuses an item). MLflow itself is tested in
test_mlflow.py and test_mlflow_server.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tracklight import TracklightWarning
from tracklight.delivery import Delivery, ItemFailed, batch_size
from tracklight.delivery.replay import main


class Refused(Exception):
    """The sink refuses an item for good."""


class RecordingSink:
    factory = "tests.test_delivery:nothing"
    limits = {"metric": 10, "param": 3}
    max_items = 10
    max_bytes = 100_000

    def __init__(self, down: bool = False) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.down = down
        self.fail_next = 0
        self.refuse: set[str] = set()
        self.gate: threading.Event | None = None
        self.attempts = 0
        self.after_batches: int | None = None  # go down after this many delivered batches

    def describe(self) -> str:
        return "the recording sink"

    def target(self) -> dict[str, Any]:
        return {"name": "recording"}

    def open(self) -> None:
        if self.down:
            raise ConnectionError("the recording sink is down")

    def send(self, items: list[dict[str, Any]]) -> None:
        self.attempts += 1
        if self.gate is not None:
            self.gate.wait()
        if self.down or self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("the recording sink is down")
        if any(item.get("key") in self.refuse for item in items):
            raise Refused(f"refused one of {len(items)}")
        self.batches.append(list(items))
        if self.after_batches is not None and len(self.batches) >= self.after_batches:
            self.down = True

    def is_permanent(self, error: BaseException) -> bool:
        return isinstance(error, Refused)

    @property
    def received(self) -> list[dict[str, Any]]:
        return [item for batch in self.batches for item in batch]


def wait_until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def metrics(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"kind": "metric", "key": "loss", "value": float(i), "step": i} for i in range(start, start + count)]


@pytest.fixture
def spill(tmp_path: Path) -> Path:
    return tmp_path / "spill" / "run.jsonl"


def spilled_items(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["tracklight_spill"] == 1 and lines[0]["destination"] == "the recording sink"
    return [line for line in lines[1:] if not line["kind"].startswith("_")]


def test_batch_size_follows_kind_item_and_byte_limits() -> None:
    limits = {"metric": 3, "param": 2}
    assert batch_size(metrics(5), limits, 100, 10_000) == 3
    params = [{"kind": "param", "key": str(i), "value": "v"} for i in range(3)]
    assert batch_size(metrics(2) + params, limits, 100, 10_000) == 4  # 2 metrics + the 2 params allowed
    assert batch_size(metrics(2) + params, limits, 3, 10_000) == 3  # max_items
    big = [{"kind": "param", "key": "k", "value": "x" * 600} for _ in range(2)]
    assert batch_size(big, limits, 100, 1000) == 1  # bytes
    assert batch_size(big, limits, 100, 10) == 1  # one item always goes, even if too big
    artifact = {"kind": "artifact", "path": "/x"}
    assert batch_size([artifact, *metrics(2)], limits, 100, 10_000) == 1  # other kinds go alone
    assert batch_size([*metrics(2), artifact], limits, 100, 10_000) == 2  # and end a batch


def test_batches_keep_order_and_respect_the_sinks_limits(spill: Path) -> None:
    sink = RecordingSink()
    items: list[dict[str, Any]] = []
    for i in range(95):
        items.append(metrics(1, i)[0])
        if i % 13 == 0:
            items.append({"kind": "param", "key": f"p{i}", "value": str(i)})
    items.insert(50, {"kind": "artifact", "path": "/tmp/a"})
    delivery = Delivery(sink, str(spill), linger=0.05)
    for item in items:
        delivery.put(item)
    report = delivery.close(timeout=30)
    assert report.complete and sink.received == items
    assert report.delivered == Counter(item["kind"] for item in items)
    for batch in sink.batches:
        kinds = Counter(item["kind"] for item in batch)
        assert len(batch) <= sink.max_items
        assert kinds["metric"] <= 10 and kinds["param"] <= 3
        assert kinds["artifact"] == 0 or len(batch) == 1
    assert not spill.exists()


def test_put_returns_while_the_sink_hangs(spill: Path) -> None:
    sink = RecordingSink()
    sink.gate = threading.Event()  # every send blocks until the gate opens: a server that does not answer
    delivery = Delivery(sink, str(spill), linger=0)
    for item in metrics(2000):
        delivery.put(item)
    # All 2000 puts returned, and no send has completed: the caller never waited on the sink.
    assert sink.batches == [] and not sink.gate.is_set()
    sink.gate.set()
    report = delivery.close(timeout=30)
    assert report.complete and [item["step"] for item in sink.received] == list(range(2000))


@pytest.mark.filterwarnings("ignore:the recording sink is not answering")
def test_memory_stays_bounded_and_the_overflow_is_kept_on_disk(spill: Path) -> None:
    sink = RecordingSink(down=True)
    delivery = Delivery(sink, str(spill), max_pending=50, linger=0)
    for index, item in enumerate(metrics(5000)):
        delivery.put(item)
        if index % 250 == 0:
            assert sum(delivery.drain(0).queued.values()) <= 50
    on_disk = spilled_items(spill)
    assert len(on_disk) >= 4950
    sink.down = False
    report = delivery.close(timeout=60)
    assert report.complete, report
    assert sorted(item["step"] for item in sink.received) == list(range(5000))  # each exactly once
    assert not spill.exists()


def test_failed_sends_are_retried_and_reported_once(spill: Path) -> None:
    sink = RecordingSink()
    sink.fail_next = 3
    delivery = Delivery(sink, str(spill), linger=0, backoff_max=0.1)
    with pytest.warns(TracklightWarning, match="the recording sink is not answering") as caught:
        delivery.put_many(metrics(5))
        report = delivery.close(timeout=30)
    assert report.complete and sink.attempts >= 4
    assert [item["step"] for item in sink.received] == list(range(5))
    assert sum("not answering" in str(warning.message) for warning in caught) == 1


def test_refused_items_are_found_and_kept_and_the_rest_delivered(spill: Path) -> None:
    sink = RecordingSink()
    sink.refuse = {"bad"}
    items = metrics(9)
    items.insert(4, {"kind": "metric", "key": "bad", "value": 1.0, "step": 0})
    delivery = Delivery(sink, str(spill), linger=0.05)
    with pytest.warns(TracklightWarning, match="metric cannot be delivered.*'bad'"):
        delivery.put_many(items)
        report = delivery.close(timeout=30)
    assert sink.received == [item for item in items if item["key"] != "bad"]
    assert report.rejected == Counter(metric=1) and not report.kept
    rejected = [json.loads(line) for line in Path(report.rejected_path).read_text().splitlines()]
    assert rejected == [{"item": items[4], "error": "Refused: refused one of 1"}]


def test_close_keeps_what_was_not_delivered_and_names_the_command(spill: Path) -> None:
    sink = RecordingSink(down=True)
    delivery = Delivery(sink, str(spill), linger=0)
    items = [*metrics(3), {"kind": "param", "key": "lr", "value": "0.1"}]
    with pytest.warns(TracklightWarning, match="not answering"):
        delivery.put_many(items)
        report = delivery.close(timeout=0.5)
    assert not report.complete
    assert report.kept == Counter(metric=3, param=1) and not report.queued
    assert report.command == f"python -m tracklight.delivery replay {spill}"
    assert str(spill) in str(report) and report.command in str(report)
    assert spilled_items(spill) == items


def test_a_new_delivery_resumes_the_spill_file_where_the_last_one_stopped(spill: Path) -> None:
    down = RecordingSink(down=True)
    first = Delivery(down, str(spill), linger=0)
    with pytest.warns(TracklightWarning):
        first.put_many(metrics(30))
        assert first.close(timeout=0.2).kept == Counter(metric=30)

    flaky = RecordingSink()
    flaky.after_batches = 1  # takes one batch of 10, then goes down: a crash during replay
    with pytest.warns(TracklightWarning):
        second = Delivery(flaky, str(spill))
        wait_until(lambda: flaky.attempts >= 2)  # one batch taken, the next one failed
        report = second.close(timeout=0)
    assert [item["step"] for item in flaky.received] == list(range(10))
    assert report.kept == Counter(metric=20)

    healthy = RecordingSink()
    report = Delivery(healthy, str(spill)).close(timeout=30)
    assert report.complete
    assert [item["step"] for item in healthy.received] == list(range(10, 30))  # the offset was kept
    assert not spill.exists()


def test_logging_after_close_starts_again(spill: Path) -> None:
    sink = RecordingSink()
    delivery = Delivery(sink, str(spill), linger=0)
    delivery.put_many(metrics(3))
    assert delivery.close(timeout=30).complete
    delivery.put_many(metrics(2, start=3))  # Lightning: fit, finalize, then test, finalize
    assert delivery.close(timeout=30).complete
    assert [item["step"] for item in sink.received] == list(range(5))


@pytest.mark.filterwarnings("ignore:the recording sink is not answering")
def test_forced_flush_moves_queued_items_to_disk(spill: Path) -> None:
    sink = RecordingSink(down=True)
    delivery = Delivery(sink, str(spill), linger=3600, spill_after=3600)
    delivery.put_many(metrics(4))
    delivery.flush(force=True)  # what tracklight's SIGTERM and exit hooks call
    assert spilled_items(spill) == metrics(4)
    sink.down = False
    assert delivery.close(timeout=30).complete
    assert sink.received == metrics(4)


def test_replay_refuses_a_spill_file_that_names_a_foreign_sink(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "evil.jsonl"
    path.write_text(json.dumps({"tracklight_spill": 1, "factory": "os:system", "target": {}}) + "\n")
    assert main(["replay", str(path)]) == 2
    assert "only tracklight's own sinks" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 2
    assert "nothing to replay" in capsys.readouterr().err


# ---- sinks that cannot spill (SDK objects): backpressure, items they fail on, progress --------------------


class SdkLikeSink(RecordingSink):
    """Items hold objects that cannot be written to disk; a failure is the SDK's own, for one item."""

    spillable = False

    def __init__(self) -> None:
        super().__init__()
        self.fail_steps: set[int] = set()
        self.delay = 0.0

    def send(self, items: list[dict[str, Any]]) -> None:
        for index, item in enumerate(items):
            if self.gate is not None:
                self.gate.wait()
            time.sleep(self.delay)
            if item.get("step") in self.fail_steps:
                raise ItemFailed(index, RuntimeError(f"the SDK broke on step {item['step']}"))
            self.batches.append([item])


def test_a_sink_that_cannot_spill_slows_the_caller_down_instead(spill: Path) -> None:
    sink = SdkLikeSink()
    sink.gate = threading.Event()  # the SDK does not take anything until the gate opens
    delivery = Delivery(sink, str(spill), max_pending=5, linger=0)
    done = threading.Event()
    backlog: list[int] = []

    def produce() -> None:
        for item in metrics(50):
            delivery.put(item)
            backlog.append(delivery.backlog)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    wait_until(lambda: len(backlog) >= 4)
    assert not done.wait(0.3)  # the caller waits for room rather than growing the queue
    sink.gate.set()
    producer.join(timeout=30)
    assert done.is_set() and max(backlog) < 5
    report = delivery.close(timeout=30)
    assert report.complete and [item["step"] for item in sink.received] == list(range(50))
    assert not spill.exists()  # nothing was written to disk


def test_a_heavy_item_counts_as_its_weight(spill: Path) -> None:
    sink = SdkLikeSink()
    sink.gate = threading.Event()
    delivery = Delivery(sink, str(spill), max_pending=100, linger=0)
    delivery.put({"kind": "image", "key": "first"}, weight=30)
    wait_until(lambda: delivery.backlog == 0)  # the worker took it, and waits in the SDK
    delivery.put({"kind": "image", "key": "small"}, weight=30)
    delivery.put({"kind": "image", "key": "small"}, weight=30)
    blocked = threading.Thread(target=delivery.put, args=({"kind": "image", "key": "big"}, 50))
    blocked.start()
    blocked.join(timeout=0.3)
    assert blocked.is_alive()  # 30 + 30 + 50 queued is past the bound of 100: the last put waits
    sink.gate.set()
    blocked.join(timeout=30)
    assert delivery.close(timeout=30).complete and len(sink.received) == 4


def test_an_item_a_sink_fails_on_is_kept_said_once_and_the_rest_sent(spill: Path) -> None:
    sink = SdkLikeSink()
    sink.fail_steps = {3, 7}
    delivery = Delivery(sink, str(spill), linger=0.05)
    with pytest.warns(TracklightWarning, match=r"could not take a metric \(key='loss', value=3.0, step=3\)") as caught:
        delivery.put_many(metrics(10))
        report = delivery.close(timeout=30)
    assert len(caught) == 1
    assert [item["step"] for item in sink.received] == [0, 1, 2, 4, 5, 6, 8, 9]  # each sent once, in order
    assert report.rejected == Counter(metric=2) and report.delivered == Counter(metric=8)
    kept = [json.loads(line) for line in Path(report.rejected_path).read_text().splitlines()]
    assert [entry["item"]["step"] for entry in kept] == [3, 7]
    assert kept[0]["error"] == "RuntimeError: the SDK broke on step 3"


def test_what_a_sink_that_cannot_spill_still_has_at_close_is_kept_as_text(spill: Path) -> None:
    sink = SdkLikeSink()
    sink.gate = threading.Event()
    delivery = Delivery(sink, str(spill), linger=0)
    delivery.put_many(metrics(5))
    report = delivery.close(timeout=0.2)
    sink.gate.set()
    assert report.rejected == Counter(metric=5) and not report.kept and not spill.exists()
    assert len(Path(report.rejected_path).read_text().splitlines()) == 5


def test_a_long_drain_says_how_it_is_going(spill: Path, capsys: Any) -> None:
    sink = SdkLikeSink()
    sink.delay = 0.25
    delivery = Delivery(sink, str(spill), linger=0)
    delivery.put_many(metrics(12))  # about 3 s
    assert delivery.drain(timeout=30).complete
    err = capsys.readouterr().err
    assert "tracklight: " in err and "still to deliver to the recording sink after 2 s (waiting up to 30 s)" in err
    assert delivery.close(timeout=1).complete


def test_close_before_exit_delivers_before_the_exit_hooks_registered_earlier(tmp_path: Path) -> None:
    """An SDK ends its run in an exit hook: what is still queued must reach the run before that hook runs."""
    script = textwrap.dedent(
        f"""
        import atexit, threading, time
        from tracklight.delivery import Delivery

        received, ended = [], []

        class Sink:
            factory, limits, max_items, max_bytes, spillable = "", {{}}, 10, 10**6, False
            def describe(self): return "the SDK"
            def target(self): return {{}}
            def open(self): pass
            def send(self, items):
                time.sleep(0.01)
                assert not ended, "the run has ended"
                received.extend(items)
            def is_permanent(self, error): return True

        def sdk_exit_hook():
            ended.append(True)
            print("delivered before the SDK ended its run:", len(received), flush=True)

        atexit.register(sdk_exit_hook)  # what W&B and Neptune do; Comet uses threading's hooks
        threading._register_atexit(sdk_exit_hook)
        delivery = Delivery(Sink(), {str(tmp_path / "spill.jsonl")!r}, linger=0)
        delivery.close_before_exit()
        delivery.put_many({{"kind": "metric", "step": step}} for step in range(50))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["delivered before the SDK ended its run: 50"] * 2


# ---- faults of the core, with the recording sink ---------------------------------------------------------


@pytest.mark.filterwarnings("ignore:the recording sink is not answering")
def test_while_the_sink_fails_queued_items_reach_the_disk_within_spill_after(spill: Path) -> None:
    sink = RecordingSink(down=True)
    delivery = Delivery(sink, str(spill), linger=0, spill_after=0.3)
    delivery.put_many(metrics(5))
    wait_until(lambda: sink.attempts == 0 and delivery.drain(0).last_error is not None, timeout=30)
    delivery.put_many(metrics(5, start=5))
    # No close, no exit: tracklight's flusher alone moves them (what a SIGKILL would otherwise take).
    wait_until(lambda: spill.exists() and len(spilled_items(spill)) == 10, timeout=30)
    assert [item["step"] for item in spilled_items(spill)] == list(range(10))
    sink.down = False
    assert delivery.close(timeout=30).complete


@pytest.mark.filterwarnings("ignore:the recording sink is not answering")
def test_close_does_not_wait_out_the_timeout_for_a_sink_never_reached(spill: Path) -> None:
    sink = RecordingSink(down=True)
    delivery = Delivery(sink, str(spill), linger=0)
    assert not delivery.wait_open(30)  # the first attempt failed
    delivery.put_many(metrics(3))
    report = delivery.close(timeout=3600)  # returns after one more attempt, not in an hour
    assert report.kept == Counter(metric=3) and report.command is not None


def test_unreadable_lines_are_set_aside_with_their_line_numbers(spill: Path) -> None:
    spill.parent.mkdir(parents=True)
    header = {"tracklight_spill": 1, "factory": "", "destination": "the recording sink", "target": {}}
    lines = [json.dumps(header), *(json.dumps(item) for item in metrics(3)), "[1, 2]", json.dumps(metrics(1, 3)[0])]
    spill.write_text("\n".join(lines) + '\n{"kind": "metric", "ke')
    sink = RecordingSink()
    with pytest.warns(TracklightWarning) as said:
        report = Delivery(sink, str(spill)).close(timeout=30)
    assert [item["step"] for item in sink.received] == [0, 1, 2, 3]  # every good line
    assert report.rejected == Counter({"unreadable line": 2}) and not report.kept and not report.complete
    messages = sorted(str(warning.message) for warning in said)
    assert messages[0].startswith(f"line 5 of {spill} cannot be read: not an item")
    assert messages[1].startswith(f"line 7 of {spill} cannot be read: cut short")
    rejected = [json.loads(line) for line in Path(report.rejected_path).read_text().splitlines()]
    assert [record["line"] for record in rejected] == [5, 7]


@pytest.mark.filterwarnings("ignore:the recording sink is not answering")
def test_a_spill_folder_that_cannot_be_written_moves_to_the_fallback_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "blocker").write_text("a file where the spill folder would be")
    sink = RecordingSink(down=True)
    delivery = Delivery(sink, str(tmp_path / "blocker" / "spill" / "run.jsonl"), linger=0)
    with pytest.warns(TracklightWarning, match="Could not write the spill file .*blocker.* kept in .*tmp") as said:
        delivery.put_many(metrics(4))
        report = delivery.close(timeout=0.5)
    assert report.spill_path == str(tmp_path / "tmp" / "tracklight-spill" / "run.jsonl")
    assert spilled_items(Path(report.spill_path)) == metrics(4) and report.kept == Counter(metric=4)
    assert sum("Could not write" in str(warning.message) for warning in said) == 1


def test_no_thread_is_left_after_close(spill: Path) -> None:
    from tracklight.formats import flushing

    delivery = Delivery(RecordingSink(), str(spill), linger=0)
    delivery.put_many(metrics(3))
    worker = delivery._thread
    assert worker is not None and worker.is_alive()
    assert delivery.close(timeout=30).complete
    assert not worker.is_alive() and delivery not in list(flushing._writers)  # nor flushed any more
    delivery.put_many(metrics(1, start=3))  # logging again starts another worker
    assert delivery.close(timeout=30).complete and not delivery._thread


def test_an_idle_worker_ends_within_seconds_without_close_and_the_next_item_starts_another(spill: Path) -> None:
    from tracklight.delivery.thread import IDLE_EXIT
    from tracklight.formats import flushing

    sink = RecordingSink()
    delivery = Delivery(sink, str(spill), linger=0)
    delivery.put_many(metrics(3))
    worker = delivery._thread
    assert worker is not None
    worker.join(timeout=IDLE_EXIT + 10)  # never closed, never drained: it ends on its own once idle
    assert not worker.is_alive() and len(sink.received) == 3
    assert delivery not in list(flushing._writers)  # nothing queued: the flusher need not look at it either
    delivery.put_many(metrics(1, start=3))
    assert delivery._thread is not None and delivery._thread is not worker
    wait_until(lambda: len(sink.received) == 4)
    assert delivery.close(timeout=30).complete


def test_a_thread_check_can_stop_the_worker_and_nothing_queued_is_lost(spill: Path) -> None:
    # Lightning's suite calls stop() on every daemon thread a test left behind and then checks it is gone.
    sink = RecordingSink()
    sink.gate = threading.Event()  # the first batch is under way when the check comes
    delivery = Delivery(sink, str(spill), linger=0)
    delivery.put_many(metrics(3))
    worker = delivery._thread
    assert worker is not None and worker.daemon
    wait_until(lambda: sink.attempts == 1)
    delivery.put_many(metrics(2, start=3))  # queued behind the batch under way
    sink.gate.set()
    worker.stop()
    assert not worker.is_alive()
    assert delivery.close(timeout=30).complete  # a new worker delivers what was queued
    assert [item["value"] for item in sink.received] == [float(index) for index in range(5)]
