"""Strictly increasing steps per Neptune series.

Neptune's server rejects a value whose step is not greater than the series' last step; in async mode
the rejection is only printed from a background thread and the value is gone. Lightning produces
such steps routinely: ``epoch`` goes with every ``log_metrics`` call at the same global step,
``trainer.validate`` after ``fit`` logs at the step fit ended on, and a run resumed from a checkpoint
logs again steps it had already logged. Every value is therefore given a step Neptune accepts here,
before it is sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tracklight._errors import warn

#: How far past the last step a value logged at a repeated or earlier step is placed.
NUDGE = 1e-6


class SeriesSteps:
    """The last step (and value) of each series, and the step the next value of a series gets.

    Example:
        >>> steps = SeriesSteps()
        >>> steps.next("training/loss", 5, 0.3)
        5
        >>> steps.next("training/epoch", 5, 0) , steps.next("training/epoch", 5, 0)  # a repeat is stored once
        (5, None)
    """

    def __init__(self, owner: str = "NeptuneLogger") -> None:
        self._owner = owner
        self._last: dict[str, tuple[float, Any]] = {}
        self._warned: set[str] = set()

    def next(
        self,
        path: str,
        step: float | None,
        value: Any = None,
        known_last: Callable[[str], float | None] | None = None,
        quiet: bool = False,
    ) -> float | None:
        """The step to log ``value`` at in series ``path``, or ``None`` when it repeats the last entry exactly.

        ``step=None`` continues the series (last step + 1, or 0). A step that is not after the last one
        is moved just past it, with one warning per series; no value is dropped unless it is the same
        value at the same step as the entry before it. ``known_last(path)`` gives the last step a
        series already had before this logger wrote to it (a resumed run), and is asked once per series.
        ``quiet`` moves a step without a warning: for the parts of one call (a batch of images, a long text).
        """
        if path not in self._last and known_last is not None:
            before = known_last(path)
            if before is not None:
                self._last[path] = (before, _NO_VALUE)
        last = self._last.get(path)
        if step is None:
            step = 0 if last is None else math.floor(last[0]) + 1
        elif last is not None and step <= last[0]:
            if step == last[0] and value is not None and _same(value, last[1]):
                return None
            moved = max(last[0] + NUDGE, math.nextafter(last[0], math.inf))
            if not quiet:
                self._warn(path, step, last[0], moved)
            step = moved
        self._last[path] = (step, value)
        return step

    def _warn(self, path: str, step: float, last: float, moved: float) -> None:
        if path in self._warned:
            return
        self._warned.add(path)
        relation = "again" if step == last else f"after step {last:g}"
        warn(
            f"{self._owner}: {path!r} got a value at step {step:g} {relation}. Neptune only accepts increasing "
            f"steps in a series, so it was logged at step {moved!r} instead (and so are later values of this "
            "series that do not come after its last step; this is reported once per series). Log each series "
            "with increasing steps, e.g. trainer.global_step, to keep the steps you gave."
        )


class _NoValue:
    pass


_NO_VALUE = _NoValue()


def _same(value: Any, other: Any) -> bool:
    try:
        return bool(value == other)
    except Exception:
        return False
