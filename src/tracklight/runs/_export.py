"""Writing runs into another backend: ``tracklight export RUN... --to TARGET`` and :func:`export`.

A target is an MLflow tracking URI (``http(s)://host:port``, ``sqlite:///path.db``) or a local format with
its folder: ``csv:DIR``, ``tensorboard:DIR``, ``wandb:DIR``, ``comet:DIR``, ``neptune:DIR`` (the last three
offline runs, to upload later with ``wandb sync``, ``comet upload`` or ``neptune sync``). Each writer takes
the run's points with their steps and timestamps, its hyperparameters and its media files, and says what
its target refused (a key renamed, a value rounded, a kind of media kept as a file, timestamps it cannot
store): nothing is dropped without a line in the report.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from tracklight.runs._find import open as open_run
from tracklight.runs._run import MediaFile, Points, Run, RunError

__all__ = ["TARGETS", "ExportReport", "Exported", "Source", "check_target", "export"]

#: Local targets: ``<scheme>:<folder>``.
TARGETS = ("csv", "tensorboard", "wandb", "comet", "neptune")
_MLFLOW_SCHEMES = ("http://", "https://", "sqlite:///")

Progress = Callable[[int], None]


@dataclass
class Source:
    """What a writer gets of one run: read once, shared by every writer."""

    run: Run
    name: str
    params: dict[str, Any]
    points: dict[str, Points]
    media: list[MediaFile]
    status: str | None

    @property
    def total(self) -> int:
        return sum(len(points) for points in self.points.values())

    @classmethod
    def of(cls, run: Run) -> Source:
        info = run.info()
        name = info.name or (f"version_{info.version}" if info.version else "run")
        return cls(run, name, run.params(), run.points(), run.media(), info.status)


@dataclass
class Exported:
    """One run written: where it is now (a RUN reference ``tracklight`` reads), what went, what was refused."""

    source: str
    ref: str
    points: int = 0
    params: int = 0
    media: int = 0
    refused: list[str] = field(default_factory=list)
    error: str | None = None  # the export of this run stopped: why, what was sent, and how to finish it


@dataclass
class ExportReport:
    """What :func:`export` did, run by run."""

    target: str
    runs: list[Exported] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def refused(self) -> list[str]:
        return [f"{run.source}: {line}" for run in self.runs for line in run.refused]

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "seconds": round(self.seconds, 3), "runs": [asdict(run) for run in self.runs]}


class Writer(Protocol):
    def write(self, source: Source, progress: Progress) -> Exported: ...


def export(
    runs: Iterable[Run | str],
    to: str,
    *,
    experiment: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write ``runs`` (Run objects or references) into the backend ``to``.

    Args:
        runs: What to export.
        to: An MLflow tracking URI (``http://127.0.0.1:5000``, ``sqlite:///mlflow.db``), or ``csv:DIR``,
            ``tensorboard:DIR``, ``wandb:DIR``, ``comet:DIR``, ``neptune:DIR``.
        experiment: The MLflow experiment, or W&B/Comet/Neptune project, to write into (default
            ``tracklight-export``).
        progress: Called with (points written so far, points in all) as the export goes.

    Returns:
        An :class:`ExportReport`: per run, the new run's reference and what the target refused.

    Raises:
        RunError: a run cannot be read, ``to`` is not a target tracklight writes, or the package that writes it
            is not installed (checked before anything is written). A run whose export fails midway (a full
            disk, a server gone) is in the report with its ``error``; the other runs are still exported.
    """
    started = time.perf_counter()
    writer = _writer(to, experiment or "tracklight-export")
    sources = [Source.of(run if isinstance(run, Run) else open_run(run)) for run in runs]
    total = sum(source.total for source in sources)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    report = ExportReport(to)
    for source in sources:
        sent_before = done
        try:
            report.runs.append(writer.write(source, advance))
        except Exception as err:  # a disk's, an SDK's or a server's error (MlflowException...): one line each
            report.runs.append(_stopped(source, to, done - sent_before, err))
    report.seconds = time.perf_counter() - started
    return report


def _stopped(source: Source, to: str, sent: int, err: BaseException) -> Exported:
    reason = " ".join(str(err).split())[:300] or type(err).__name__
    again = (
        "run the same export again to send the rest (the points already there are not sent twice)"
        if to.startswith(_MLFLOW_SCHEMES)
        else "run the same export again (it writes a new run)"
    )
    return Exported(
        source.run.ref,
        "-",
        points=sent,
        error=f"the export to {to} stopped after {sent} of {source.total} point(s): {reason}; {again}",
    )


