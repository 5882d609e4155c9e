"""Comet: ``CometLogger`` (the rest of the package is private).

``logger`` is the logger; ``config`` resolves its arguments and arranges offline mode; ``sink`` hands calls
to the experiment on the worker. Imports are absolute, so ``import comet_ml`` is always the SDK.
"""

from tracklight.loggers.comet.logger import CometLogger

__all__ = ["CometLogger"]
