"""Plots of runs: one panel per metric, one line per run; to a file with matplotlib, or in the terminal with
uniplot (which works over SSH). Lines of more points than a plot can show are thinned to the minimum and
maximum of each stretch, so a million points draw as fast as a thousand and no spike disappears.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tracklight.runs import Run, RunError

__all__ = ["Line", "Panel", "figure", "panels", "terminal"]

#: Points drawn per line at most: a file holds more detail than a terminal.
FILE_POINTS = 4000
TERMINAL_POINTS = 400
FORMATS = (".png", ".svg", ".pdf")
AXES = ("step", "epoch", "time")


@dataclass
class Line:
    run: str  # the label: the run's reference
    x: np.ndarray
    y: np.ndarray


@dataclass
class Panel:
    metric: str
    lines: list[Line] = field(default_factory=list)


def panels(runs: list[Run], patterns: list[str] | None, x: str = "step", smooth: int = 1) -> list[Panel]:
    """The panels to draw: the metrics matching ``patterns`` (every metric but ``epoch`` when None) in any run,
    each with one line per run that has it, x as asked, y smoothed by a trailing mean of ``smooth`` points."""
    if x not in AXES:
        raise RunError(x, f"is not an x axis; use one of {', '.join(AXES)}")
    names: list[str] = []
    for run in runs:
        chosen = run.select(patterns) if patterns else [name for name in run.metric_names() if name != "epoch"]
        names.extend(name for name in chosen if name not in names)
    if not names:
        wanted = ", ".join(patterns or ["*"])
        raise RunError(", ".join(run.ref for run in runs), f"no metric matches {wanted}")
    found = []
    for name in sorted(names):
        panel = Panel(name)
        for run in runs:
            points = run.points().get(name)
            if points is None or not len(points):
                continue
            panel.lines.append(Line(run.ref, _x(run, points, x), _smoothed(points.value, smooth)))
        found.append(panel)
    return found


def _x(run: Run, points: Any, axis: str) -> np.ndarray:
    if axis == "step":
        return points.step.astype(np.float64)
    if axis == "time":
        if np.isnan(points.time).all():
            raise RunError(run.ref, f"keeps no timestamps ({run.backend}); plot it with --x step or --x epoch")
        start = np.nanmin([np.nanmin(p.time) for p in run.points().values() if len(p) and not np.isnan(p.time).all()])
        return points.time - start
    epochs = run.points().get("epoch")
    if epochs is None or not len(epochs):
        raise RunError(run.ref, "has no 'epoch' metric to put on the x axis; plot it with --x step")
    # Each epoch starts at the first step logged with it; steps in between are fractions of their epoch.
    values, first = np.unique(epochs.value, return_index=True)
    starts = epochs.step[first].astype(np.float64)
    order = np.argsort(starts)
    starts, values = starts[order], values[order]
    length = float(np.median(np.diff(starts))) if len(starts) > 1 else 1.0
    starts = np.append(starts, starts[-1] + max(length, 1.0))
    values = np.append(values, values[-1] + 1)
    steps = points.step.astype(np.float64)
    inside = np.interp(steps, starts, values)
    past = steps > starts[-1]  # after the last epoch's expected end: go on at the same rate
    inside[past] = values[-1] + (steps[past] - starts[-1]) / max(length, 1.0)
    return inside


def _smoothed(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < 2:
        return values
    totals = np.cumsum(np.insert(np.nan_to_num(values), 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (totals[1:] - totals[np.maximum(np.arange(1, len(values) + 1) - window, 0)]) / counts


def thin(x: np.ndarray, y: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``limit`` points: in each of ``limit / 2`` stretches, the first minimum and maximum, in order
    (NaN values left out). Lines that fit are returned whole."""
    keep = ~np.isnan(y)
    if not keep.all():
        x, y = x[keep], y[keep]
    if len(y) <= limit:
        return x, y
    buckets = max(limit // 2, 1)
    size = math.ceil(len(y) / buckets)
    padded = np.full(buckets * size, np.nan)
    padded[: len(y)] = y
    blocks = padded.reshape(buckets, size)
    low = np.nanargmin(blocks, axis=1) + np.arange(buckets) * size
    high = np.nanargmax(blocks, axis=1) + np.arange(buckets) * size
    chosen = np.unique(np.concatenate([low, high]))
    chosen = chosen[chosen < len(y)]
    return x[chosen], y[chosen]


def figure(drawn: list[Panel], x: str = "step", log_y: bool = False, limit: int = FILE_POINTS) -> Any:
    """A matplotlib ``Figure`` (no pyplot: no window, no global state): a grid of panels, a legend in each."""
    from matplotlib.figure import Figure

    columns = min(len(drawn), 2)
    rows = math.ceil(len(drawn) / columns)
    fig = Figure(figsize=(6.4 * columns, 3.8 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    labels = {"step": "step", "epoch": "epoch", "time": "seconds since the run's first point"}
    for ax, panel in zip(axes, drawn, strict=False):
        for line in panel.lines:
            ax.plot(*thin(line.x, line.y, limit), label=line.run, linewidth=1.2)
        ax.set_title(panel.metric)
        ax.set_xlabel(labels[x])
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(drawn) :]:
        ax.set_visible(False)
    return fig


def save(fig: Any, output: str) -> None:
    if not output.lower().endswith(FORMATS):
        raise RunError(output, f"needs one of the extensions {', '.join(FORMATS)}")
    folder = os.path.dirname(output)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(output, dpi=110)


def terminal(drawn: list[Panel], x: str = "step", log_y: bool = False, width: int = 100, color: bool = True) -> str:
    """The panels drawn with Unicode block characters (uniplot), one below the other."""
    from uniplot import plot_to_string

    out = []
    for panel in drawn:
        thinned = [thin(line.x, line.y, TERMINAL_POINTS) for line in panel.lines]
        thinned = [(xs, ys) for xs, ys in thinned if len(ys)]
        if not thinned:
            continue
        out.append(
            plot_to_string(
                [ys for _, ys in thinned],
                [xs for xs, _ in thinned],
                legend_labels=[line.run for line in panel.lines] if len(panel.lines) > 1 else None,
                # uniplot labels its y axis with as few digits as keep the labels apart (0.5 shows as "0"),
                # so the title gives the range.
                title=f"{panel.metric}  (x: {x}; y: {_range(ys for _, ys in thinned)})",
                width=max(width - 12, 20),
                height=12,
                lines=True,
                color=color,
                y_as_log=log_y,
            )
        )
    return "\n".join(out)


def _range(series: Iterable[Any]) -> str:
    """``low to high`` of the finite values of every series, to four significant digits."""
    finite = [values[np.isfinite(values)] for values in (np.asarray(ys, dtype=float) for ys in series)]
    finite = [values for values in finite if values.size]
    if not finite:
        return "no finite value"
    low, high = min(float(v.min()) for v in finite), max(float(v.max()) for v in finite)
    return f"{low:.4g} to {high:.4g}"
