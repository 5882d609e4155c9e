"""Background delivery for remote backends: bounded memory, batching, retry with backoff, spill to disk.

The training thread only appends items (plain JSON-able dicts with a ``kind``) to an in-memory queue
and returns. One worker thread per :class:`Delivery` takes them in batches sized to the backend's
limits and hands them to a :class:`Sink` (the backend's own code: MLflow, W&B...). When a send fails
it is retried with exponential backoff; while the backend stays down, and whenever the queue is full,
items move to a JSON-lines spill file, which is replayed when the backend answers again. Nothing is
dropped and the training thread never waits on the network.

``drain()`` and ``close()`` are where waiting happens, bounded by a timeout; they return a
:class:`DeliveryReport` that says what was delivered, what is kept on disk and the one command that
sends it later::

    python -m tracklight.delivery replay <spill file>
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from tracklight._errors import TracklightWarning
from tracklight.delivery import shutdown
from tracklight.delivery.batch import DeliveryReport, Sink, batch_size
from tracklight.delivery.send import WEIGHT, Sender
from tracklight.delivery.spill import Item, SpillFile
from tracklight.formats import flushing as _flushing

__all__ = ["WEIGHT", "Delivery", "DeliveryReport", "Sink", "batch_size"]

#: ``drain()`` says how it is going when it has waited this long, and again every as long.
PROGRESS_AFTER = 2.0


class Delivery:
    """A background worker that delivers items to a :class:`Sink` without ever blocking the caller.

    Args:
        sink: The backend.
        spill_path: The JSON-lines file that keeps items the backend could not take yet. It is created
            only when needed and removed once everything in it was delivered. An existing file is
            loaded and replayed.
        max_pending: Items kept in memory at most (an item with a ``WEIGHT`` field counts that much); beyond
            that they go to the spill file or, for a sink whose items cannot be written to disk (its
            ``spillable`` is false: SDK objects such as images), the caller waits until there is room again.
        linger: Seconds to wait for more items before sending a batch that is not full.
        spill_after: Seconds of failing sends after which queued items move to the spill file.
        backoff_max: The longest wait between two attempts while the backend is failing.

    Example:
        >>> class PrintSink:
        ...     factory, limits, max_items, max_bytes = "", {"metric": 2}, 2, 1000
        ...     def describe(self): return "stdout"
        ...     def target(self): return {}
        ...     def open(self): pass
        ...     def send(self, items): print([item["value"] for item in items])
        ...     def is_permanent(self, error): return False
        >>> import tempfile, os
        >>> delivery = Delivery(PrintSink(), os.path.join(tempfile.mkdtemp(), "spill.jsonl"), linger=0)
        >>> delivery.put_many({"kind": "metric", "value": v} for v in range(3))
        >>> delivery.close(timeout=5).complete
        [0, 1]
        [2]
        True
    """

    def __init__(
        self,
        sink: Sink,
        spill_path: str,
        *,
        max_pending: int = 50_000,
        linger: float = 0.2,
        spill_after: float = 5.0,
        backoff_max: float = 10.0,
    ) -> None:
        self.sink = sink
        self._max_pending = max_pending
        self._linger = linger
        self._spill_after = spill_after
        self._backoff_max = backoff_max
        self._cond = threading.Condition(threading.Lock())
        self._spill = SpillFile(spill_path, self._header)
        self._pending: deque[Item] = deque()
        self._first_pending = 0.0
        self._inflight: list[Item] = []
        self._thread: threading.Thread | None = None
        self._generation = 0
        self._stop = False
        self._closed = False
        self._hurry = False
        self._waiters = 0
        self._opened = False
        self._open_attempts = 0
        self._failures = 0
        self._failing_since: float | None = None
        self._next_attempt = 0.0
        self._last_error: str | None = None
        self._said_down = False
        self._spillable = bool(getattr(sink, "spillable", True))
        self._weight = 0  # of what is pending: its length, plus what heavy items weigh beyond 1
        self._room_waiters = 0
        self._sender = Sender(sink, self._spill, self._cond)
        shutdown.track(self)
        if self._spillable:  # what cannot be spilled has nothing to write at exit or on SIGTERM
            _flushing.register(self)
        if self._spill.pending:
            with self._cond:
                self._start()

    # ---- the producer side: never blocks on the network ------------------------------------------

    def put(self, item: Item, weight: int = 1) -> None:
        """Queue one item; ``weight`` is how much of ``max_pending`` it takes (an image: its size in KiB)."""
        if weight > 1:
            item[WEIGHT] = weight
        self._add((item,), max(weight, 1) - 1)

    def put_many(self, items: Iterable[Item]) -> None:
        """Queue items. Beyond ``max_pending`` everything queued moves to the spill file or, when the sink's
        items cannot be spilled, this call waits until the worker has made room (the caller is slowed)."""
        self._add(items, 0)

    def _add(self, items: Iterable[Item], extra_weight: int) -> None:
        with self._cond:
            before = len(self._pending)
            if not before:
                self._first_pending = time.monotonic()
            self._pending.extend(items)
            self._weight += len(self._pending) - before + extra_weight
            self._closed = False
            full = self._weight >= self._max_pending
            if full and self._spillable:
                self._spill_pending()
            if self._thread is None or self._stop:
                self._start()
            elif not before or len(self._pending) >= self.sink.max_items:
                self._cond.notify_all()
            if full and not self._spillable:
                self._wait_for_room()

    def _wait_for_room(self) -> None:
        """Backpressure: wait (lock held by the caller) until the worker has taken enough off the queue."""
        self._room_waiters += 1
        try:
            while self._weight >= self._max_pending and self._thread is not None and not self._stop:
                self._cond.wait(1.0)
        finally:
            self._room_waiters -= 1

    def flush(self, force: bool = False) -> None:
        """Called by tracklight's flusher; ``force`` (exit, SIGTERM) moves queued items to disk at once."""
        if force and self._spillable:
            with self._cond:
                self._spill_pending()
                self._spill.sync()

    def wait_open(self, timeout: float) -> bool:
        """Wait until the sink is open or a first attempt to open it failed; whether it is open."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._thread is None or self._stop:
                self._start()
            while not self._opened and self._open_attempts == 0 and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return self._opened

    @property
    def opened(self) -> bool:
        """Whether the sink was opened (for MLflow: the run exists)."""
        return self._opened

    @property
    def idle(self) -> bool:
        """Whether nothing is queued, being sent, or kept in the spill file."""
        with self._cond:
            return not (self._pending or self._inflight or self._spill.pending)

    @property
    def delivered(self) -> Counter[str]:
        """How many items of each kind the sink took."""
        return self._sender.delivered

    @property
    def backlog(self) -> int:
        """Items queued in memory, waiting for the worker (not counting the batch it is sending)."""
        return len(self._pending)

    @property
    def spill_path(self) -> str:
        return self._spill.path

    # ---- waiting, bounded -------------------------------------------------------------------------

    def drain(self, timeout: float) -> DeliveryReport:
        """Wait up to ``timeout`` seconds until everything queued or spilled is delivered; never raises."""
        started = time.monotonic()
        deadline = started + timeout
        with self._cond:
            if self._has_work() and (self._thread is None or self._stop):
                self._start()
            self._hurry = True
            self._waiters += 1
            self._cond.notify_all()
            said = started
            try:
                while (self._has_work() or self._inflight) and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(min(left, 1.0))
                    said = self._say_progress(started, said, timeout)
            finally:
                self._waiters -= 1
                self._hurry = False
            return self._report()

    def close(self, timeout: float) -> DeliveryReport:
        """:meth:`drain`, then keep what is left in the spill file and stop the worker.

        What a sink that cannot spill still has queued is kept, as text, in the file of rejected items.
        Putting items again later starts a new worker.
        """
        self.drain(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=1.0)
        with self._cond:
            if self._inflight:
                # The worker is still inside a network call: keep a copy of its batch (sending it twice is
                # harmless) and let that worker, now stale, only count what it delivers.
                if self._spillable:
                    self._spill.append(self._inflight)
                else:
                    self._reject_all(self._inflight, "the backend was still taking it when delivery closed")
                self._inflight = []
                self._generation += 1
            self._spill_pending()
            self._spill.close()
            self._closed = True
            return self._report()

    # ---- the worker -------------------------------------------------------------------------------

    def _start(self) -> None:
        self._stop = False
        self._generation += 1
        self._thread = threading.Thread(
            target=self._run, args=(self._generation,), name="tracklight-delivery", daemon=True
        )
        self._thread.start()

    def _has_work(self) -> bool:
        return bool(self._pending) or self._spill.pending

    def _run(self, generation: int) -> None:
        while True:
            with self._cond:
                action = self._next_action(generation)
                if action is None:
                    if self._thread is threading.current_thread():
                        self._thread = None
                    self._cond.notify_all()
                    return
            kind, payload = action
            try:
                if kind == "open":
                    self.sink.open()
                elif kind == "replay":
                    start, end = payload
                    self._sender.replay(start, end, lambda: not self._stop and generation == self._generation)
                else:
                    self._sender.deliver(payload)
            except Exception as error:
                self._failed(generation, kind, error)
            else:
                self._succeeded(generation, kind)

    def _next_action(self, generation: int) -> tuple[str, Any] | None:
        idle_since = time.monotonic()
        while True:
            if self._stop or generation != self._generation:
                return None
            now = time.monotonic()
            if not self._has_work() and (self._opened or self._open_attempts):
                # Nothing to send (and the sink was opened, or tried): an idle worker ends after a while and
                # the next put starts another.
                if now - idle_since >= 30.0:
                    return None
                self._cond.wait(30.0)
                continue
            if now < self._next_attempt and not self._hurry:
                self._cond.wait(self._next_attempt - now)
                continue
            if not self._opened:
                action: tuple[str, Any] = ("open", None)
            elif self._spill.pending:
                action = ("replay", self._spill.pending_range())
            elif (
                self._hurry
                or self._failing_since is not None
                or len(self._pending) >= self.sink.max_items
                or now - self._first_pending >= self._linger
            ):
                taken = batch_size(self._pending, self.sink.limits, self.sink.max_items, self.sink.max_bytes)
                self._inflight = [self._pending.popleft() for _ in range(taken)]
                self._weight -= _weigh(self._inflight)
                if self._room_waiters:
                    self._cond.notify_all()
                action = ("send", self._inflight)
            else:
                self._cond.wait(self._first_pending + self._linger - now)
                continue
            if self._failing_since is not None:
                self._hurry = False  # one quick retry per drain(), then the normal backoff
            return action

    def _succeeded(self, generation: int, kind: str) -> None:
        with self._cond:
            if generation != self._generation:
                return
            if kind == "open":
                self._opened = True
                self._open_attempts += 1
                self._spill.append_target(self.sink.target())
            elif kind == "send":
                self._inflight = []
            if self._failing_since is not None:  # back: the next outage is reported again
                self._failing_since = None
                self._failures = 0
                self._next_attempt = 0.0
                self._said_down = False
            self._cond.notify_all()

    def _failed(self, generation: int, kind: str, error: Exception) -> None:
        message = f"{type(error).__name__}: {error}"
        with self._cond:
            if generation != self._generation:
                return  # close() kept this worker's batch already
            now = time.monotonic()
            self._last_error = message
            if kind == "open":
                self._open_attempts += 1
            elif kind == "send":
                self._pending.extendleft(reversed(self._inflight))
                self._weight += _weigh(self._inflight)
                self._inflight = []
            if self._failing_since is None:
                self._failing_since = now
            self._failures += 1
            # While someone waits in drain() (finalize), retry often enough to notice the backend return quickly.
            longest = min(self._backoff_max, 1.0) if self._waiters else self._backoff_max
            self._next_attempt = now + min(longest, 0.25 * 2**self._failures)
            if now - self._failing_since >= self._spill_after and self._spillable:
                self._spill_pending()
            first = not self._said_down
            self._said_down = True
        if first:
            warnings.warn(
                f"{self.sink.describe()} is not answering ({message}). Training goes on: logged values are "
                f"queued, retried in the background and kept in {self._spill.path} while it stays down.",
                TracklightWarning,
                stacklevel=2,
            )
        with self._cond:  # only now: whoever waits for this attempt also sees its warning
            self._cond.notify_all()

    # ---- internals ----------------------------------------------------------------------------------

    def _spill_pending(self) -> None:
        if self._pending:
            if self._spillable:
                self._spill.append(self._pending)
            else:
                self._reject_all(self._pending, "not delivered before delivery closed")
            self._pending.clear()
            self._weight = 0
            self._cond.notify_all()

    def _reject_all(self, items: Iterable[Item], reason: str) -> None:
        for item in items:
            self._spill.reject(item, reason)

    def _say_progress(self, started: float, said: float, timeout: float) -> float:
        """Every ``PROGRESS_AFTER`` seconds of a long wait, say on stderr how much is left; when it last spoke."""
        now = time.monotonic()
        if now - said < PROGRESS_AFTER:
            return said
        left = len(self._pending) + len(self._inflight) + self._spill.unsent
        print(
            f"tracklight: {left} item{'' if left == 1 else 's'} still to deliver to {self.sink.describe()} "
            f"after {now - started:.0f} s (waiting up to {timeout:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        return now

    def close_before_exit(self) -> None:
        """Close this delivery when the interpreter shuts down, before the exit hooks registered until now.

        An SDK ends its run in an exit hook; call this right after the SDK object is made, so that what is
        still queued reaches the run first (:mod:`tracklight.delivery.shutdown`).
        """
        shutdown.close_before_exit(self)

    def has_work_at_exit(self) -> bool:
        """Whether something is left for exit to deliver (nothing once ``close`` ran and no item came since)."""
        with self._cond:
            return not self._closed and bool(self._has_work() or self._inflight)

    def _header(self) -> dict[str, Any]:
        return {"factory": self.sink.factory, "destination": self.sink.describe(), "target": self.sink.target()}

    def _report(self) -> DeliveryReport:
        queued = Counter(item["kind"] for item in self._pending)
        queued.update(item["kind"] for item in self._inflight)
        return DeliveryReport(
            destination=self.sink.describe(),
            delivered=Counter(self._sender.delivered),
            kept=+self._spill.kept,
            queued=queued,
            rejected=Counter(self._spill.rejected),
            spill_path=self._spill.path,
            rejected_path=self._spill.rejected_path,
            last_error=self._last_error if self._spill.kept or queued else None,
        )


def _weigh(items: Iterable[Item]) -> int:
    return sum(item.get(WEIGHT, 1) for item in items)
