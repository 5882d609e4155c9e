"""The ``tracklight`` command: a thin layer of click commands over :mod:`tracklight.runs`."""

from __future__ import annotations

import fnmatch
import shutil
import sys
from typing import Any

import click

from tracklight import runs as runs_api
from tracklight.cli import _plot
from tracklight.cli._output import Output
from tracklight.runs import Run, RunError
from tracklight.runs._run import summarize, unreadable

__all__ = ["cli"]

_JSON = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document on stdout: 'command', 'runs' (one object per run), 'errors' (path and message"
    " per path not read), and the command's own keys (show: 'details', plot: 'panels', compare: 'params' and"
    " 'metrics', export: 'exported').",
)
_LOWER_IS_BETTER = ("loss", "err", "mse", "mae", "perplexity", "ppl", "wer", "cer", "distance")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tracklight", prog_name="tracklight")
def cli() -> None:
    """Find, read, plot, compare and move runs, whatever backend wrote them.

    A RUN is what `tracklight ls` prints: a folder or file path, or a reference such as
    sqlite:///runs/mlflow.db#RUN_ID.
    """


def _open(output: Output, refs: tuple[str, ...]) -> list[Run]:
    opened = []
    for ref in refs:
        try:
            opened.append(runs_api.open(ref))
        except RunError as error:
            output.error(error)
        except Exception as error:  # never a traceback: what could not be read is named
            output.error(unreadable(ref, error))
    return opened


def _infos(output: Output, opened: list[Run]) -> list[tuple[Run, Any]]:
    found = []
    for run in opened:
        try:
            found.append((run, run.info()))
        except RunError as error:
            output.error(error)
        except Exception as error:
            output.error(unreadable(run.ref, error))
    return found


def _unmatched(output: Output, opened: list[Run], patterns: tuple[str, ...]) -> list[str]:
    """One rule for every command's ``-m``: each pattern that matches no metric of any run is an error that
    names the metrics there are (the command still shows what the other patterns match, and exits 1).
    Returns those patterns."""
    if not patterns or not opened:
        return []
    try:
        names = sorted({name for run in opened for name in run.metric_names()})
    except RunError:
        return []  # the command itself reports the run that cannot be read
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name in names)]
    shown = ", ".join(names[:30]) + (f" and {len(names) - 30} more" if len(names) > 30 else "")
    for pattern in unmatched:
        output.error(RunError(f"-m {pattern}", f"matches no metric; the metrics: {shown or 'none'}"))
    return unmatched


@cli.command("ls")
@click.argument("paths", nargs=-1)
@_JSON
def ls(paths: tuple[str, ...], as_json: bool) -> None:
    """List every run under PATHS (default: the current folder), whatever wrote it."""
    output = Output("ls", as_json)
    infos = [info for _, info in _infos(output, runs_api.find(*(paths or (".",)), on_error=output.error))]
    if not as_json:
        if infos:
            output.runs_table(infos)
        output.note(f"{len(infos)} run(s)" + (f", {len(output.errors)} error(s)" if output.errors else ""))
    sys.exit(output.finish(infos))


@cli.command()
@click.argument("run")
@click.option("-m", "--metric", "patterns", multiple=True, help="Only these metrics (glob patterns).")
@_JSON
def show(run: str, patterns: tuple[str, ...], as_json: bool) -> None:
    """A run's hyperparameters and, per metric: points, first and last step, last value, min and max."""
    output = Output("show", as_json)
    shown = []
    details = []
    pairs = _infos(output, _open(output, (run,)))
    _unmatched(output, [opened for opened, _ in pairs], patterns)
    for opened, info in pairs:
        try:
            params = opened.params()
            points = opened.points()
            metrics = [summarize(name, points[name]) for name in opened.select(patterns or None)]
        except RunError as error:
            output.error(error)
            continue
        shown.append(info)
        details.append({"ref": info.ref, "params": params, "metrics": metrics})
        if not as_json:
            output.run_header(info)
            output.table("hyperparameters", ["NAME", "VALUE"], [[k, str(v)] for k, v in params.items()])
            columns = ["METRIC", "POINTS", "FIRST STEP", "LAST STEP", "LAST", "MIN", "AT STEP", "MAX", "AT STEP"]
            rows = [
                [
                    m["metric"],
                    m["points"],
                    m.get("first_step"),
                    m.get("last_step"),
                    m.get("last"),
                    m.get("min"),
                    m.get("min_step"),
                    m.get("max"),
                    m.get("max_step"),
                ]
                for m in metrics
            ]
            if rows or not patterns:
                output.table("metrics", columns, rows, right=set(columns[1:]))
    sys.exit(output.finish(shown, details=details))


