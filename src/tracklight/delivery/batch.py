"""What background delivery needs from a backend (:class:`Sink`), how batches are cut, and the report."""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tracklight.delivery.spill import UNREADABLE, Item

__all__ = ["DeliveryReport", "ItemFailed", "Sink", "batch_size"]


class Sink(Protocol):
    """What a backend provides to be delivered to. ``send`` raises when the backend did not take the items.

    A sink may also set ``spillable = False`` when its items cannot be written to disk (they hold SDK
    objects, such as images): a full queue then slows the caller down instead of spilling, and what is
    still queued when delivery closes is kept as text with the rejected items.
    """

    @property
    def factory(self) -> str:
        """``"tracklight.module:function"`` that rebuilds the sink from :meth:`target` (for the replay command)."""
        ...

    @property
    def limits(self) -> Mapping[str, int]:
        """Kinds that can share one request, with the most of each per request. Other kinds are sent alone."""
        ...

    @property
    def max_items(self) -> int:
        """The most items in one request."""
        ...

    @property
    def max_bytes(self) -> int:
        """The most bytes (as :func:`batch_size` estimates them) in one request."""
        ...

    def describe(self) -> str:
        """Where items go, for messages (``"MLflow at http://host:5000"``), without secrets."""
        ...

    def target(self) -> dict[str, Any]:
        """JSON-able description of where items go (server, run); written into the spill file."""
        ...

    def open(self) -> None:
        """Make the destination exist (create the run). Called until it succeeds, before any ``send``."""
        ...

    def send(self, items: list[Item]) -> None:
        """Deliver one batch: batchable kinds within ``limits``, or one item of another kind."""
        ...

    def is_permanent(self, error: BaseException) -> bool:
        """Whether ``error`` means the backend refuses these items for good (retrying cannot help)."""
        ...


class ItemFailed(Exception):
    """Raised by :meth:`Sink.send` when it took ``items[:index]`` and failed for good on ``items[index]``.

    For sinks that hand items one by one to an SDK: what was taken cannot be sent again, and the item
    that failed would fail again. Delivery keeps that item, says so once, and sends the rest.
    """

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(f"item {index}: {type(error).__name__}: {error}")
        self.index = index
        self.error = error


@dataclass
class DeliveryReport:
    """What happened to the items given to a :class:`Delivery`.

    ``kept`` items wait in the spill file (``spill_path``) for :attr:`command`; ``rejected`` ones were refused
    for good, or could not be read back, and wait with the reason in ``rejected_path``; ``lost`` ones could be
    kept nowhere (no disk would take them), for the reason in ``lost_reason``.
    """

    destination: str
    delivered: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    queued: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    spill_path: str | None = None
    rejected_path: str | None = None
    last_error: str | None = None
    lost: Counter[str] = field(default_factory=Counter)
    lost_reason: str | None = None

    @property
    def complete(self) -> bool:
        """Everything was delivered: nothing kept on disk, nothing refused, nothing lost."""
        return not self.kept and not self.queued and not self.rejected and not self.lost

    @property
    def command(self) -> str | None:
        """The command that sends the kept items later, or ``None`` when nothing is kept."""
        if not self.kept or self.spill_path is None:
            return None
        return f"python -m tracklight.delivery replay {shlex.quote(self.spill_path)}"

    def __str__(self) -> str:
        if self.complete:
            return f"Delivered everything to {self.destination} ({_count(self.delivered) or 'nothing to send'})."
        parts = []
        if self.kept:
            parts.append(
                f"{_count(self.kept)} could not be delivered to {self.destination} and are kept in "
                f"{self.spill_path}. Send them later with: {self.command}"
            )
        if self.queued:
            parts.append(f"{_count(self.queued)} are still queued for {self.destination}.")
        refused = Counter({kind: count for kind, count in self.rejected.items() if kind != UNREADABLE})
        if refused:
            parts.append(
                f"{_count(refused)} were refused by {self.destination} and are kept, with the reason, in "
                f"{self.rejected_path}"
            )
        if self.rejected[UNREADABLE]:
            parts.append(
                f"{_count(Counter({UNREADABLE: self.rejected[UNREADABLE]}))} of the spill file could not be read "
                f"and are kept, with the reason, in {self.rejected_path}."
            )
        if self.lost:
            parts.append(f"{_count(self.lost)} were lost: no disk would keep them ({self.lost_reason}).")
        if self.last_error and (self.kept or self.queued):
            parts.append(f"Last error: {self.last_error}")
        return " ".join(parts)


def _count(counter: Counter[str]) -> str:
    return ", ".join(f"{number} {kind}{'' if number == 1 else 's'}" for kind, number in sorted(counter.items()))


def batch_size(
    items: Iterable[Item], limits: Mapping[str, int], max_items: int, max_bytes: int, first_alone: bool = False
) -> int:
    """How many items from the front of ``items`` fit in one request.

    Batchable kinds (those in ``limits``) are taken in order until a kind's limit, ``max_items`` or
    ``max_bytes`` would be exceeded, or an item of another kind comes; an item of another kind goes alone.
    """
    counts: Counter[str] = Counter()
    size = taken = 0
    for item in items:
        kind = item["kind"]
        if kind not in limits or first_alone:
            return taken or 1
        if counts[kind] >= limits[kind] or taken >= max_items:
            break
        # A cheap estimate: field names and numbers cost about 64 bytes, strings their length.
        cost = 64 + sum(len(value) for value in item.values() if isinstance(value, str))
        if taken and size + cost > max_bytes:
            break
        counts[kind] += 1
        size += cost
        taken += 1
    return taken
