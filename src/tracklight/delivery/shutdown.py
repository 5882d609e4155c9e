"""Every live delivery is closed when the interpreter shuts down, so what is queued ends up delivered or kept.

Two moments: ``atexit`` for every delivery (what was never finalized), and, for a delivery whose backend
is an SDK that ends its run in its own exit hook, a ``threading`` exit hook registered right after the
SDK object was made. ``threading``'s hooks run before any ``atexit`` hook, last registered first, so the
queue reaches the run before the SDK ends it (W&B and Neptune end theirs in ``atexit``, Comet in
``threading``'s).

And a second Ctrl-C ends a wait for delivery (:func:`interruptible`). In a plain loop Ctrl-C raises
``KeyboardInterrupt`` wherever the wait is; but Lightning's ``Trainer``, on the first Ctrl-C, ignores SIGINT
and then calls ``finalize`` itself, so the wait there could not be cut short.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracklight.delivery.worker import Delivery

__all__ = ["EXIT_TIMEOUT", "close_before_exit", "interruptible", "track"]

#: Seconds ``close()`` waits for delivery at interpreter exit for a logger that was never finalized.
EXIT_TIMEOUT = 10.0

_live: weakref.WeakSet[Delivery] = weakref.WeakSet()


def track(delivery: Delivery) -> None:
    """Close ``delivery`` at exit if it still has work then."""
    _live.add(delivery)


def close_before_exit(delivery: Delivery) -> None:
    """Close ``delivery`` when the interpreter shuts down, before the exit hooks registered until now."""
    reference = weakref.ref(delivery)

    def close() -> None:
        alive = reference()
        if alive is not None:
            _close(alive)

    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError("no threading exit hooks")
        register(close)
    except RuntimeError:  # shutting down already, or another Python: atexit is the next best
        atexit.register(close)


@contextlib.contextmanager
def interruptible() -> Iterator[threading.Event]:
    """While the block runs on the main thread with Ctrl-C ignored (SIGINT set to ``SIG_IGN``, as Lightning sets it
    after a first Ctrl-C), a Ctrl-C sets the event it yields, for the wait in the block to end at once. Elsewhere
    nothing changes: a Ctrl-C that raises ``KeyboardInterrupt`` still does."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return
    try:
        ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    except ValueError:  # no signals in this interpreter
        ignored = False
    if not ignored:
        yield interrupted
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        interrupted.set()

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield interrupted
    finally:
        with contextlib.suppress(ValueError):  # put back as it was: Lightning goes on shutting down
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@atexit.register
def _close_all() -> None:
    for delivery in list(_live):
        _close(delivery)


def _close(delivery: Delivery) -> None:
    try:
        if not delivery.has_work_at_exit():
            return  # finalized (and reported) already, or nothing to send
        report = delivery.close(EXIT_TIMEOUT)
        if not report.complete:
            print(f"tracklight: {report}", file=sys.stderr)
    except Exception as error:  # exiting anyway: say what happened, never raise from an exit hook
        print(f"tracklight: could not finish delivery to {delivery.sink.describe()}: {error}", file=sys.stderr)