@cli.command()
@click.argument("refs", nargs=-1, required=True, metavar="RUN...")
@click.option("-m", "--metric", "patterns", multiple=True, help="Metrics to plot (glob patterns; default: all).")
@click.option("-o", "--output", "target", help="Write the plot to FILE (.png, .svg or .pdf) instead of the terminal.")
@click.option("--x", "x_axis", type=click.Choice(_plot.AXES), default="step", show_default=True)
@click.option("--smooth", type=click.IntRange(min=1), default=1, help="Trailing mean over N points.")
@click.option("--log-y", is_flag=True, help="Logarithmic y axis.")
@_JSON
def plot(
    refs: tuple[str, ...],
    patterns: tuple[str, ...],
    target: str | None,
    x_axis: str,
    smooth: int,
    log_y: bool,
    as_json: bool,
) -> None:
    """One panel per metric, one line per run. Without -o it draws in the terminal (works over SSH)."""
    output = Output("plot", as_json)
    pairs = _infos(output, _open(output, refs))
    unmatched = _unmatched(output, [run for run, _ in pairs], patterns)
    matching = [p for p in patterns if p not in unmatched]
    drawn: list[_plot.Panel] = []
    if pairs and (matching or not patterns):
        try:
            drawn = _plot.panels([run for run, _ in pairs], matching or None, x_axis, smooth)
            if target:
                _plot.save(_plot.figure(drawn, x_axis, log_y), target)
                output.note(f"wrote {target}: {len(drawn)} panel(s), {len(pairs)} run(s)")
            elif not as_json:
                width = min(shutil.get_terminal_size((100, 24)).columns, 120)
                click.echo(_plot.terminal(drawn, x_axis, log_y, width=width, color=sys.stdout.isatty()))
        except RunError as error:
            output.error(error)
    panels = [
        {"metric": p.metric, "lines": [{"run": line.run, "points": len(line.y)} for line in p.lines]} for p in drawn
    ]
    sys.exit(output.finish([info for _, info in pairs], output=target, x=x_axis, panels=panels))


