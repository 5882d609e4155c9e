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
            frame = pd.read_csv(self.metrics_path, engine="c", dtype=np.float64, on_bad_lines="error")
        except pd.errors.EmptyDataError:
            return {}
        except (ValueError, pd.errors.ParserError) as err:
            raise RunError(self.metrics_path, f"is damaged and cannot be read ({err})") from err
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


def scan(folder: str, names: set[str]) -> list[Run]:
    """The CSV run in ``folder``, if it holds a ``metrics.csv``."""
    return [CSVRun(folder, folder)] if METRICS in names else []
