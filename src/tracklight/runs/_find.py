"""Finding runs under folders and opening a run from its reference, whatever wrote it.

Each reader module has a ``scan(folder, names)`` that returns the runs stored directly in one folder (given
the names of its files and subfolders) and raises :class:`RunError` for a damaged file. Walking the tree,
naming refs and reporting problems happen here, once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

from tracklight._errors import warn
from tracklight.runs import _comet, _csv, _mlflow, _neptune, _spill, _tensorboard, _wandb
from tracklight.runs._run import Run, RunError, unreadable

__all__ = ["BACKENDS", "find", "open"]

#: Reader modules by backend name, in the order a folder is asked.
BACKENDS: dict[str, ModuleType] = {
    "csv": _csv,
    "tensorboard": _tensorboard,
    "mlflow": _mlflow,
    "wandb": _wandb,
    "comet": _comet,
    "neptune": _neptune,
    "spill": _spill,
}

# Folders that never hold runs and can be huge.
_SKIP = {".git", ".hg", ".venv", "venv", "__pycache__", "node_modules", ".tox", ".nox", ".mypy_cache", "site-packages"}

_LOOKED_FOR = (
    "metrics.csv, events.out.tfevents.*, an MLflow store (*.db or mlruns/), run-*.wandb, a Comet .zip, "
    "a Neptune data-1.log, or a tracklight spill file"
)

OnError = Callable[[RunError], None]


def find(*paths: str | os.PathLike[str], on_error: OnError | None = None) -> list[Run]:
    """Every run stored under ``paths`` (files or folders, searched to any depth; ``"."`` when none), or on
    the MLflow tracking URIs among them (``sqlite:///path.db``, ``http://host:port``).

    A path that holds no run, or a file that cannot be read, is passed to ``on_error`` (a warning by default)
    and the search goes on.

    Example:
        >>> from tracklight import runs
        >>> runs.find("no/such/folder", on_error=lambda error: print(error))
        no/such/folder: no such file or folder
        []
    """
    report = on_error or (lambda error: warn(str(error)))
    found: list[Run] = []
    for given in paths or (".",):
        if _mlflow.is_uri(os.fspath(given)):  # a tracking URI: never a path (normpath would fold its //)
            try:
                runs = _mlflow.uri_runs(os.fspath(given))
            except RunError as error:
                report(error)
                continue
            if not runs:
                report(RunError(os.fspath(given), "holds no active MLflow run"))
            found.extend(runs)
            continue
        path = os.path.normpath(os.fspath(given))
        before = len(found)
        failed = False

        def failure(error: RunError) -> None:
            nonlocal failed
            failed = True
            report(error)

        if not os.path.exists(path):
            failure(RunError(path, "no such file or folder"))
            continue
        if os.path.isfile(path):
            found.extend(_scan(os.path.dirname(path) or ".", {os.path.basename(path)}, failure))
        else:

            def unreadable(error: OSError) -> None:  # os.walk skips a folder it cannot list, silently
                failure(RunError(error.filename, f"cannot be read ({error.strerror})"))

            for folder, subfolders, files in os.walk(path, onerror=unreadable):
                subfolders[:] = sorted(name for name in subfolders if name not in _SKIP)
                found.extend(_scan(os.path.normpath(folder), set(files) | set(subfolders), failure))  # not ./csv
        if len(found) == before and not failed:
            report(RunError(path, f"holds no run (looked for {_LOOKED_FOR})"))
    return found


def open(ref: str | os.PathLike[str]) -> Run:
    """The run ``ref`` names: what ``tracklight ls`` prints (a folder, a file, ``sqlite:///path#RUN_ID``,
    ``http://host:port#RUN_ID``, or ``<backend>:<path>`` where one folder holds runs of two backends).

    Raises:
        RunError: ``ref`` holds no run, several runs, or cannot be read; the message names the path.
    """
    ref = os.fspath(ref)
    run = _mlflow.from_ref(ref)
    if run is not None:
        return run
    backend, separator, rest = ref.partition(":")
    only = BACKENDS.get(backend) if separator else None
    path = os.path.normpath(rest if only else ref)
    if not os.path.exists(path):
        raise RunError(path, "no such file or folder")
    errors: list[RunError] = []
    if os.path.isfile(path):
        runs = _scan(os.path.dirname(path) or ".", {os.path.basename(path)}, errors.append, only)
    else:
        runs = _scan(path, set(os.listdir(path)), errors.append, only)
    if errors:
        raise errors[0]
    if not runs:
        raise RunError(path, f"holds no run (looked for {_LOOKED_FOR}); `tracklight ls {path}` lists those below it")
    if len(runs) > 1:
        raise RunError(path, "holds several runs; name one of them: " + ", ".join(run.ref for run in runs))
    return runs[0]


def _scan(folder: str, names: set[str], report: OnError, only: ModuleType | None = None) -> list[Run]:
    runs: list[Run] = []
    for module in [only] if only else BACKENDS.values():
        try:
            runs.extend(module.scan(folder, names))
        except RunError as error:
            report(error)
        except Exception as error:  # an OSError, or a file the reader did not expect: named, the search goes on
            report(unreadable(folder, error))
    paths = [run.ref for run in runs]
    for run in runs:  # one folder, two backends (CSV and TensorBoard loggers sharing a version folder)
        if paths.count(run.ref) > 1:
            run.ref = f"{run.backend}:{run.ref}"
    return runs
