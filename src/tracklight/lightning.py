"""Lightning compatibility: make tracklight loggers count as Lightning's own, without importing Lightning.

Lightning checks ``isinstance(logger, Logger)`` (LightningCLI) and
``isinstance(logger, (TensorBoardLogger, CSVLogger))`` (``Trainer.log_dir``). Lightning's logger
classes are ABCs, so tracklight's classes are registered as virtual subclasses of them: at once if
Lightning is already imported, otherwise right after its ``loggers`` module is imported. Lightning's
``ExperimentWriter`` (what ``CSVLogger.experiment`` returns) is no ABC: it becomes a base of
``CSVExperiment`` at the same moment.

When Lightning's ``trainer.trainer`` module is imported, its ``Trainer`` gets the resume hook of
:mod:`tracklight._lightning_resume` (continue each logger's run when ``fit`` resumes from a checkpoint).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from types import ModuleType
from typing import Any

#: Lightning modules whose logger classes tracklight's loggers register with.
LIGHTNING_LOGGER_MODULES = (
    "lightning.pytorch.loggers",
    "lightning.fabric.loggers",
    "pytorch_lightning.loggers",
    "lightning_fabric.loggers",
)

#: Lightning modules whose ``Trainer`` gets tracklight's resume hook (:mod:`tracklight._lightning_resume`).
LIGHTNING_TRAINER_MODULES = ("lightning.pytorch.trainer.trainer", "pytorch_lightning.trainer.trainer")

_lock = threading.Lock()
_waiting: set[str] = set()


def _adopt(module: ModuleType) -> None:
    """What tracklight does with a waited-for Lightning module once it is imported."""
    if module.__name__ in LIGHTNING_TRAINER_MODULES:
        from tracklight._lightning_resume import patch_trainer

        patch_trainer(module)
    else:
        register_with(module)


def register_with(module: ModuleType) -> None:
    """Register tracklight's ``Logger``, ``CSVLogger`` and ``TensorBoardLogger`` (and, for Fabric's module,
    those of ``tracklight.fabric.loggers``) with the same-named classes of one Lightning ``loggers`` module."""
    from tracklight import loggers

    ours: list[Any] = [loggers]
    if module.__name__.endswith("fabric.loggers"):
        from tracklight.fabric import loggers as fabric_loggers

        ours.append(fabric_loggers)  # subclasses of the above already count; registered so they always do
    # Lightning sorts WandbLogger first when it sets loggers up; registering ours keeps that order.
    for namespace in ours:
        for attribute in ("Logger", "CSVLogger", "TensorBoardLogger", "WandbLogger"):
            theirs = getattr(module, attribute, None)
            register = getattr(theirs, "register", None)
            if register is not None and hasattr(namespace, attribute):
                register(getattr(namespace, attribute))
    _adopt_experiment_writer(sys.modules.get(f"{module.__name__}.csv_logs"))


def _adopt_experiment_writer(csv_logs: ModuleType | None) -> None:
    """Make Lightning's ``ExperimentWriter`` a base of ``CSVExperiment`` (it is no ABC: no ``register``).

    Only ``CSVExperiment``'s own placeholder base is replaced; its own methods come first in the MRO.
    """
    from tracklight.loggers.csv import CSVExperiment, _ExperimentWriterBase

    writer = getattr(csv_logs, "ExperimentWriter", None)
    if not isinstance(writer, type) or issubclass(CSVExperiment, writer):
        return
    bases = tuple(base for base in CSVExperiment.__bases__ if base is not _ExperimentWriterBase)
    CSVExperiment.__bases__ = (*bases, writer)


def install() -> None:
    """Register now with the Lightning modules already imported, and later with the others."""
    with _lock:
        for name in LIGHTNING_LOGGER_MODULES + LIGHTNING_TRAINER_MODULES:
            module = sys.modules.get(name)
            if module is not None:
                _adopt(module)
            else:
                _waiting.add(name)
        if _waiting and not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
            sys.meta_path.insert(0, _AfterImport())


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of a waited-for module to register after it ran."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _waiting:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        with _lock:
            _waiting.discard(module.__name__)
        _adopt(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
