"""Periodic flushing of buffered writers: at least once a second, at exit and on SIGTERM.

One daemon thread serves every open writer in the process. A writer registers itself and exposes
``flush(force: bool)``; it decides what a flush means (append buffered rows, rewrite a header...).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import weakref
from typing import Any, Protocol

#: Seconds between background flushes; a SIGKILL loses at most about this much logged data.
FLUSH_INTERVAL = 0.5


class Flushable(Protocol):
    def flush(self, force: bool = False) -> None: ...


_writers: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()
_thread: threading.Thread | None = None
_thread_pid: int | None = None
_hooks_installed = False


def register(writer: Flushable) -> None:
    """Flush ``writer`` in the background from now on, and at exit or SIGTERM."""
    global _thread, _thread_pid
    with _lock:
        _writers.add(writer)
        if _thread is None or _thread_pid != os.getpid() or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="tracklight-flush", daemon=True)
            _thread_pid = os.getpid()
            _thread.start()
        _install_exit_hooks()


def unregister(writer: Flushable) -> None:
    with _lock:
        _writers.discard(writer)


def flush_all(force: bool = True) -> None:
    for writer in list(_writers):
        with contextlib.suppress(Exception):
            writer.flush(force=force)


def _run() -> None:
    wake = threading.Event()
    while True:
        wake.wait(FLUSH_INTERVAL)
        # A flush that fails here is retried on the next tick and reported by the writer's own flush().
        for writer in list(_writers):
            with contextlib.suppress(Exception):
                writer.flush(force=False)


def _install_exit_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(flush_all)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: Any) -> None:
    """Flush, then die of SIGTERM as the process would have without us.

    When another handler wraps this one (Lightning's Trainer composes the handlers it finds), that
    handler decides what SIGTERM means, so after flushing we leave the process running.
    """
    flush_all()
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
