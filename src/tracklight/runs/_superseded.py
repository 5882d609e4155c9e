"""Points a resumed run superseded: what the readers of remote backends leave out, so each step shows once.

A run continued after a restart (``load_state_dict``) was written by several processes in turn. Process
``k`` (``k >= 1``) took over at ``last_step`` ``s_k``: every point an earlier process logged at a step
after ``s_k`` is superseded by what process ``k`` logged for that step. No backend here deletes points, so
each marks the takeover in the run (MLflow: a tag holding the time and step; the offline W&B, Comet and
Neptune files: one file or folder per process, the step recorded in it) and its reader asks this module
which points to keep.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tracklight.runs._run import Points

__all__ = ["keep", "merge", "segments_by_time", "supersede"]

#: ``last_step`` of a process that took over before anything was logged: every earlier point is superseded.
_NOTHING = -(2**62)


def keep(steps: np.ndarray, segments: np.ndarray, takeovers: Sequence[int | None]) -> np.ndarray:
    """Which points stay: ``segments[i]`` is the process that logged point ``i`` (0 the first), ``takeovers[k]``
    the ``last_step`` process ``k + 1`` took over at (``None``: before anything was logged)."""
    if not len(takeovers):
        return np.ones(len(steps), dtype=bool)
    limits = np.asarray([_NOTHING if step is None else int(step) for step in takeovers], dtype=np.int64)
    # The lowest takeover after each process: its points after that step were logged again later.
    after = np.minimum.accumulate(limits[::-1])[::-1]
    cutoff = np.append(after, np.iinfo(np.int64).max)
    index = np.clip(np.asarray(segments, dtype=np.int64), 0, len(takeovers))
    return np.asarray(steps, dtype=np.int64) <= cutoff[index]


def supersede(points: Points, segments: np.ndarray, takeovers: Sequence[int | None]) -> Points:
    """``points`` without the ones a later process superseded."""
    if not len(takeovers) or not len(points):
        return points
    mask = keep(points.step, segments, takeovers)
    if mask.all():
        return points
    return Points(points.step[mask], points.value[mask], points.time[mask])


def segments_by_time(times: np.ndarray, starts: Sequence[float]) -> np.ndarray:
    """The process that logged each point, from its time and the times (sorted) each later process took over."""
    return np.searchsorted(np.asarray(starts, dtype=np.float64), np.asarray(times, dtype=np.float64), side="right")


def merge(parts: Sequence[dict[str, Points]], takeovers: Sequence[int | None]) -> dict[str, Points]:
    """The points of a run written by several processes in turn (``parts``, oldest first), as one run: each metric's
    points in order, without those a later process superseded (``takeovers[k]``: where process ``k + 1`` took over)."""
    if len(parts) == 1:
        return parts[0]
    found = {}
    for name in dict.fromkeys(name for part in parts for name in part):
        pieces = [(index, part[name]) for index, part in enumerate(parts) if name in part]
        merged = Points.concat([piece for _, piece in pieces])
        owners = np.concatenate([np.full(len(piece), index, dtype=np.int64) for index, piece in pieces])
        found[name] = supersede(merged, owners, takeovers)
    return found
