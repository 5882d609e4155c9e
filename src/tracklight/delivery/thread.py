"""The worker side of a :class:`~tracklight.delivery.Delivery`: what to do next (open the sink, replay the spill
file, send a batch, wait) and the thread that does it.

The thread lives only while there is work: it starts with the first item, ends once it has had nothing to
do for ``IDLE_EXIT`` seconds, and the next item (or a wait for delivery) starts another. Nothing queued is
lost when it ends. A test suite's thread check (Lightning's stops every daemon thread a test left behind
through its ``stop()``) can end it at once the same way.

A delivery whose backend is a ``unittest.mock`` object (a test suite's stand-in for an SDK) is ``inline``:
it gets no thread, and the same steps run on the calling thread, so each logging call has reached the mock
when it returns, as with Lightning's loggers. A mock does no I/O, so a thread would gain nothing.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tracklight._errors import TracklightWarning
from tracklight.delivery.batch import batch_size
from tracklight.delivery.send import WEIGHT

if TYPE_CHECKING:
    from tracklight.delivery.batch import Sink
    from tracklight.delivery.keep import Keeper
    from tracklight.delivery.outage import Outage
    from tracklight.delivery.send import Sender
    from tracklight.delivery.spill import Item, SpillFile

__all__ = ["IDLE_EXIT", "STUCK_AFTER", "Worker", "WorkerThread"]

#: Seconds a worker with nothing to do waits for more before it ends (the next item starts another).
IDLE_EXIT = 1.0

#: Seconds one request may be under way before the backend counts as not answering (a healthy batch takes
#: well under a second; a large artifact upload may take longer, and what waits behind it then goes to disk).
STUCK_AFTER = 5.0


class WorkerThread(threading.Thread):
    """A delivery's worker thread (``tracklight-delivery``, a daemon).

    :meth:`stop` ends it after the request under way, if any; what is queued stays queued for the next worker.
    """

    def __init__(self, worker: Worker, generation: int) -> None:
        super().__init__(name="tracklight-delivery", daemon=True)
        self._worker = weakref.ref(worker)
        self._generation = generation

    def run(self) -> None:
        worker = self._worker()
        if worker is not None:
            worker._run(self._generation)

    def stop(self, timeout: float = 5.0) -> None:
        """End this thread (waiting up to ``timeout`` seconds for a request under way); the next item starts
        another."""
        worker = self._worker()
        if worker is not None:
            worker._stop_thread(self)
        if self is not threading.current_thread():
            self.join(timeout)


class Worker:
    """The thread side of :class:`~tracklight.delivery.Delivery`, which sets up every attribute used here."""

    sink: Sink
    inline: bool
    _cond: threading.Condition
    _spill: SpillFile
    _pending: deque[Item]
    _first_pending: float
    _inflight: list[Item]
    _busy_since: float | None
    _thread: WorkerThread | None
    _generation: int
    _stop: bool
    _hurry: bool
    _waiters: int
    _outage: Outage
    _spillable: bool
    _weight: int
    _room_waiters: int
    _keeper: Keeper
    _sender: Sender
    _linger: float
    _spill_after: float

    def _has_work(self) -> bool:
        return bool(self._pending) or self._spill.pending

    def _start(self) -> None:
        """Start a worker (the lock is held); an inline delivery only marks itself running."""
        self._stop = False
        if self.inline:
            return
        self._generation += 1
        self._thread = WorkerThread(self, self._generation)
        self._thread.start()
        self._track()

    def _track(self) -> None:
        """Flush and close this delivery at exit and on SIGTERM (:class:`~tracklight.delivery.Delivery` says how)."""
        raise NotImplementedError

    def _untrack_flushing(self) -> None:
        """An idle worker ends: nothing is queued, so the flusher need not look at this delivery until the next
        worker starts (lock held)."""
        raise NotImplementedError

    def _ensure_worker(self) -> None:
        """Start a worker unless one is running (the lock is held)."""
        if self._thread is None or self._stop or not self._thread.is_alive():
            self._start()

    def _run_inline(self) -> None:
        """Do on the calling thread what a worker would do now, without waiting (an inline delivery)."""
        with self._cond:
            self._stop = False
            generation = self._generation
        self._run(generation)

    def _stop_thread(self, thread: WorkerThread) -> None:
        with self._cond:
            if self._thread is thread:
                self._stop = True
                self._cond.notify_all()

    def _stalled(self, now: float) -> bool:
        """The backend is failing, or the request under way has been stuck for ``STUCK_AFTER`` seconds (a slow
        backend that keeps taking batches is not stalled: its backlog waits in memory, in order)."""
        stuck = self._busy_since is not None and now - self._busy_since >= STUCK_AFTER
        return self._outage.failing or stuck

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
                    start, end, epoch = payload
                    self._sender.replay(start, end, epoch, lambda: not self._stop and generation == self._generation)
                else:
                    self._sender.deliver(payload)
            except Exception as error:
                self._failed(generation, kind, error)
            else:
                self._succeeded(generation, kind)

    def _next_action(self, generation: int) -> tuple[str, Any] | None:
        """What to do now, waiting (lock held) while there is nothing to do yet; ``None`` ends the worker. An
        inline delivery never waits: it ends instead, and the next call goes on."""
        idle_since = time.monotonic()
        while True:
            if self._stop or generation != self._generation:
                return None
            now = time.monotonic()
            if not self._has_work() and self._outage.open_attempts:
                # Nothing to send (and the sink was opened, or tried): an idle worker ends soon, and the next
                # item starts another, so no thread outlives the logger's use by more than IDLE_EXIT.
                if self.inline:
                    return None
                if now - idle_since >= IDLE_EXIT:
                    self._untrack_flushing()
                    return None
                self._cond.wait(IDLE_EXIT - (now - idle_since))
                continue
            if now < self._outage.next_attempt and not self._hurry:
                if self.inline:
                    return None  # backing off: a later call tries again
                self._cond.wait(self._outage.next_attempt - now)
                continue
            if not self._outage.opened:
                action: tuple[str, Any] = ("open", None)
            elif self._spill.pending:
                action = ("replay", (*self._spill.pending_range(), self._spill.epoch))
            elif (
                self._hurry
                or self.inline
                or self._outage.failing
                or len(self._pending) >= self.sink.max_items
                or now - self._first_pending >= self._linger
            ):
                taken = batch_size(self._pending, self.sink.limits, self.sink.max_items, self.sink.max_bytes)
                self._inflight = [self._pending.popleft() for _ in range(taken)]
                self._weight -= weigh(self._inflight)
                if self._room_waiters:
                    self._cond.notify_all()
                action = ("send", self._inflight)
            else:
                self._cond.wait(self._first_pending + self._linger - now)
                continue
            if action[0] != "open":
                self._busy_since = now
            if self._outage.failing:
                self._hurry = False  # one quick retry per drain(), then the normal backoff
            return action

    def _succeeded(self, generation: int, kind: str) -> None:
        with self._cond:
            if generation != self._generation:
                return
            self._busy_since = None
            if kind == "open":
                with contextlib.suppress(OSError):  # the header in memory has the target; a moved file takes it
                    self._spill.append_target(self.sink.target())
            elif kind == "send":
                self._inflight = []
            self._outage.ended(opening=kind == "open")
            self._cond.notify_all()

    def _failed(self, generation: int, kind: str, error: Exception) -> None:
        with self._cond:
            if generation != self._generation:
                return  # close() kept this worker's batch already
            self._busy_since = None
            if kind == "send":
                self._pending.extendleft(reversed(self._inflight))
                self._weight += weigh(self._inflight)
                self._inflight = []
            first = self._outage.failed(error, waited_for=self._waiters > 0, opening=kind == "open")
            if time.monotonic() - (self._outage.since or 0.0) >= self._spill_after and self._spillable:
                self._spill_pending()
            message = self._outage.message(self.sink.describe(), self._spill.path)
        if first:
            warnings.warn(message, TracklightWarning, stacklevel=2)
        with self._cond:  # only now: whoever waits for this attempt also sees its warning
            self._cond.notify_all()

    def _spill_pending(self, force: bool = False) -> None:
        if self._keeper.keep(self._pending, force):
            self._weight = 0
            self._cond.notify_all()


def weigh(items: Iterable[Item]) -> int:
    """How much of ``max_pending`` items take (an item with a ``WEIGHT`` field counts that much)."""
    return sum(item.get(WEIGHT, 1) for item in items)
