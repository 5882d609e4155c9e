"""Background delivery for remote backends: bounded memory, batching, retry with backoff, spill to disk.

The training thread only appends items (plain JSON-able dicts with a ``kind``) to an in-memory queue
and returns. One worker thread per :class:`Delivery` takes them in batches sized to the backend's
limits and hands them to a :class:`Sink` (the backend's own code: MLflow, W&B...). When a send fails
it is retried with exponential backoff; while the backend is not answering, and whenever the queue is
full, items move to a JSON-lines spill file within about half a second, which is replayed when the
backend answers again. Nothing is dropped and the training thread never waits on the network.

``drain()`` and ``close()`` are where waiting happens, bounded by a timeout (and by one quick retry when
the backend was never reached at all); they return a :class:`DeliveryReport` that says what was
delivered, what is kept on disk and the one command that sends it later::

    python -m tracklight.delivery replay <spill file>
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from tracklight.delivery import shutdown
from tracklight.delivery.batch import DeliveryReport, Sink, batch_size
from tracklight.delivery.keep import Keeper
from tracklight.delivery.outage import Outage
from tracklight.delivery.send import WEIGHT, Sender
from tracklight.delivery.spill import Item, SpillFile
from tracklight.delivery.thread import STUCK_AFTER, Worker, WorkerThread
from tracklight.formats import flushing as _flushing

__all__ = ["STUCK_AFTER", "WEIGHT", "Delivery", "DeliveryReport", "Sink", "batch_size"]

#: ``drain()`` says how it is going when it has waited this long, and again every as long.
PROGRESS_AFTER = 2.0


class Delivery(Worker):
    """A background worker that delivers items to a :class:`Sink` without ever blocking the caller.

    Args:
        sink: The backend.
        spill_path: The JSON-lines file that keeps items the backend could not take yet. It is created
            only when needed and removed once everything in it was delivered. An existing file is
            loaded and replayed. When its folder cannot be written, the file moves to
            :func:`~tracklight.delivery.spill.fallback_dir`.
        max_pending: Items kept in memory at most (an item with a ``WEIGHT`` field counts that much); beyond
            that they go to the spill file or, for a sink whose items cannot be written to disk (its
            ``spillable`` is false: SDK objects such as images), the caller waits until there is room again.
        linger: Seconds to wait for more items before sending a batch that is not full.
        spill_after: Seconds an item waits in memory, while the backend is failing (or one request has been
            stuck for ``STUCK_AFTER`` seconds), before it moves to the spill file: a crash loses about that much.
        backoff_max: The longest wait between two attempts while the backend is failing.
        inline: Deliver on the calling thread, with no worker thread (for a ``unittest.mock`` backend:
            :mod:`tracklight.delivery.thread`).

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
        spill_after: float = 0.5,
        backoff_max: float = 10.0,
        inline: bool = False,
    ) -> None:
        self.sink = sink
        self.inline = inline
        self._max_pending = max_pending
        self._linger = linger
        self._spill_after = spill_after
        # A WriterLock: a SIGTERM that lands while the training thread holds it (in put_many) is handled once
        # it lets go, rather than deadlocking in flush(force=True) on the same thread.
        self._cond = threading.Condition(_flushing.WriterLock())  # type: ignore[arg-type]  # any acquire/release
        self._spill = SpillFile(spill_path, self._header)
        self._pending: deque[Item] = deque()
        self._first_pending = 0.0
        self._inflight: list[Item] = []
        self._busy_since: float | None = None  # when the send or replay now under way began
        self._thread: WorkerThread | None = None
        self._generation = 0
        self._stop = False
        self._closed = False
        self._hurry = False
        self._waiters = 0
        self._outage = Outage(backoff_max)
        self._spillable = bool(getattr(sink, "spillable", True))
        self._weight = 0  # of what is pending: its length, plus what heavy items weigh beyond 1
        self._room_waiters = 0
        self._keeper = Keeper(self._spill, sink.describe(), self._spillable, max_pending)
        self._sender = Sender(sink, self._spill, self._cond, self._keeper)
        self._track()
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
            if self.inline:  # delivered below, on this thread, once the lock is free
                pass
            elif self._thread is None or self._stop or not self._thread.is_alive():
                self._start()
            elif not before or len(self._pending) >= self.sink.max_items:
                self._cond.notify_all()
            if full and not self._spillable and not self.inline:
                self._wait_for_room()
        if self.inline:
            self._run_inline()

    def _wait_for_room(self) -> None:
        """Backpressure: wait (lock held by the caller) until the worker has taken enough off the queue."""
        self._room_waiters += 1
        try:
            while self._weight >= self._max_pending and self._thread is not None and not self._stop:
                self._cond.wait(1.0)
        finally:
            self._room_waiters -= 1

    def flush(self, force: bool = False) -> None:
        """Called by tracklight's flusher several times a second: while the backend is failing (or a request is
        stuck), queued items move to the spill file once they waited ``spill_after``. ``force`` (exit, SIGTERM)
        moves them at once."""
        if not self._spillable:
            return
        with self._cond:
            now = time.monotonic()
            if force:
                self._spill_pending(force=True)
                with contextlib.suppress(OSError):  # the lines reached the operating system already
                    self._spill.sync()
            elif self._pending and self._stalled(now) and now - self._first_pending >= self._spill_after:
                self._spill_pending()

    def wait_open(self, timeout: float) -> bool:
        """Wait until the sink is open or a first attempt to open it failed; whether it is open."""
        deadline = time.monotonic() + timeout
        if self.inline:
            self._run_inline()
        with self._cond:
            if self._thread is None or self._stop:
                self._start()
            while not self._outage.open_attempts and not self.inline and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return self._outage.opened

    @property
    def opened(self) -> bool:
        """Whether the sink was opened (for MLflow: the run exists)."""
        return self._outage.opened

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
        """Wait up to ``timeout`` seconds until everything queued or spilled is delivered; never raises.

        A backend that was never reached gets one more quick attempt rather than the whole ``timeout``; a Ctrl-C
        while Ctrl-C is ignored (Lightning shutting down after a first one) ends the wait at once.
        """
        started = time.monotonic()
        deadline = started + timeout
        if self.inline:
            return self._drain_inline()
        with self._cond:
            if self._has_work() and (self._thread is None or self._stop):
                self._start()
            self._hurry = True
            self._waiters += 1
            self._cond.notify_all()
            said = started
            attempts = self._outage.open_attempts
            with shutdown.interruptible() as interrupted:
                try:
                    while (self._has_work() or self._inflight) and (left := deadline - time.monotonic()) > 0:
                        if self._outage.unreached(attempts) or interrupted.is_set():
                            break  # never reached, and not now either; or a Ctrl-C: keep everything on disk
                        if self._has_work():
                            self._ensure_worker()  # a thread check may have stopped it
                        self._cond.wait(min(left, 0.25))
                        said = self._say_progress(started, said, timeout)
                finally:
                    self._waiters -= 1
                    self._hurry = False
            return self._report()

    def _drain_inline(self) -> DeliveryReport:
        """:meth:`drain` for an inline delivery: one more attempt now, on this thread, whatever the backoff."""
        with self._cond:
            self._hurry = True
        try:
            self._run_inline()
        finally:
            with self._cond:
                self._hurry = False
        with self._cond:
            return self._report()

    def close(self, timeout: float) -> DeliveryReport:
        """:meth:`drain`, then keep what is left (spill file; rejects, as text, for a sink that cannot spill; else
        counted as lost) and stop the worker and the flushing of this delivery. Putting items again restarts them.
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
                    self._pending.extendleft(reversed(self._inflight))
                else:
                    self._keeper.reject_all(self._inflight, "the backend was still taking it when delivery closed")
                self._inflight = []
                self._generation += 1
            self._spill_pending(force=True)
            self._keeper.lose_the_rest(self._pending)
            with contextlib.suppress(OSError):  # the items are written; a failed fsync is all that is left
                self._spill.close()
            self._closed = True
            report = self._report()
        _flushing.unregister(self)
        return report

    def say_where_kept(self) -> None:
        """Print on stderr what the spill file keeps and the command that sends it (the process ends now)."""
        with self._cond:
            report = self._report()
        if not report.complete:
            with contextlib.suppress(OSError, ValueError):  # stderr closed: nothing else to tell
                print(f"tracklight: {report}", file=sys.stderr, flush=True)

    # ---- internals ----------------------------------------------------------------------------------

    def _track(self) -> None:
        """Close at exit if needed; flushed several times a second, at exit and on SIGTERM, while a worker runs."""
        shutdown.track(self)
        if self._spillable and not self.inline:  # what cannot be spilled has nothing to write at exit or on SIGTERM
            _flushing.register(self)

    def _untrack_flushing(self) -> None:
        # Without waiting for the flusher, which may be waiting for this delivery's lock, held here.
        _flushing.unregister(self, wait=False)

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
            last_error=self._outage.last_error if self._spill.kept or queued else None,
            lost=Counter(self._keeper.disk.lost),
            lost_reason=self._keeper.disk.reason,
        )
