"""What the commands print: aligned tables for people, one JSON document for programs.

Every ``--json`` output is one object with the same three keys, plus the command's own:

* ``command``: the command's name;
* ``runs``: one object per run (``ref``, ``backend``, ``name``, ``version``, ``status``, ``steps``, ``updated``,
  ``metrics``, ``params``: what ``ls`` shows), in the order given or found;
* ``errors``: one ``{"path", "message"}`` per path that holds no run or could not be read.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Set
from typing import Any

from tracklight.runs import RunError, RunInfo

__all__ = ["Output"]


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _when(seconds: float | None) -> str:
    return "-" if not seconds else time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities as null, numpy numbers as Python ones."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Output:
    """Collects errors, prints tables (or, with ``--json``, one document at the end)."""

    def __init__(self, command: str, as_json: bool) -> None:
        from rich.console import Console

        self.command = command
        self.as_json = as_json
        self.errors: list[RunError] = []
        self.error_console = Console(stderr=True, highlight=False)  # errors in red, the progress bar

    def error(self, error: RunError) -> None:
        self.errors.append(error)
        if not self.as_json:
            from rich.markup import escape  # a message's own brackets ("tracklight[mlflow]") are not markup

            self.error_console.print(f"[red]error[/red]: {escape(str(error))}", markup=True, soft_wrap=True)

    def note(self, text: str) -> None:
        if not self.as_json:
            sys.stdout.write(text + "\n")

    def finish(self, runs: list[RunInfo], **extra: Any) -> int:
        """Print the JSON document (with ``--json``); the exit status: 1 when any error was reported."""
        if self.as_json:
            document = {
                "command": self.command,
                "runs": [info.as_dict() for info in runs],
                "errors": [{"path": error.path, "message": error.reason} for error in self.errors],
                **extra,
            }
            sys.stdout.write(json.dumps(_plain(document), indent=2, allow_nan=False) + "\n")
        return 1 if self.errors else 0

    def table(
        self, title: str | None, columns: list[str], rows: list[list[Any]], right: Set[str] = frozenset()
    ) -> None:
        """A plain, aligned table: cells are never cut or folded, so a reference can be copied whole (and a
        thousand rows print in milliseconds, where a rich table takes seconds)."""
        cells = [[cell if isinstance(cell, str) else _number(cell) for cell in row] for row in rows]
        widths = [max([len(column)] + [len(row[index]) for row in cells]) for index, column in enumerate(columns)]

        def line(values: list[str]) -> str:
            aligned = [
                value.rjust(width) if column in right else value.ljust(width)
                for value, width, column in zip(values, widths, columns, strict=True)
            ]
            return "  ".join(aligned).rstrip()

        text = ["", title] if title else []
        text += [line(columns), "  ".join("-" * width for width in widths)]
        text += [line(row) for row in cells]
        sys.stdout.write("\n".join(text) + "\n")
        sys.stdout.flush()

    # ---- one renderer per kind of content ------------------------------------------------------------------

    def runs_table(self, infos: list[RunInfo]) -> None:
        rows = [
            [
                i.ref,
                i.backend,
                i.name or "-",
                i.version or "-",
                i.status or "-",
                i.steps,
                _when(i.updated),
                i.metrics,
                i.params,
            ]
            for i in infos
        ]
        columns = ["RUN", "BACKEND", "NAME", "VERSION", "STATUS", "STEPS", "UPDATED", "METRICS", "PARAMS"]
        self.table(None, columns, rows, right={"STEPS", "METRICS", "PARAMS"})

    def run_header(self, info: RunInfo) -> None:
        self.note(info.ref)
        details = [
            f"backend {info.backend}",
            f"name {info.name or '-'}",
            f"version {info.version or '-'}",
            f"status {info.status or '-'}",
            f"updated {_when(info.updated)}",
        ]
        self.note("  " + ", ".join(details))
