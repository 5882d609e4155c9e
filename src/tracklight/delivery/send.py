"""Handing batches to a sink, and what becomes of the items it refuses or fails on for good.

Runs on a :class:`~tracklight.delivery.Delivery`'s worker thread. A batch the sink refuses for good
(``is_permanent``) is halved until the bad items are found, unless the sink says the refusal is about the
destination rather than the items (``refuses_everything``: an MLflow run deleted meanwhile), when the whole
batch is set aside at once and that is said once; an item an SDK sink fails on
(:class:`~tracklight.delivery.batch.ItemFailed`) is set apart after the ones it took; a spill file line
that cannot be read back is set apart with its line number. Either way the item is kept, with the
reason, beside the spill file (counted as lost when no disk takes it), and the rest is sent.
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter
from typing import TYPE_CHECKING

from tracklight._errors import TracklightWarning
from tracklight.delivery.batch import ItemFailed, Sink, batch_size
from tracklight.delivery.spill import UNREADABLE, Item, SpillFile

if TYPE_CHECKING:
    from collections.abc import Callable

    from tracklight.delivery.keep import Keeper

__all__ = ["WEIGHT", "Sender", "describe_item"]

#: The item field that says how much of ``max_pending`` a heavy item (an image) takes; 1 when absent.
WEIGHT = "_weight"


class Sender:
    """Sends batches to ``sink`` and counts what it took (``delivered``); ``lock`` guards ``spill`` and the count."""

    def __init__(self, sink: Sink, spill: SpillFile, lock: threading.Condition, keeper: Keeper) -> None:
        self.sink = sink
        self.delivered: Counter[str] = Counter()
        self._spill = spill
        self._lock = lock
        self._keeper = keeper
        self._said_lost = False
        self._said_refusing: set[str] = set()

    def deliver(self, items: list[Item], lines: dict[int, int] | None = None) -> None:
        """Send ``items``; when the backend refuses them for good, halve the batch to find and keep the bad ones.

        ``lines`` maps ``id(item)`` to its line in the spill file, for the message.
        """
        try:
            self.sink.send(items)
        except ItemFailed as failed:
            self._lost(items, failed)
            return
        except Exception as error:
            if not self.sink.is_permanent(error):
                raise
            everything = getattr(self.sink, "refuses_everything", None)
            reason = everything(error) if everything is not None else None
            if reason is not None:
                self._refused_everything(items, reason, lines or {})
                return
            if len(items) > 1:
                middle = len(items) // 2
                self.deliver(items[:middle], lines)
                self.deliver(items[middle:], lines)
                return
            self._set_aside(items[0], f"{type(error).__name__}: {error}", (lines or {}).get(id(items[0])))
            return
        with self._lock:
            self.delivered.update(item["kind"] for item in items)

    def replay(self, start: int, end: int, epoch: int, going_on: Callable[[], bool]) -> None:
        """Send the spill file's items from ``start`` in batches, committing the offset after each one, while
        ``going_on()``.

        Control lines (``_target``) are passed over; unreadable lines are set aside (with their line numbers)
        once the batch around them is delivered, so a failed send does not set them aside twice.
        """
        entries = self._spill.read(start, end, 10 * self.sink.max_items)
        index = 0
        while index < len(entries) and going_on():
            rest = entries[index:]
            sendable = [at for at, (item, _, _) in enumerate(rest) if not item["kind"].startswith("_")]
            real = [rest[at][0] for at in sendable]
            taken = batch_size(real, self.sink.limits, self.sink.max_items, self.sink.max_bytes) if real else 0
            span = rest[: sendable[taken - 1] + 1] if taken else rest
            if taken:
                self.deliver(real[:taken], {id(item): line for item, _, line in span if line is not None})
            unreadable = [(item, line) for item, _, line in span if item["kind"] == "_unreadable"]
            for item, line in unreadable:
                self._set_aside(item, item["error"], line)
            with self._lock:
                if epoch != self._spill.epoch:
                    return  # the file moved meanwhile: the next round starts from its new offset
                done = Counter(item["kind"] for item in real[:taken])
                if unreadable:
                    done[UNREADABLE] += len(unreadable)
                self._spill.commit(span[-1][1], done, len(span))
            index += len(span)

    def _set_aside(self, item: Item, reason: str, line: int | None) -> None:
        """Keep an item that can never be delivered (or an unreadable line) in the rejects file, and say so."""
        kept = {"kind": UNREADABLE, "text": item.get("text")} if item["kind"] == "_unreadable" else item
        with self._lock:
            self._keeper.reject(kept, reason, line)
            place = f"line {line} of {self._spill.path}" if line is not None else None
            where = self._spill.rejected_path
        if item["kind"] == "_unreadable":
            message = f"{place or 'A line of the spill file'} cannot be read: {reason}. It is kept in {where}."
        else:
            origin = f" ({place})" if place else ""
            # The item and why it cannot be taken: the backend answers, so "not answering" would mislead.
            message = (
                f"A {item['kind']}{origin} cannot be delivered to {self.sink.describe()} ({describe_item(item)}): "
                f"{reason}. It is kept in {where}; the rest is delivered."
            )
        warnings.warn(message, TracklightWarning, stacklevel=2)

    def _refused_everything(self, items: list[Item], reason: str, lines: dict[int, int]) -> None:
        """The destination refuses every item (not these ones): keep the batch, with the reason, in the rejects
        file, and say so the first time (one batch after another is refused: a warning per value helps nobody)."""
        with self._lock:
            for item in items:
                self._keeper.reject(item, reason, lines.get(id(item)))
            first = reason not in self._said_refusing
            self._said_refusing.add(reason)
            where = self._spill.rejected_path
        if first:
            warnings.warn(
                f"{self.sink.describe()} takes nothing more: {reason}. Training goes on; what is logged from now on "
                f"is kept, with the reason, in {where} (the report of finalize counts it; this is said once).",
                TracklightWarning,
                stacklevel=2,
            )

    def _lost(self, items: list[Item], failed: ItemFailed) -> None:
        """The sink took ``items`` up to ``failed.index`` and failed on that one for good: keep it (as text, with
        the reason) beside the spill file, say so the first time, and send the rest."""
        done, item, rest = items[: failed.index], items[failed.index], items[failed.index + 1 :]
        error = failed.error
        with self._lock:
            self.delivered.update(entry["kind"] for entry in done)
            self._keeper.reject(item, f"{type(error).__name__}: {error}")
            first = not self._said_lost
            self._said_lost = True
        if first:
            warnings.warn(
                f"{self.sink.describe()} could not take a {item['kind']} ({describe_item(item)}): "
                f"{type(error).__name__}: {error}. Training goes on. It is kept, with the reason, in "
                f"{self._spill.rejected_path}, as is anything else it cannot take (the report of finalize counts "
                "them; this is said once).",
                TracklightWarning,
                stacklevel=2,
            )
        if rest:
            self.deliver(rest)


def describe_item(item: Item) -> str:
    """An item's fields for a message (at most 200 characters)."""
    shown = {key: value for key, value in item.items() if key not in ("kind", WEIGHT)}
    text = ", ".join(f"{key}={value!r}" for key, value in shown.items())
    return text if len(text) <= 200 else text[:197] + "..."
