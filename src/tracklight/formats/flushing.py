"""Periodic flushing of buffered writers: several times a second, at exit and on SIGTERM.

One daemon thread serves every open writer in the process. A writer registers itself and exposes
``flush(force: bool)``; it decides what a flush means (append buffered rows, rewrite a header...).
Writers registered with ``late=True`` (the mirrors that upload a run folder to an object store) are
flushed after all the others, so that a forced flush at exit or on SIGTERM uploads what the local
writers have just written.

Writers guard their state with :class:`WriterLock` rather than a bare ``threading.Lock``: a SIGTERM
handler runs on the main thread between two bytecodes, possibly while that thread holds a writer's
lock halfway through a write. Flushing there would deadlock (or, with a re-entrant lock, write the
same rows twice), so the handler notices and runs once the main thread lets go of its last lock.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import weakref
from typing import Any, Protocol

#: Seconds between background flushes. Rows that fit the file's header reach it within this time;
#: a header rewrite is also rate-limited by the writer, so a SIGKILL loses at most about a second.
FLUSH_INTERVAL = 0.25


class Flushable(Protocol):
    def flush(self, force: bool = False) -> None: ...


_writers: weakref.WeakSet[Any] = weakref.WeakSet()
_late_writers: weakref.WeakSet[Any] = weakref.WeakSet()
#: Late writers with nothing to do until a local writer registers again (see ``rest``).
_resting: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()
_wake = threading.Event()
_thread: _FlushThread | None = None
_thread_pid: int | None = None
_atexit_installed = False
_exiting = False
_sigterm_installed = False

_MAIN_IDENT = threading.main_thread().ident
_get_ident = threading.get_ident
#: How many WriterLocks the main thread holds (or waits for); only the main thread changes it.
_main_depth = 0
#: A SIGTERM that arrived while the main thread held a WriterLock, handled when it lets go.
_deferred_signal: tuple[int, Any] | None = None


class WriterLock:
    """A non-reentrant lock that tells the SIGTERM handler when the main thread is inside a writer.

    Example:
        >>> lock = WriterLock()
        >>> with lock:
        ...     pass
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # Written for speed (one Python call per acquire or release; the MLflow logger takes one on every
    # log_metrics): the main thread's depth is counted inline.

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        global _main_depth
        if _get_ident() != _MAIN_IDENT:
            return self._lock.acquire(blocking, timeout)
        # Counted before acquiring: a signal that lands while we wait must not flush behind our back.
        _main_depth += 1
        if self._lock.acquire(blocking, timeout):
            return True
        _leave_main()
        return False

    __enter__ = acquire

    def release(self, *_exc: object) -> None:
        global _main_depth
        self._lock.release()
        if _get_ident() == _MAIN_IDENT:
            _main_depth -= 1
            if _main_depth == 0 and _deferred_signal is not None:
                _run_deferred()

    __exit__ = release

    def _is_owned(self) -> bool:
        # What threading.Condition asks before notify(): held (by someone), without acquiring it to find out.
        return self._lock.locked()


def _leave_main() -> None:
    global _main_depth
    _main_depth -= 1
    if _main_depth == 0 and _deferred_signal is not None:
        _run_deferred()


def _run_deferred() -> None:
    global _deferred_signal
    if _deferred_signal is not None:
        signum, frame = _deferred_signal
        _deferred_signal = None
        _on_sigterm(signum, frame)


def register(writer: Flushable, late: bool = False) -> None:
    """Flush ``writer`` in the background from now on, and at exit or SIGTERM (after the others if ``late``)."""
    global _thread, _thread_pid
    with _lock:
        (_late_writers if late else _writers).add(writer)
        if not late and _resting:  # a local writer writes again: the mirrors have work again too
            _late_writers.update(_resting)
            _resting.clear()
        if _thread is None or _thread_pid != os.getpid() or not _thread.is_alive():
            _thread = _FlushThread()
            _thread_pid = os.getpid()
            _thread.start()
        _install_exit_hooks()


def unregister(writer: Flushable, wait: bool = True) -> None:
    """Stop flushing ``writer``; the flushing thread ends with the last writer (``register`` starts another).

    With ``wait=False`` that thread ends on its own within ``FLUSH_INTERVAL``: for a caller holding a lock that
    the writer's ``flush`` takes.
    """
    with _lock:
        _writers.discard(writer)
        _late_writers.discard(writer)
        _resting.discard(writer)
    if wait:
        _end_thread_if_idle()


def rest(writer: Flushable) -> None:
    """Stop flushing a late ``writer`` in the background until a local writer registers again (it has
    nothing to do until then); exit and SIGTERM still flush it."""
    with _lock:
        _late_writers.discard(writer)
        _resting.add(writer)
    _end_thread_if_idle()


