"""Reading runs back, whatever wrote them: the Python side of the ``tracklight`` command.

``find`` lists the runs under folders (CSV and TensorBoard folders, MLflow stores, offline W&B, Comet and
Neptune runs, tracklight's spill files), ``open`` opens one from what ``tracklight ls`` prints, and ``export``
writes runs into another backend. A :class:`Run` gives its hyperparameters and its metrics as pandas frames.
Nothing here imports a logger, and pandas is imported only when a frame is asked for.

In a notebook::

    from tracklight import runs

    for run in runs.find("demo_logs"):
        print(run.ref, run.info().steps)
    runs.open("demo_logs/csv/version_0").metric("val/acc").tail()  # a frame: step, value, time
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracklight.runs._find import BACKENDS, find, open
from tracklight.runs._run import MediaFile, Points, Run, RunError, RunInfo

if TYPE_CHECKING:
    from tracklight.runs._export import ExportReport, export

__all__ = ["BACKENDS", "ExportReport", "MediaFile", "Points", "Run", "RunError", "RunInfo", "export", "find", "open"]


def __getattr__(name: str) -> Any:
    if name in ("export", "ExportReport"):  # writing imports more; reading should not pay for it
        from tracklight.runs import _export

        return getattr(_export, name)
    raise AttributeError(f"module 'tracklight.runs' has no attribute {name!r}")
