"""Whether the backend answers: opened or not, since when it fails, when to try next, whether it was said."""

from __future__ import annotations

import time

__all__ = ["Outage"]


class Outage:
    """How the backend has answered. Waits between attempts double from 0.5 s up to ``backoff_max`` (1 s at
    most while someone waits for delivery); the first failure of each outage is said once."""

    def __init__(self, backoff_max: float) -> None:
        self.backoff_max = backoff_max
        self.opened = False  # the sink was opened (for MLflow: the run exists)
        self.open_attempts = 0  # attempts to open, failed or not
        self.since: float | None = None
        self.next_attempt = 0.0
        self.last_error: str | None = None
        self._failures = 0
        self._said = False

    @property
    def failing(self) -> bool:
        return self.since is not None

    def unreached(self, attempts_before: int) -> bool:
        """The sink never opened, and the attempts made since ``attempts_before`` failed too: the quick retry a
        wait asks for when one had failed before, else the first attempt and one retry. (A retry that hangs is
        bounded by the sink's own request timeout.)"""
        return not self.opened and self.open_attempts >= max(attempts_before + 1, 2)

    def failed(self, error: BaseException, waited_for: bool, opening: bool) -> bool:
        """Record a failed attempt; whether it is the first of this outage (to be said)."""
        now = time.monotonic()
        self.open_attempts += opening
        self.last_error = f"{type(error).__name__}: {error}"
        if self.since is None:
            self.since = now
        self._failures += 1
        longest = min(self.backoff_max, 1.0) if waited_for else self.backoff_max
        self.next_attempt = now + min(longest, 0.25 * 2**self._failures)
        first, self._said = not self._said, True
        return first

    def ended(self, opening: bool) -> None:
        """The backend answered: the next outage is said again."""
        if opening:
            self.opened = True
            self.open_attempts += 1
        self.since = None
        self._failures = 0
        self.next_attempt = 0.0
        self._said = False

    def message(self, destination: str, spill_path: str) -> str:
        return (
            f"{destination} is not answering ({self.last_error}). Training goes on: logged values are queued, "
            f"retried in the background and kept in {spill_path} while it stays down."
        )