#: The package each kind of target is written with, and the extra that installs it. An event file's checksums
#: need ``crc32c`` (the tensorboard extra's) or TensorBoard's own copy of it.
_NEEDS = {
    "tensorboard": ("crc32c", "tensorboard"),
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
    "comet": ("comet_ml", "comet"),
    "neptune": ("neptune", "neptune"),
}


def _check_installed(to: str, kind: str) -> None:
    """Refuse a target whose package is missing before anything is read or written."""
    from tracklight._imports import is_available
    from tracklight._install import install_command

    module, extra = _NEEDS.get(kind, (None, None))
    if kind == "tensorboard" and is_available("tensorboard"):
        return
    if module is not None and not is_available(module):
        raise RunError(
            to,
            f"exporting to {kind} needs the {module!r} package, which is not installed. "
            f"Fix: {install_command(str(extra))}",
        )


def check_target(to: str) -> None:
    """Raise :class:`RunError` unless ``to`` is a target tracklight writes and its package is installed: the
    checks :func:`export` makes before it reads or writes anything."""
    if to.startswith(_MLFLOW_SCHEMES):
        _check_installed(to, "mlflow")
        return
    scheme, separator, folder = to.partition(":")
    if not (separator and scheme in TARGETS and folder):
        raise RunError(
            to,
            "is not an export target. Use an MLflow tracking URI (http://HOST:PORT, sqlite:///PATH.db) or a local "
            "format and folder: " + ", ".join(f"{scheme}:DIR" for scheme in TARGETS),
        )
    _check_installed(to, scheme)


def _writer(to: str, experiment: str) -> Writer:
    check_target(to)
    if to.startswith(_MLFLOW_SCHEMES):
        from tracklight.runs._to_mlflow import MlflowWriter

        return MlflowWriter(to, experiment)
    scheme, _, folder = to.partition(":")
    if scheme in ("csv", "tensorboard"):
        from tracklight.runs import _to_files

        return _to_files.CSVWriter(folder) if scheme == "csv" else _to_files.TensorBoardWriter(folder)
    from tracklight.runs import _to_sdks

    writers: dict[str, Any] = {
        "wandb": _to_sdks.WandbWriter,
        "comet": _to_sdks.CometWriter,
        "neptune": _to_sdks.NeptuneWriter,
    }
    return writers[scheme](folder, experiment)


# ---- helpers the writers share --------------------------------------------------------------------------


def rows_by_step(points: dict[str, Points]) -> list[tuple[int, float, dict[str, float]]]:
    """The points as rows: one per step and occurrence (a metric logged twice at one step gets two rows), in
    step order; each row has the earliest time of its points (NaN when unknown)."""
    rows: dict[tuple[int, int], tuple[list[float], dict[str, float]]] = {}
    for name, series in points.items():
        seen: dict[int, int] = {}
        for step, value, stamp in zip(series.step.tolist(), series.value.tolist(), series.time.tolist(), strict=True):
            occurrence = seen.get(step, 0)
            seen[step] = occurrence + 1
            times, row = rows.setdefault((step, occurrence), ([], {}))
            row[name] = value
            times.append(stamp)
    ordered = []
    for (step, _), (times, row) in sorted(rows.items()):
        known = [t for t in times if t == t]
        ordered.append((step, min(known) if known else float("nan"), row))
    return ordered


def missing_times(source: Source) -> int:
    """How many points of the source have no timestamp."""
    return sum(int((points.time != points.time).sum()) for points in source.points.values())


def extension(name: str, default: str = "bin") -> str:
    return name.rpartition(".")[2].lower() if "." in name else default


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    """An SDK's INFO lines and banners are not ours to print: its loggers at WARNING, and back after."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def staged_media(source: Source) -> Iterator[list[tuple[Any, str]]]:
    """Each media file of the source written to a temporary folder: ``(media, path)``."""
    with tempfile.TemporaryDirectory(prefix="tracklight-export-") as staging:
        paths = []
        for number, media in enumerate(source.media):
            folder = os.path.join(staging, str(number))
            os.makedirs(folder)
            path = os.path.join(folder, media.name)
            with open(path, "wb") as handle:
                handle.write(media.load())
            paths.append((media, path))
        yield paths
