"""The one small interface every reader implements: :class:`Run`, what ``ls`` prints about it (:class:`RunInfo`),
its points (:class:`Points`) and its media files (:class:`MediaFile`).

A reader knows its format; everything shared (selecting metrics by glob pattern, pandas frames, summaries)
lives here, once. pandas is imported only by the methods that return frames.
"""

from __future__ import annotations

import fnmatch
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tracklight._errors import TracklightError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MediaFile", "Points", "Run", "RunError", "RunInfo"]


class RunError(TracklightError):
    """A path or reference that holds no run, or a run file that cannot be read; the message names the path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


@dataclass
class RunInfo:
    """One row of ``tracklight ls``: what a run is and how far it got, read cheaply."""

    ref: str
    backend: str
    name: str | None = None
    version: str | None = None
    status: str | None = None  # finished, failed, killed, running; None where the format keeps no status
    steps: int | None = None  # the last step logged
    updated: float | None = None  # seconds since the epoch: the last point's time, else the files' mtime
    metrics: int = 0
    params: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Points:
    """The points of one metric, in the order they were logged: steps, values and times (NaN when unknown)."""

    step: np.ndarray  # int64
    value: np.ndarray  # float64
    time: np.ndarray  # float64, seconds since the epoch

    @classmethod
    def of(cls, step: Any, value: Any, time: Any = None) -> Points:
        steps = np.asarray(step, dtype=np.int64)
        times = np.full(len(steps), np.nan) if time is None else np.asarray(time, dtype=np.float64)
        return cls(steps, np.asarray(value, dtype=np.float64), times)

    def __len__(self) -> int:
        return len(self.step)

    @staticmethod
    def concat(parts: list[Points]) -> Points:
        if len(parts) == 1:
            return parts[0]
        return Points(
            np.concatenate([p.step for p in parts]),
            np.concatenate([p.value for p in parts]),
            np.concatenate([p.time for p in parts]),
        )


@dataclass(frozen=True)
class MediaFile:
    """A media file of a run (an image, a table, text, audio...), readable whatever holds it (folder or archive)."""

    key: str
    kind: str  # image, text, table, audio, histogram, figure, video, file
    step: int | None
    name: str  # the file's name, with its extension
    load: Callable[[], bytes] = field(repr=False, compare=False)


class Run(ABC):
    """One run, whatever wrote it. Readers implement four methods; the frames and summaries come from here.

    Args:
        ref: What ``tracklight ls`` prints for the run, and what :func:`tracklight.runs.open` takes back.
        path: The file or folder that holds it.
    """

    backend: ClassVar[str]

    def __init__(self, ref: str, path: str) -> None:
        self.ref = ref
        self.path = path
        self._cache: dict[str, Points] | None = None
        self._lock = threading.RLock()  # readers take it again inside _read

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ref}>"

    # ---- what a reader implements ---------------------------------------------------------------------

    @abstractmethod
    def info(self) -> RunInfo:
        """Name, version, status, last step, time of the last update, how many metrics and parameters: cheaply."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The hyperparameters, nested keys joined by ``/``."""

    @abstractmethod
    def _read(self) -> dict[str, Points]:
        """Every metric's points (called once per run object)."""

    def media(self) -> list[MediaFile]:
        """The run's media files (images, tables, text...), oldest first."""
        return []

    def _sources(self) -> list[str]:
        """The files the points are read from: a reader that names them gets its big runs cached."""
        return []

    # ---- shared -----------------------------------------------------------------------------------------

    def points(self) -> dict[str, Points]:
        """Every metric's points, read once and kept."""
        with self._lock:
            if self._cache is None:
                from tracklight.runs._cache import cached

                try:
                    self._cache = cached(self.backend, self._sources(), self._read, extra=self.ref)
                except RunError:
                    raise
                except Exception as err:  # a format the reader did not expect: named, never a traceback
                    raise unreadable(self.ref, err) from err
            return self._cache

    def metric_names(self) -> list[str]:
        return sorted(self.points())

    def select(self, patterns: Iterable[str] | None = None) -> list[str]:
        """The metric names matching any of the glob ``patterns`` (all when None), sorted."""
        names = self.metric_names()
        if patterns is None:
            return names
        patterns = list(patterns)
        return [name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)]

    def metric(self, name: str) -> pd.DataFrame:
        """One metric as a frame with columns ``step``, ``value`` and ``time`` (seconds since the epoch, or NaN)."""
        import pandas as pd

        points = self.points().get(name)
        if points is None:
            known = ", ".join(self.metric_names()[:20]) or "none"
            raise RunError(self.ref, f"has no metric {name!r} (its metrics: {known})")
        return pd.DataFrame({"step": points.step, "value": points.value, "time": points.time})

    def metrics(self, patterns: Iterable[str] | None = None) -> pd.DataFrame:
        """The metrics matching ``patterns`` (glob; all when None) as one long frame: ``metric``, ``step``,
        ``value``, ``time``. Pivot it for a wide table: ``frame.pivot_table(index="step", columns="metric")``."""
        import pandas as pd

        names = self.select(patterns)
        points = self.points()
        parts = [points[name] for name in names]
        metric = pd.Categorical.from_codes(
            np.repeat(np.arange(len(names)), [len(p) for p in parts]).astype(np.int64), categories=names
        )
        merged = Points.concat(parts) if parts else Points.of([], [])
        return pd.DataFrame({"metric": metric, "step": merged.step, "value": merged.value, "time": merged.time})

    def summary(self, patterns: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per metric: ``points``, ``first_step``, ``last_step``, ``last``, ``min``, ``min_step``,
        ``max``, ``max_step`` (NaN values are left out of min and max)."""
        import pandas as pd

        rows = [summarize(name, self.points()[name]) for name in self.select(patterns)]
        columns = ["metric", "points", "first_step", "last_step", "last", "min", "min_step", "max", "max_step"]
        return pd.DataFrame(rows, columns=columns).set_index("metric")


def unreadable(path: str, err: BaseException) -> RunError:
    """The :class:`RunError` for something a reader did not expect (``OSError``, ``ValueError``, ...)."""
    if isinstance(err, OSError) and err.strerror:
        return RunError(path, f"cannot be read ({err.strerror})")
    return RunError(path, f"cannot be read ({type(err).__name__}: {err})")


def summarize(name: str, points: Points) -> dict[str, Any]:
    """The summary row of one metric (see :meth:`Run.summary`)."""
    row: dict[str, Any] = {"metric": name, "points": len(points)}
    if not len(points):
        return row
    row.update(first_step=int(points.step[0]), last_step=int(points.step[-1]), last=float(points.value[-1]))
    finite = np.isfinite(points.value)
    if finite.any():
        values = np.where(finite, points.value, np.nan)
        low, high = int(np.nanargmin(values)), int(np.nanargmax(values))
        row.update(
            min=float(values[low]),
            min_step=int(points.step[low]),
            max=float(values[high]),
            max_step=int(points.step[high]),
        )
    return row


def last_step(points: dict[str, Points]) -> int | None:
    ends = [int(p.step.max()) for p in points.values() if len(p)]
    return max(ends) if ends else None


def last_time(points: dict[str, Points]) -> float | None:
    ends = [float(np.nanmax(p.time)) for p in points.values() if len(p) and not np.isnan(p.time).all()]
    return max(ends) if ends else None
