"""The one exception root of tracklight, and the warning category it uses."""

from __future__ import annotations


class TracklightError(Exception):
    """Base class of every error tracklight raises on purpose."""


class MissingDependencyError(TracklightError, ImportError):
    """An optional package a logger needs is not installed; the message names the extra to install."""


class TracklightWarning(UserWarning):
    """Warnings tracklight emits: converted hyperparameters, media a backend cannot show, failed backends."""


class InvalidMetricError(TracklightError, ValueError):
    """A logged metric value is not a number; the message names the key."""
