"""Handing batches to a sink, and what becomes of the items it refuses or fails on for good.

Runs on a :class:`~tracklight.delivery.Delivery`'s worker thread. A batch the sink refuses for good
(``is_permanent``) is halved until the bad items are found; an item an SDK sink fails on
(:class:`~tracklight.delivery.batch.ItemFailed`) is set apart after the ones it took. Either way the
item is kept, with the reason, beside the spill file, and the rest is sent.
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter
from typing import TYPE_CHECKING

from tracklight._errors import TracklightWarning
from tracklight.delivery.batch import ItemFailed, Sink, batch_size
from tracklight.delivery.spill import Item, SpillFile

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["WEIGHT", "Sender", "describe_item"]

#: The item field that says how much of ``max_pending`` a heavy item (an image) takes; 1 when absent.
WEIGHT = "_weight"


class Sender:
    """Sends batches to ``sink`` and counts what it took (``delivered``); ``lock`` guards ``spill`` and the count."""

    def __init__(self, sink: Sink, spill: SpillFile, lock: threading.Condition) -> None:
        self.sink = sink
        self.delivered: Counter[str] = Counter()
        self._spill = spill
        self._lock = lock
        self._said_lost = False

    def deliver(self, items: list[Item]) -> None:
        """Send ``items``; when the backend refuses them for good, halve the batch to find and keep the bad ones."""
        try:
            self.sink.send(items)
        except ItemFailed as failed:
            self._lost(items, failed)
            return
        except Exception as error:
            if not self.sink.is_permanent(error):
                raise
            if len(items) > 1:
                middle = len(items) // 2
                self.deliver(items[:middle])
                self.deliver(items[middle:])
                return
            with self._lock:
                self._spill.reject(items[0], f"{type(error).__name__}: {error}")
            warnings.warn(
                f"{self.sink.describe()} refused a {items[0]['kind']} ({describe_item(items[0])}): {error}. "
                f"It is kept in {self._spill.rejected_path}.",
                TracklightWarning,
                stacklevel=2,
            )
            return
        with self._lock:
            self.delivered.update(item["kind"] for item in items)

    def replay(self, start: int, end: int, going_on: Callable[[], bool]) -> None:
        """Send the spill file's items from ``start`` in batches, committing the offset after each one, while
        ``going_on()``."""
        entries = self._spill.read(start, end, 10 * self.sink.max_items)
        index = 0
        while index < len(entries) and going_on():
            rest = [item for item, _ in entries[index:]]
            # Control lines (``_target``, broken lines) are not sent; they are passed over with the batch.
            positions = [at for at, item in enumerate(rest) if not str(item.get("kind", "_")).startswith("_")]
            if not positions:
                with self._lock:
                    self._spill.commit(entries[-1][1], Counter())
                return
            real = [rest[at] for at in positions]
            taken = batch_size(real, self.sink.limits, self.sink.max_items, self.sink.max_bytes)
            self.deliver(real[:taken])
            last = index + positions[taken - 1]
            with self._lock:
                self._spill.commit(entries[last][1], Counter(item["kind"] for item in real[:taken]))
            index = last + 1

    def _lost(self, items: list[Item], failed: ItemFailed) -> None:
        """The sink took ``items`` up to ``failed.index`` and failed on that one for good: keep it (as text, with
        the reason) beside the spill file, say so the first time, and send the rest."""
        done, item, rest = items[: failed.index], items[failed.index], items[failed.index + 1 :]
        error = failed.error
        with self._lock:
            self.delivered.update(entry["kind"] for entry in done)
            self._spill.reject(item, f"{type(error).__name__}: {error}")
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
