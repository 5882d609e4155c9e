"""What becomes of queued items that cannot be sent now: the spill file, the rejects file, or, when no disk
takes them, a count of what was lost.

A :class:`Keeper` belongs to one :class:`~tracklight.delivery.Delivery` and is called under its lock. For
a sink whose items can be written to disk they go to the spill file, which moves to the fallback folder
when its own cannot be written (said once); for a sink whose items cannot (SDK objects), they are kept
as text with the rejected items. When no disk takes them, the newest ``max_pending`` stay in memory, to
be delivered if the backend answers, and older ones are counted as lost, by kind, and said once.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter, deque
from collections.abc import Iterable

from tracklight._errors import TracklightWarning, warn
from tracklight.delivery.spill import Item, SpillFile, fallback_dir

__all__ = ["DiskTrouble", "Keeper"]


class Keeper:
    """Keeps queued items for ``destination`` in ``spill`` (or its rejects, when ``spillable`` is false)."""

    def __init__(self, spill: SpillFile, destination: str, spillable: bool, max_pending: int) -> None:
        self.disk = DiskTrouble()
        self._spill = spill
        self._destination = destination
        self._spillable = spillable
        self._max_pending = max_pending

    def keep(self, pending: deque[Item], force: bool = False) -> bool:
        """Move ``pending`` out of memory; whether it is empty now. Never raises. Without ``force``, a disk that
        failed is tried again at most once a second."""
        if not pending or (not force and not self.disk.may_try()):
            self.disk.trim(pending, self._max_pending, self._destination)
            return not pending
        if not self._spillable:
            self.reject_all(pending, "not delivered before delivery closed")
        else:
            moved_before = self._spill.moved_from
            try:
                self._spill.append(pending)
            except OSError as error:
                self.disk.failed(error, self._spill.path)
                self.disk.trim(pending, self._max_pending, self._destination)
                return False
            if self._spill.moved_from is not None and moved_before is None:
                warnings.warn(
                    f"Could not write the spill file {self._spill.moved_from} ({self._spill.move_error}); what "
                    f"{self._destination} cannot take yet is kept in {self._spill.path} instead.",
                    TracklightWarning,
                    stacklevel=4,
                )
        pending.clear()
        return True

    def reject_all(self, items: Iterable[Item], reason: str) -> None:
        for item in items:
            self.reject(item, reason)

    def reject(self, item: Item, reason: str, line: int | None = None) -> None:
        """Keep ``item`` with the reason beside the spill file; counted as lost when no disk takes it."""
        try:
            self._spill.reject(item, reason, line)
        except OSError as error:
            self.disk.lose(item, error, self._spill.rejected_path)

    def lose_the_rest(self, pending: deque[Item]) -> None:
        """At close, what no disk took is lost when the process ends: count it."""
        self.disk.trim(pending, 0, self._destination)


class DiskTrouble:
    """What delivery does when no disk takes its spill file (neither its folder nor the fallback).

    The newest items stay in memory, up to a bound, so they can still be delivered when the backend answers;
    older ones are counted as lost, by kind, and said once. Writing is tried again at most once a second.
    """

    def __init__(self) -> None:
        self.lost: Counter[str] = Counter()
        self.reason: str | None = None
        self._retry_at = 0.0
        self._said = False

    def may_try(self) -> bool:
        return time.monotonic() >= self._retry_at

    def failed(self, error: OSError, path: str) -> None:
        self.reason = f"{path}: {type(error).__name__}: {error}"
        self._retry_at = time.monotonic() + 1.0

    def trim(self, pending: deque[Item], limit: int, destination: str) -> None:
        """Drop the oldest items beyond ``limit`` from ``pending``, counting them."""
        excess = len(pending) - limit
        if excess <= 0 or self.reason is None:
            return
        for _ in range(excess):
            self.lost[pending.popleft()["kind"]] += 1
        self._say(destination)

    def lose(self, item: Item, error: OSError, path: str) -> None:
        self.reason = f"{path}: {type(error).__name__}: {error}"
        self.lost[str(item.get("kind"))] += 1
        self._say("the rejects file")

    def _say(self, destination: str) -> None:
        if not self._said:
            self._said = True
            warn(
                f"No disk takes what {destination} cannot take yet ({self.reason}, and the fallback folder "
                f"{fallback_dir()} failed too). The newest values wait in memory; older ones are lost from now on "
                "and counted in the final report. Free some space or fix the permissions."
            )
