"""The one exception root of tracklight, and the warning category it uses."""

from __future__ import annotations


class TracklightError(Exception):
    """Base class of every error tracklight raises on purpose."""


class MissingDependencyError(TracklightError, ImportError):
    """An optional package a logger needs is not installed; the message names the extra to install.

    A message names an extra as ``pip install 'tracklight[X]'``; the error shows the command that works for
    this install instead (``pip install -e '/path/to/clone[X]'`` from a clone: see ``tracklight._install``).
    """

    def __init__(self, *args: object, **kwargs: str | None) -> None:
        from tracklight._install import fix_install_commands

        if args and isinstance(args[0], str):
            args = (fix_install_commands(args[0]), *args[1:])
        super().__init__(*args, **kwargs)


class TracklightWarning(UserWarning):
    """Warnings tracklight emits: converted hyperparameters, media a backend cannot show, failed backends."""


class InvalidMetricError(TracklightError, ValueError):
    """A logged metric value is not a number; the message names the key."""


class UnsafePathError(TracklightError, ValueError):
    """A logger argument or metric key would put files outside the logger's ``save_dir``; the message names it."""


def warn(message: str, category: type[Warning] = TracklightWarning) -> None:
    """Warn, attributing the warning to the first caller outside tracklight (the user's line), however deep
    in tracklight (decorators, a LoggerCollection, a backend) the warning is raised."""
    import os
    import sys
    import warnings

    package_dir = os.path.dirname(os.path.abspath(__file__))
    level, frame = 2, sys._getframe(1)  # stacklevel 1 would be this function itself
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package_dir):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)
