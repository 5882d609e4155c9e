"""What the W&B, Comet and Neptune loggers share: their values go to the SDK through :mod:`tracklight.delivery`.

The calling thread converts values (numbers, sanitized hyperparameters, media) and queues them; one
worker thread hands them to the SDK object, in the order they were logged. Three rules keep that order
and the SDK's own exit in step:

* before the SDK object is handed to the user (``logger.experiment``), everything queued is delivered,
  so the user's own calls come after the values logged before them (:meth:`SdkDelivery.wait`);
* right after the logger makes an SDK object, delivery is set to finish before the SDK's exit hook ends
  that run (:meth:`SdkDelivery.attached`);
* ``finalize`` waits, bounded, until the queue is empty and then stops the worker
  (:meth:`SdkDelivery.finish`); the run itself stays open, as with Lightning's loggers.

An SDK object that is a ``unittest.mock`` object (a test suite stubbed the SDK, as Lightning's own tests
do) gets each item on the calling thread before the logging call returns, with no worker thread, so the
suite's ``assert_called_with`` right after ``log_metrics`` holds as it does with Lightning's loggers, and its
thread checks find nothing left behind; a mock does no I/O, so a worker would gain nothing.

Each backend's sink (``wandb.sink``, ``comet.sink``, ``neptune.sink``) subclasses :class:`SdkSink` and
says how one item is handed to its SDK.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tracklight._errors import warn
from tracklight._imports import is_mock, is_stubbed
from tracklight.delivery.batch import ItemFailed

if TYPE_CHECKING:
    from tracklight.delivery import Delivery, DeliveryReport

__all__ = ["DEFAULT_TIMEOUT", "SdkDelivery", "SdkSink", "media_weight"]

#: Seconds ``finalize`` (and ``experiment``) wait for the queue to reach the SDK.
DEFAULT_TIMEOUT = 60.0
#: Items (or KiB of media) queued at most before logging waits for the SDK to catch up.
MAX_PENDING = 20_000
#: Seconds the worker waits for more items before handing over a batch that is not full.
LINGER = 0.05
#: The item field listing files and folders tracklight made for the item, removed once it was handed over.
REMOVE = "remove"


class SdkSink:
    """The :class:`~tracklight.delivery.Sink` of an SDK logger: items go to the SDK object one by one.

    Nothing is written to disk (items hold SDK objects): when the SDK falls behind, logging waits. An
    SDK call that raises is not retried (the SDK keeps its own queue and retries the network itself): the
    item is kept as text beside the other delivery files and reported once, and the rest goes on.
    """

    factory = ""  # nothing is spilled, so nothing is replayed
    sdk = ""  # the SDK's package (``wandb``...): a stub of it in ``sys.modules`` is called on the calling thread
    spillable = False
    limits: dict[str, int] = {}
    max_items = 100
    max_bytes = 64 * 1024 * 1024

    def describe(self) -> str:
        raise NotImplementedError

    def target(self) -> dict[str, Any]:
        return {}

    def open(self) -> None:
        """The logger made the SDK object already, on the calling thread."""

    def send(self, items: list[dict[str, Any]]) -> None:
        for index, item in enumerate(items):
            try:
                self.send_one(item)
            except Exception as error:
                raise ItemFailed(index, error) from error
            finally:
                remove(item.get(REMOVE, ()))

    def send_one(self, item: dict[str, Any]) -> None:
        """Hand one item to the SDK."""
        raise NotImplementedError

    def is_permanent(self, error: BaseException) -> bool:
        return True


class SdkDelivery:
    """One SDK logger's queue and worker.

    Args:
        owner: The logger's class name, for messages.
        sink: Where items go.
        directory: Where items the SDK could not take are kept (as text, with the reason), and files staged for
            the worker (checkpoints) wait.
        timeout: Seconds :meth:`wait` and :meth:`finish` wait at most.
        sync_hint: What to run to send what the SDK keeps (offline runs), for ``finalize``'s message.
    """

    def __init__(
        self, owner: str, sink: SdkSink, directory: str, timeout: float = DEFAULT_TIMEOUT, sync_hint: str = ""
    ) -> None:
        from tracklight.delivery import Delivery

        self.owner = owner
        self.sink = sink
        self.directory = directory
        self.timeout = timeout
        self.sync_hint = sync_hint
        self.report: DeliveryReport | None = None
        spill = os.path.join(directory, f"{owner.lower()}-delivery.jsonl")
        self._delivery: Delivery = Delivery(sink, spill, max_pending=MAX_PENDING, linger=LINGER)

    def put(self, item: dict[str, Any], weight: int = 1) -> None:
        self._delivery.put(item, weight)

    @property
    def backlog(self) -> int:
        """Items queued in memory for the worker: at most ``MAX_PENDING`` (logging waits beyond that)."""
        return self._delivery.backlog

    def attached(self, sdk_object: Any) -> None:
        """The logger just made ``sdk_object``: deliver what is queued before the SDK's exit hook ends it, and, when
        it is a mock (or the SDK a stub), hand each item to it on the calling thread before :meth:`put` returns."""
        self._delivery.inline = is_mock(sdk_object) or is_stubbed(self.sink.sdk)
        self._delivery.close_before_exit()

    def wait(self) -> None:
        """Deliver everything queued (for at most ``timeout`` seconds) before the caller uses the SDK object."""
        if self._delivery.idle:
            return
        report = self._delivery.drain(self.timeout)
        if report.queued:
            warn(
                f"{self.owner}: values logged earlier are still on their way to the SDK after {self.timeout:.0f} s "
                f"({report}); what you log through `experiment` now may reach it before them."
            )

    def finish(self) -> DeliveryReport:
        """Wait until the queue is delivered (bounded, with progress on stderr after 2 s), then stop the worker.

        When the SDK has not taken everything in time, the worker keeps going in the background and the
        warning says what is left; at exit tracklight waits once more before the SDK ends the run.
        """
        report = self._delivery.drain(self.timeout)
        if report.complete or not report.queued:
            report = self._delivery.close(0)
        self.report = report
        if not report.complete:
            parts = [f"{self.owner}: {report}"]
            if report.queued:
                parts.append(
                    f"They are still being handed to the SDK in the background; at exit tracklight waits up to "
                    f"{_exit_timeout():.0f} s more, and keeps what is left, as text, in {report.rejected_path}."
                )
            if self.sync_hint:
                parts.append(f"What the SDK has is kept by it: {self.sync_hint}")
            warn(" ".join(parts))
        return report


def media_weight(size: int) -> int:
    """How much of the queue a media item of ``size`` bytes takes: its size in KiB (at least 1)."""
    return max(1, size // 1024)


def remove(paths: Iterable[str]) -> None:
    """Remove files and folders tracklight made for an item (temporary media, staged checkpoints)."""
    for path in paths:
        with contextlib.suppress(OSError):
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def _exit_timeout() -> float:
    from tracklight.delivery.shutdown import EXIT_TIMEOUT

    return EXIT_TIMEOUT
