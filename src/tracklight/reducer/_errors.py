"""Errors of the metric reducer; every message names the key and the fix."""

from __future__ import annotations

from tracklight._errors import InvalidMetricError, TracklightError

__all__ = ["InvalidMetricError", "LoggingMisuseError", "SyncMismatchError"]


class LoggingMisuseError(TracklightError, ValueError):
    """``log()`` was called in a way that cannot work (bad flags, a hook that cannot log, the same key twice
    with different arguments); the message names the key and the fix.

    Under the Lightning opt-in the error raised is also a Lightning ``MisconfigurationException``, so code
    that catches Lightning's error keeps working.
    """


class SyncMismatchError(TracklightError, RuntimeError):
    """The ranks logged different ``sync_dist`` keys, so their values cannot be reduced together; the message
    names the keys each rank is missing. Raised on every rank instead of hanging in a collective."""