@cli.command()
@click.argument("refs", nargs=-1, required=True, metavar="RUN RUN...")
@click.option("-m", "--metric", "patterns", multiple=True, help="Only these metrics (glob patterns).")
@click.option("--all", "show_all", is_flag=True, help="Show every hyperparameter, not only those that differ.")
@_JSON
def compare(refs: tuple[str, ...], patterns: tuple[str, ...], show_all: bool, as_json: bool) -> None:
    """The hyperparameters that differ, side by side, and the last and best value of each shared metric."""
    output = Output("compare", as_json)
    pairs = _infos(output, _open(output, refs))
    if len(pairs) + len(output.errors) < 2:
        raise click.UsageError("compare needs at least two runs")
    _unmatched(output, [run for run, _ in pairs], patterns)
    params: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    try:
        values = [run.params() for run, _ in pairs]
        keys = sorted(set().union(*values)) if values else []
        for key in keys:
            row = [value.get(key) for value in values]
            differ = len({str(item) for item in row}) > 1 or any(key not in value for value in values)
            if differ or show_all:
                params.append({"name": key, "values": row, "differ": differ})
        chosen = [set(run.select(patterns or None)) for run, _ in pairs]
        shared = sorted(set.intersection(*chosen) - (set() if patterns else {"epoch"})) if pairs else []
        for name in shared:
            lower = any(word in name.lower() for word in _LOWER_IS_BETTER)
            summaries = [summarize(name, run.points()[name]) for run, _ in pairs]
            metrics.append(
                {
                    "metric": name,
                    "best_is": "min" if lower else "max",
                    "last": [s.get("last") for s in summaries],
                    "best": [s.get("min" if lower else "max") for s in summaries],
                    "best_step": [s.get("min_step" if lower else "max_step") for s in summaries],
                }
            )
    except RunError as error:
        output.error(error)
    infos = [info for _, info in pairs]
    if not as_json and infos:
        heads = [f"[{n}] " + (info.name or info.backend) for n, info in enumerate(infos, 1)]
        for n, info in enumerate(infos, 1):
            output.note(f"[{n}] {info.ref}")
        same = "" if show_all else " (those that differ)"
        table = [[str(p["name"]), *[_cell(value) for value in p["values"]]] for p in params]
        if params:
            output.table(f"hyperparameters{same}", ["NAME", *heads], table)
        else:
            output.note("\nhyperparameters: the runs have the same ones")
        rows: list[list[Any]] = []
        for m in metrics:
            rows.append([m["metric"], "last", *m["last"]])
            rows.append(["", f"best ({m['best_is']})", *m["best"]])
        if rows:
            output.table("metrics the runs share", ["METRIC", "", *heads], rows, right=set(heads))
        else:
            output.note("\nmetrics the runs share: none" + (" that -m selects" if patterns else ""))
    sys.exit(output.finish(infos, params=params, metrics=metrics))


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


@cli.command()
@click.argument("refs", nargs=-1, required=True, metavar="RUN...")
@click.option(
    "--to",
    "target",
    required=True,
    help="MLflow URI (http://HOST:PORT, sqlite:///PATH.db) or csv:DIR, "
    "tensorboard:DIR, wandb:DIR, comet:DIR, neptune:DIR.",
)
@click.option("--experiment", help="MLflow experiment or W&B/Comet/Neptune project (default: tracklight-export).")
@_JSON
def export(refs: tuple[str, ...], target: str, experiment: str | None, as_json: bool) -> None:
    """Write runs into another backend: metrics with steps and timestamps, hyperparameters, media files."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tracklight.runs._export import check_target

    output = Output("export", as_json)
    try:
        check_target(target)  # a target it cannot write is refused before any run is read or written
    except RunError as error:
        output.error(error)
        sys.exit(output.finish([], target=target, exported=[]))
    pairs = _infos(output, _open(output, refs))
    report = None
    if pairs:
        bar = Progress(
            TextColumn(f"export to {target}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("points"),
            TimeRemainingColumn(),
            console=output.error_console,
            transient=True,
            disable=as_json or not output.error_console.is_terminal,  # off a terminal it leaves a blank line
        )
        task = bar.add_task("export", total=None)
        try:
            with bar:
                report = runs_api.export(
                    [run for run, _ in pairs],
                    target,
                    experiment=experiment,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
        except RunError as error:
            output.error(error)
    for stopped in report.runs if report is not None else []:
        if stopped.error:
            output.error(RunError(stopped.source, stopped.error))
    written = [r for r in report.runs if not r.error] if report is not None else []
    if written and not as_json:
        rows = [[r.source, r.ref, r.points, r.params, r.media] for r in written]
        output.table(
            None, ["RUN", "WRITTEN TO", "POINTS", "PARAMS", "MEDIA"], rows, right={"POINTS", "PARAMS", "MEDIA"}
        )
        refused = [f"{run.source}: {line}" for run in written for line in run.refused]
        output.note("refused or changed by the target:" if refused else "the target took everything.")
        for line in refused:
            output.note(f"  {line}")
    extra = report.as_dict() if report is not None else {"target": target, "runs": []}
    sys.exit(output.finish([info for _, info in pairs], target=target, exported=extra["runs"]))
