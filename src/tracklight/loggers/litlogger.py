"""``LitLogger``: Lightning's own logger for the Lightning AI platform, reached from tracklight's namespace.

tracklight has no LitLogger of its own. ``tracklight.loggers.LitLogger`` (and this module's ``LitLogger``) is
Lightning's class, so a script that switched ``from lightning.pytorch.loggers import ...`` to tracklight keeps
working; without a Lightning that has it, the name is an ``AttributeError`` (an ``ImportError`` in a
``from ... import``) that says so.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightning.pytorch.loggers import LitLogger

__all__ = ["LitLogger"]

#: Where Lightning keeps it (``lightning`` first, then the standalone ``pytorch_lightning`` package).
_HOMES = ("lightning.pytorch.loggers", "pytorch_lightning.loggers")


def __getattr__(name: str) -> Any:
    if name != "LitLogger":
        raise AttributeError(f"module 'tracklight.loggers.litlogger' has no attribute {name!r}")
    for home in _HOMES:
        try:
            value = getattr(importlib.import_module(home), name)
        except (ImportError, AttributeError):
            continue
        globals()[name] = value
        return value
    raise AttributeError(
        "tracklight.loggers.LitLogger is Lightning's own LitLogger (Lightning 2.6 and later), and no installed "
        "Lightning has it. Fix: pip install 'lightning>=2.6' (and 'litlogger'), or log with another logger, "
        "e.g. tracklight.loggers.CSVLogger."
    )
