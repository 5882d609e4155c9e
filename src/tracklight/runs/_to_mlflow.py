"""Export into MLflow: any tracking URI ``MlflowClient`` takes (a server over HTTP, an SQLite store).

One new run per exported run, in the experiment given (created when missing), with the source's name; its
metrics go in ``log_batch`` calls of MLflow's limits (1000 values, 100 params), each with its step and
timestamp; media files become artifacts under ``media/<kind>/<key>/``. MLflow's own rules are applied and
reported: keys it refuses are renamed by tracklight's one rule for that (``mlflow_key``), values longer than
it keeps are cut, and points without a timestamp get the export time.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from typing import Any

from tracklight._imports import require
from tracklight.runs._export import Exported, Progress, Source, quiet, staged_media

__all__ = ["MlflowWriter"]

_STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
_METRICS_PER_BATCH = 1000
_PARAMS_PER_BATCH = 100


class MlflowWriter:
    def __init__(self, uri: str, experiment: str) -> None:
        require("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.experiment = experiment
        with quiet("mlflow", "alembic"):  # a new SQLite store's tables are made here, with INFO lines
            self.client = MlflowClient(uri)
        self._experiment_id: str | None = None

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None and found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            if found is not None:
                self._experiment_id = found.experiment_id
            else:
                self._experiment_id = self.client.create_experiment(
                    self.experiment, artifact_location=self._artifacts()
                )
        return self._experiment_id

    def _artifacts(self) -> str | None:
        """Beside an SQLite store, as tracklight's logger keeps them (MLflow's default is ./mlruns of the cwd)."""
        if not self.uri.startswith("sqlite:///"):
            return None
        from pathlib import Path

        database = Path(self.uri.removeprefix("sqlite:///").partition("?")[0]).absolute()
        return (database.parent / "artifacts").as_uri()

    def write(self, source: Source, progress: Progress) -> Exported:
        # MLflow's INFO lines (creating a store's tables, alembic's migrations) and its "View run" links on
        # stdout are not the export's report; stdout is for --json.
        with quiet("mlflow", "alembic"), contextlib.redirect_stdout(io.StringIO()):
            return self._write(source, progress)

    def _unfinished(self, source: Source) -> Any:
        """The run an earlier export of ``source`` left RUNNING (a server that went away midway), else None."""
        ref = source.run.ref.replace("'", "\\'")
        found = self.client.search_runs(
            [self.experiment_id()],
            filter_string=f"tags.`tracklight.source` = '{ref}' and attributes.status = 'RUNNING'",
            max_results=1,
        )
        return found[0] if found else None

    def _write(self, source: Source, progress: Progress) -> Exported:
        from mlflow.entities import Metric, Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        from tracklight.loggers.mlflow import mlflow_key  # MLflow's key rule lives with its logger: one place

        now_ms = int(time.time() * 1000)
        starts = [points.time[0] for points in source.points.values() if len(points) and not math.isnan(points.time[0])]
        run = self._unfinished(source)
        there: dict[str, int] = {}  # points an unfinished export already sent, per key: sent in order, so skipped
        if run is None:
            run = self.client.create_run(
                self.experiment_id(),
                run_name=source.name,
                start_time=int(min(starts) * 1000) if starts else now_ms,
                tags={"tracklight.source": source.run.ref, "tracklight.source_backend": source.run.backend},
            )
        else:
            there = {key: len(self.client.get_metric_history(run.info.run_id, key)) for key in run.data.metrics}
        run_id = run.info.run_id
        done = Exported(source.run.ref, f"{self.uri}#{run_id}")
        renamed: dict[str, str] = {}

        def key(name: str) -> str:
            mapped = mlflow_key(name)
            if mapped != name:
                renamed[name] = mapped
            return mapped

        params = []
        cut = []
        for name, value in source.params.items():
            text = str(value)
            if len(text) > MAX_PARAM_VAL_LENGTH:
                cut.append(name)
                text = text[:MAX_PARAM_VAL_LENGTH]
            params.append(Param(key(name), text))
        sent = [param for param in params if param.key not in run.data.params]  # all, unless an export resumes
        for start in range(0, len(sent), _PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=sent[start : start + _PARAMS_PER_BATCH])
        done.params = len(params)
        if cut:
            done.refused.append(f"MLflow keeps {MAX_PARAM_VAL_LENGTH} characters per parameter: cut {', '.join(cut)}")

        untimed = duplicates = 0
        batch: list[Any] = []
        for name, points in source.points.items():
            mapped = key(name)
            seen: set[tuple[int, float, int]] = set()
            skip = there.get(mapped, 0)
            if skip:
                done.points += skip
                progress(skip)
            for step, value, stamp in zip(
                points.step.tolist()[skip:], points.value.tolist()[skip:], points.time.tolist()[skip:], strict=True
            ):
                if stamp != stamp:
                    # One millisecond apart in logged order: MLflow keeps a single copy of points equal in step,
                    # value and time, and a CSV run can repeat a value at one step.
                    stamp_ms = now_ms + untimed
                    untimed += 1
                else:
                    stamp_ms = round(stamp * 1000)
                if (step, value, stamp_ms) in seen:
                    duplicates += 1
                seen.add((step, value, stamp_ms))
                batch.append(Metric(mapped, value, stamp_ms, step))
                if len(batch) == _METRICS_PER_BATCH:
                    self.client.log_batch(run_id, metrics=batch)
                    done.points += len(batch)
                    progress(len(batch))
                    batch = []
        if batch:
            self.client.log_batch(run_id, metrics=batch)
            done.points += len(batch)
            progress(len(batch))
        if untimed:
            done.refused.append(
                f"{untimed} point(s) had no timestamp; MLflow got the export time for them (1 ms apart, in order)"
            )
        if duplicates:
            done.refused.append(f"MLflow keeps one copy of points equal in step, value and time: {duplicates} merged")
        if renamed:
            shown = ", ".join(f"{old!r} -> {new!r}" for old, new in list(renamed.items())[:10])
            done.refused.append(f"MLflow refuses some characters in keys: renamed {len(renamed)} ({shown})")

        with staged_media(source) as staged:
            for media, path in staged:
                step = "" if media.step is None else f"/step_{media.step}"
                self.client.log_artifact(
                    run_id, path, artifact_path=f"media/{media.kind}/{mlflow_key(media.key)}{step}"
                )
                done.media += 1
        self.client.set_terminated(run_id, _STATUS.get(source.status or "", "FINISHED"))
        return done