def _end_thread_if_idle() -> None:
    with _lock:
        thread = _thread if not (_writers or _late_writers) else None
    if thread is not None and thread is not threading.current_thread():
        _wake.set()
        thread.join(timeout=1.0)


class Background:
    """A writer's place in background flushing: ``rest`` takes it out when everything is written
    (``finalize``: no thread is left behind), ``wake`` puts it back when something is written again.
    ``resting`` is a plain attribute, cheap to read on every write.

    Example:
        >>> class Writer:
        ...     def flush(self, force: bool = False) -> None:
        ...         pass
        >>> writer = Writer()
        >>> background = Background(writer)
        >>> background.rest()
        >>> background.resting
        True
        >>> background.wake()
        >>> background.resting
        False
        >>> unregister(writer)
    """

    __slots__ = ("_lock", "_writer", "resting")

    def __init__(self, writer: Flushable) -> None:
        self._writer = weakref.ref(writer)  # the writer holds this object: no cycle
        self._lock = threading.Lock()
        self.resting = False
        register(writer)

    def rest(self) -> None:
        with self._lock:
            writer = self._writer()
            if writer is not None:
                unregister(writer)
            self.resting = True

    def forked(self) -> None:
        """In a forked child: out of background flushing (the child's writer writes at once), with a fresh lock."""
        self._lock = threading.Lock()
        self.resting = True

    def wake(self) -> None:
        with self._lock:
            writer = self._writer()
            if self.resting and writer is not None:
                self.resting = False
                register(writer)


def flush_all(force: bool = True) -> None:
    for writer in [*_writers, *_late_writers, *_resting]:
        with contextlib.suppress(Exception):
            writer.flush(force=force)


def _flush_at_exit() -> None:
    """The last flush: the background thread stops first, so nothing is written after it (a staging folder
    removed once uploaded stays removed)."""
    global _exiting
    _exiting = True
    flush_all()


class _FlushThread(threading.Thread):
    """The flushing thread (``tracklight-flush``, a daemon). It ends with the last writer; :meth:`stop` ends it
    at once (a test suite's thread check, such as Lightning's, stops the daemon threads a test left behind)."""

    def __init__(self) -> None:
        super().__init__(target=_run, name="tracklight-flush", daemon=True)

    def stop(self) -> None:
        """End this thread; writers still registered are flushed at exit and when the next writer registers."""
        global _thread
        with _lock:
            if _thread is self:
                _thread = None
        _wake.set()
        if self is not threading.current_thread():
            self.join(timeout=1.0)


def _run() -> None:
    global _thread
    while True:
        _wake.wait(FLUSH_INTERVAL)
        with _lock:
            _wake.clear()
            if _thread is not threading.current_thread():
                return  # stopped, or replaced in a forked child
            # Nothing left to flush (or the exit's last flush ran): no tracklight thread outlives the last writer.
            if _exiting or not (_writers or _late_writers):
                _thread = None
                return
        # A flush that fails here is retried on the next tick and reported by the writer's own flush().
        flush_all(force=False)


def _install_exit_hooks() -> None:
    global _atexit_installed, _sigterm_installed
    if not _atexit_installed:
        _atexit_installed = True
        atexit.register(_flush_at_exit)
    # Only the main thread may install a handler; a writer created elsewhere leaves it to a later one.
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_installed = True
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: Any) -> None:
    """Flush, then die of SIGTERM as the process would have without us.

    When another handler wraps this one (Lightning's Trainer composes the handlers it finds), that
    handler decides what SIGTERM means, so after flushing we leave the process running.
    """
    global _deferred_signal
    if _main_depth > 0:
        _deferred_signal = (signum, frame)
        return
    flush_all()
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        # The process ends here, so writers that keep data somewhere else (delivery's spill file) say where.
        for writer in [*_writers, *_late_writers]:
            say = getattr(writer, "say_where_kept", None)
            if say is not None:
                with contextlib.suppress(Exception):
                    say()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _forget_parent_writers() -> None:
    """In a forked child: the parent's writers and their buffered data belong to the parent, not to us."""
    global _thread, _thread_pid, _main_depth, _deferred_signal, _lock, _MAIN_IDENT
    _writers.clear()
    _late_writers.clear()
    _resting.clear()
    _thread = _thread_pid = None
    _lock = threading.Lock()
    _MAIN_IDENT = threading.get_ident()
    _main_depth = 0
    _deferred_signal = None


os.register_at_fork(after_in_child=_forget_parent_writers)
