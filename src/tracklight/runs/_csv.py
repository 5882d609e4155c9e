"""Reader of CSV runs: a folder with ``metrics.csv`` (and ``hparams.yaml``), as tracklight's and Lightning's
``CSVLogger`` write them. Wide format: a ``step`` column and one column per metric, empty where a row has no
value; ``epoch`` is a metric like any other. The format keeps no timestamps and no status.

``metrics.csv`` is read with pandas' C parser (a million rows in a fraction of a second); ``ls`` reads only the
header and the last lines.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import numpy as np

from tracklight.runs._files import media_index, mtime, name_and_version, read_hparams, tail
from tracklight.runs._run import MediaFile, Points, Run, RunError, RunInfo

__all__ = ["CSVRun", "scan"]

METRICS = "metrics.csv"
HPARAMS = "hparams.yaml"


class CSVRun(Run):
    backend = "csv"

    def __init__(self, ref: str, path: str) -> None:
        super().__init__(ref, path)
        self.metrics_path = os.path.join(path, METRICS)
        self.hparams_path = os.path.join(path, HPARAMS)

    def info(self) -> RunInfo:
        columns = self._header()
        name, version = name_and_version(self.path)
        return RunInfo(
            ref=self.ref,
            backend=self.backend,
            name=name,
            version=version,
            steps=self._last_step(columns),
            updated=mtime(self.metrics_path, self.hparams_path),
            metrics=len([c for c in columns if c != "step"]),
            params=len(self.params()),
        )

    def params(self) -> dict[str, Any]:
        return read_hparams(self.hparams_path)

    def _read(self) -> dict[str, Points]:
        import pandas as pd

        try:
            with open(self.metrics_path, "rb") as handle:
                data = handle.read()
        except OSError as err:
            raise RunError(self.metrics_path, f"cannot be read ({err.strerror})") from err
        if data and not data.endswith(b"\n"):  # a last row cut short by a kill: its values may be cut too
            data = data[: data.rfind(b"\n") + 1]
        try:
            frame = pd.read_csv(io.BytesIO(data), engine="c", dtype=np.float64, on_bad_lines="error")
        except pd.errors.EmptyDataError:
            return {}
        except (ValueError, pd.errors.ParserError):
            return _read_rows(self.metrics_path, data)  # a header again mid-file (new columns), or damage
        if "step" in frame.columns:
            step_column = frame.pop("step").to_numpy()
        else:  # a CSV without steps: the row number, as CSVLogger itself counts them
            step_column = np.arange(len(frame), dtype=np.float64)
        found = {}
        for column in frame.columns:
            values = frame[column].to_numpy()
            present = ~np.isnan(values)
            steps = step_column[present]
            known = ~np.isnan(steps)  # a row whose step cell is empty (should not happen): the row number
            steps = np.where(known, steps, np.flatnonzero(present))
            found[str(column)] = Points.of(steps.astype(np.int64), values[present])
        return found

    def media(self) -> list[MediaFile]:
        return media_index(self.path)

    def _sources(self) -> list[str]:
        return [self.metrics_path]

    # ---- cheap reads for ls ------------------------------------------------------------------------------

    def _header(self) -> list[str]:
        try:
            with open(self.metrics_path, encoding="utf-8", newline="") as handle:
                line = handle.readline()
        except OSError as err:
            raise RunError(self.metrics_path, f"cannot be read ({err.strerror})") from err
        return next(csv.reader([line]), [])

    def _last_step(self, columns: list[str]) -> int | None:
        if "step" not in columns:
            return None
        position = columns.index("step")
        for line in reversed(tail(self.metrics_path)):
            row = next(csv.reader(io.StringIO(line.decode("utf-8", "replace"))), [])
            if len(row) > position and row != columns:
                try:
                    return int(float(row[position]))
                except ValueError:
                    continue
        return None


def _read_rows(path: str, data: bytes) -> dict[str, Points]:
    """The slow, careful reading: a row that is a header again (a logger that appended with new columns)
    starts a new section with its own columns; anything else that is not a number names the line.

    Raises:
        RunError: a row with more cells than its header, or a cell that is not a number.
    """
    columns: dict[str, tuple[list[int], list[float]]] = {}
    header: list[str] | None = None
    rows = csv.reader(io.StringIO(data.decode("utf-8", "replace")))
    for number, row in enumerate(rows, 1):
        if not row:
            continue
        if header is None or ("step" in row and row[row.index("step")] == "step"):
            header = row
            continue
        if len(row) > len(header):
            raise RunError(path, f"is damaged: line {number} has {len(row)} cells, its header {len(header)}")
        cells = dict(zip(header, row, strict=False))
        try:
            step = int(float(cells["step"])) if cells.get("step") else number
            for name, cell in cells.items():
                if name != "step" and cell != "":
                    steps, values = columns.setdefault(name, ([], []))
                    steps.append(step)
                    values.append(float(cell))
        except ValueError as err:
            raise RunError(path, f"is damaged: line {number} holds something that is not a number ({err})") from err
    return {name: Points.of(steps, values) for name, (steps, values) in columns.items()}


def scan(folder: str, names: set[str]) -> list[Run]:
    """The CSV run in ``folder``, if it holds a ``metrics.csv``."""
    return [CSVRun(folder, folder)] if METRICS in names else []
