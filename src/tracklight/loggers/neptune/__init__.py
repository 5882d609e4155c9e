"""Neptune: ``NeptuneLogger`` and ``NeptuneArgumentError`` (the rest of the package is private).

``logger`` is the logger; ``sink`` hands values to the run on the worker, with ``steps`` (steps Neptune
accepts) and ``values`` (plain values and files); ``resume`` continues a run. Imports are absolute, so
``import neptune`` is always the SDK.
"""

from tracklight.loggers.neptune.logger import NeptuneArgumentError, NeptuneLogger

__all__ = ["NeptuneArgumentError", "NeptuneLogger"]
