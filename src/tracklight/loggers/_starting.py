"""One lock per logger around its lazy start, so that threads making a logger's first call at once start one run.

A logger starts its run (creates a version folder, a W&B or Neptune run, a Comet experiment, MLflow's
delivery) on first use, from whichever thread calls first. Without a lock, threads calling at once each
saw "not started" and each started one: several runs, most left open, and a half-made Comet experiment
read by another thread. The lock is kept beside the logger (not in it), so pickling and copying a logger
are unchanged; a forked child gets fresh locks, as a lock held by a parent's thread would never be released.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["start_lock", "starts_once"]

_Method = TypeVar("_Method", bound=Callable[..., Any])

#: The lock of each live logger, by ``id()``: a plain dict is read in well under a microsecond on every call
#: (W&B's start runs before each ``log_metrics``); an entry goes when its logger is collected.
_locks: dict[int, threading.RLock] = {}
_guard = threading.Lock()

#: For a logger that cannot be weakly referenced (a subclass with ``__slots__``): one lock shared by all such
#: loggers, still one start each.
_shared = threading.RLock()


def start_lock(logger: Any) -> threading.RLock:
    """The re-entrant lock that guards ``logger``'s start (one per logger object)."""
    key = id(logger)
    lock = _locks.get(key)
    if lock is None:
        with _guard:
            lock = _locks.get(key)
            if lock is None:
                try:
                    weakref.finalize(logger, _locks.pop, key, None)  # runs before the id can be reused
                except TypeError:
                    return _shared
                lock = _locks[key] = threading.RLock()
    return lock


def starts_once(method: _Method) -> _Method:
    """Run ``method`` (a logger's lazy start: "the run, started when needed") under the logger's start lock."""

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with start_lock(self):
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


def _forget_locks() -> None:
    global _guard, _shared
    _locks.clear()
    _guard, _shared = threading.Lock(), threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks)
