"""Reader of MLflow runs: SQLite stores and file stores (``mlruns/``) read directly, tracking servers through
``MlflowClient``.

Local stores are read with the standard library, not through MLflow: importing MLflow alone takes seconds
here, which ``ls`` cannot afford, and a file store needs ``MLFLOW_ALLOW_FILE_STORE`` for MLflow 3 to open it
at all. The tables and files read are the ones MLflow has kept stable since 1.x (``runs``, ``metrics``,
``params``, ``latest_metrics``, ``experiments``; ``meta.yaml``, ``metrics/<key>`` lines of
``timestamp value step``); the tests check every value against ``MlflowClient``'s.

References: ``sqlite:///<path>#<run id>`` (a relative path; ``sqlite:////abs/path`` for an absolute one), the
run's folder in a file store, and ``http(s)://host:port#<run id>`` for a server.
"""

from __future__ import annotations

import os
import re
import sqlite3
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import yaml

from tracklight._resumed import MLFLOW_TAG_PREFIX
from tracklight.runs._files import file_reader, mtime
from tracklight.runs._run import MediaFile, Points, Run, RunError, RunInfo
from tracklight.runs._superseded import segments_by_time, supersede

__all__ = ["MlflowFileRun", "MlflowServerRun", "MlflowSqliteRun", "from_ref", "scan", "sqlite_ref"]

_STATUS_NUMBERS = {1: "running", 2: "scheduled", 3: "finished", 4: "failed", 5: "killed"}
_DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_IMAGE_NAME = re.compile(r"^(?P<key>.+)\+step\+(?P<step>-?\d+)\+timestamp\+\d+\+[0-9a-f-]+\.(?P<ext>png|jpe?g)$")


def sqlite_ref(database: str, run_id: str) -> str:
    """``sqlite:///<path>#<run id>``: SQLAlchemy's spelling, so the part before ``#`` is a tracking URI too."""
    return f"sqlite:///{database}#{run_id}"


class _MlflowRun(Run):
    backend = "mlflow"

    def __init__(self, ref: str, path: str, run_id: str) -> None:
        super().__init__(ref, path)
        self.run_id = run_id
        self.row: dict[str, Any] = {}

    def info(self) -> RunInfo:
        row = self.row
        return RunInfo(
            ref=self.ref,
            backend=self.backend,
            name=row.get("name"),
            version=self.run_id,
            status=row.get("status"),
            steps=row.get("steps"),
            updated=row.get("updated"),
            metrics=int(row.get("metrics") or 0),
            params=int(row.get("params") or 0),
        )

    def _without_superseded(self, found: dict[str, Points], tags: dict[str, str]) -> dict[str, Points]:
        """Leave out the points a resumed run superseded: the run's ``tracklight.resumed.<ms>`` tags say when each
        later process took over and at which step (see :mod:`tracklight.runs._superseded`)."""
        takeovers = sorted(
            (int(key[len(MLFLOW_TAG_PREFIX) :]), None if value == "none" else int(value))
            for key, value in tags.items()
            if key.startswith(MLFLOW_TAG_PREFIX)
            and key[len(MLFLOW_TAG_PREFIX) :].isdigit()
            and (value == "none" or value.lstrip("-").isdigit())
        )
        if not takeovers:
            return found
        starts = [start / 1000 for start, _ in takeovers]
        steps = [step for _, step in takeovers]
        return {key: supersede(p, segments_by_time(p.time, starts), steps) for key, p in found.items()}

    def _artifacts(self, root: str | None) -> list[MediaFile]:
        """Files under a local artifact root; MLflow's image names give back the key and step."""
        if not root:
            return []
        folder = _local_path(root)
        if folder is None or not os.path.isdir(folder):
            return []
        found = []
        for parent, _, names in os.walk(folder):
            for name in sorted(names):
                if name.endswith("+compressed.webp"):  # MLflow's thumbnail of an image logged beside it
                    continue
                path = os.path.join(parent, name)
                relative = os.path.relpath(path, folder).replace(os.sep, "/")
                match = _IMAGE_NAME.match(name)
                if match and relative.startswith("images/"):
                    key, step, kind = match["key"], int(match["step"]), "image"
                else:
                    key, step, kind = relative, None, "file"
                found.append(MediaFile(key, kind, step, name, file_reader(path)))
        return found


class MlflowSqliteRun(_MlflowRun):
    """A run in an MLflow SQLite store, read with ``sqlite3`` in read-only mode."""

    def __init__(self, database: str, run_id: str, row: dict[str, Any] | None = None) -> None:
        super().__init__(sqlite_ref(database, run_id), database, run_id)
        self.row = row if row is not None else _sqlite_rows(database, run_id).get(run_id, {})
        if not self.row:
            raise RunError(self.ref, f"no run {run_id} in the MLflow store {database}")

    def _sources(self) -> list[str]:
        return [self.path]

    def params(self) -> dict[str, Any]:
        with _connect(self.path) as db:
            return dict(db.execute("SELECT key, value FROM params WHERE run_uuid = ? ORDER BY key", (self.run_id,)))

    def _read(self) -> dict[str, Points]:
        with _connect(self.path) as db:
            rows = db.execute(
                "SELECT key, step, value, timestamp, is_nan FROM metrics WHERE run_uuid = ? ORDER BY key, rowid",
                (self.run_id,),
            ).fetchall()
            marks = "SELECT key, value FROM tags WHERE run_uuid = ? AND key LIKE ?"
            tags = dict(db.execute(marks, (self.run_id, MLFLOW_TAG_PREFIX + "%")))
        if not rows:
            return {}
        keys, steps, values, stamps, nans = zip(*rows, strict=False)
        key_array = np.asarray(keys, dtype=object)
        value_array = np.where(np.asarray(nans, dtype=bool), np.nan, np.asarray(values, dtype=np.float64))
        edges = np.flatnonzero(key_array[1:] != key_array[:-1]) + 1
        found = {}
        for start, end in zip([0, *edges.tolist()], [*edges.tolist(), len(rows)], strict=False):
            found[str(keys[start])] = Points.of(
                steps[start:end], value_array[start:end], np.asarray(stamps[start:end], dtype=np.float64) / 1000
            )
        return self._without_superseded(found, tags)

    def media(self) -> list[MediaFile]:
        return self._artifacts(self.row.get("artifact_uri"))


class MlflowFileRun(_MlflowRun):
    """A run folder of a file store: ``<mlruns>/<experiment id>/<run id>/``."""

    def __init__(self, ref: str, folder: str) -> None:
        meta = _yaml(os.path.join(folder, "meta.yaml"))
        super().__init__(ref, folder, str(meta.get("run_id") or meta.get("run_uuid") or os.path.basename(folder)))
        self.meta = meta
        tags = _key_files(os.path.join(folder, "tags"))
        names = _metric_files(os.path.join(folder, "metrics"))
        status = meta.get("status")
        self.row = {
            "name": tags.get("mlflow.runName") or meta.get("run_name"),
            "status": _STATUS_NUMBERS.get(status, str(status).lower()) if status is not None else None,
            "metrics": len(names),
            "params": len(_key_files(os.path.join(folder, "params"))),
            "updated": mtime(*names.values(), os.path.join(folder, "meta.yaml")),
            "steps": _file_store_last_step(names.values()),
        }

    def params(self) -> dict[str, Any]:
        return _key_files(os.path.join(self.path, "params"))

    def _sources(self) -> list[str]:
        return list(_metric_files(os.path.join(self.path, "metrics")).values())

    def _read(self) -> dict[str, Points]:
        found = {}
        for key, path in _metric_files(os.path.join(self.path, "metrics")).items():
            try:
                table = np.loadtxt(path, dtype=np.float64, ndmin=2, usecols=(0, 1, 2))
            except ValueError as err:
                raise RunError(path, f"is damaged ({err})") from err
            if table.size == 0:
                table = np.zeros((0, 3))
            found[key] = Points.of(table[:, 2].astype(np.int64), table[:, 1], table[:, 0] / 1000)
        return self._without_superseded(found, _key_files(os.path.join(self.path, "tags")))

    def media(self) -> list[MediaFile]:
        return self._artifacts(self.meta.get("artifact_uri"))


class MlflowServerRun(_MlflowRun):
    """A run on a tracking server, through ``MlflowClient``."""

    def __init__(self, uri: str, run_id: str) -> None:
        super().__init__(f"{uri}#{run_id}", uri, run_id)
        from tracklight._imports import require

        require("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(uri)
        try:
            run = self.client.get_run(run_id)
        except Exception as err:
            raise RunError(self.ref, f"cannot be read from the MLflow server ({err})") from err
        self.run = run
        latest = run.data.metrics
        self.row = {
            "name": run.info.run_name,
            "status": str(run.info.status).lower(),
            "metrics": len(latest),
            "params": len(run.data.params),
            "updated": (run.info.end_time or run.info.start_time or 0) / 1000 or None,
        }

    def params(self) -> dict[str, Any]:
        return dict(self.run.data.params)

    def _read(self) -> dict[str, Points]:
        found = {}
        for key in sorted(self.run.data.metrics):
            history = self.client.get_metric_history(self.run_id, key)
            found[key] = Points.of(
                [m.step for m in history], [m.value for m in history], [m.timestamp / 1000 for m in history]
            )
        return self._without_superseded(found, dict(self.run.data.tags))


# ---- discovery ---------------------------------------------------------------------------------------------


def scan(folder: str, names: set[str]) -> list[Run]:
    """MLflow runs in ``folder``: every run of each SQLite store in it, or the folder itself when it is a
    file store's run folder."""
    found: list[Run] = []
    if "meta.yaml" in names and ("metrics" in names or "params" in names):
        found.append(MlflowFileRun(folder, folder))
    for name in sorted(names):
        if name.endswith(_DATABASE_SUFFIXES):
            path = os.path.join(folder, name)
            rows = _sqlite_rows(path)
            found.extend(MlflowSqliteRun(path, run_id, row) for run_id, row in rows.items())
    return found


def from_ref(ref: str) -> Run | None:
    if ref.startswith("sqlite:///") and "#" in ref:
        database, _, run_id = ref.removeprefix("sqlite:///").rpartition("#")
        if not os.path.isfile(database):
            raise RunError(database, "no such MLflow store")
        return MlflowSqliteRun(database, run_id)
    if ref.startswith(("http://", "https://")) and "#" in ref:
        uri, _, run_id = ref.rpartition("#")
        return MlflowServerRun(uri, run_id)
    return None


def _connect(path: str) -> sqlite3.Connection:
    from urllib.parse import quote

    try:
        return sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise RunError(path, f"cannot be opened as an SQLite database ({err})") from err


def _sqlite_rows(path: str, run_id: str | None = None) -> dict[str, dict[str, Any]]:
    """Every active run of an MLflow SQLite store (or the one ``run_id``), with what ``ls`` shows; {} for a
    database that is not an MLflow store."""
    with open(path, "rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            return {}
    where = "r.lifecycle_stage = 'active'" + (" AND r.run_uuid = ?" if run_id else "")
    arguments = (run_id,) if run_id else ()
    try:
        with _connect(path) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"runs", "metrics", "params", "experiments"} <= tables:
                return {}
            runs = db.execute(
                "SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, r.artifact_uri, e.name "
                f"FROM runs r LEFT JOIN experiments e ON e.experiment_id = r.experiment_id WHERE {where} "
                "ORDER BY r.start_time",
                arguments,
            ).fetchall()
            metrics = {
                row[0]: row[1:]
                for row in db.execute(
                    "SELECT run_uuid, COUNT(*), MAX(step), MAX(timestamp) FROM latest_metrics GROUP BY run_uuid"
                )
            }
            params = dict(db.execute("SELECT run_uuid, COUNT(*) FROM params GROUP BY run_uuid").fetchall())
    except sqlite3.Error as err:
        raise RunError(path, f"is an SQLite database that cannot be read as an MLflow store ({err})") from err
    found = {}
    for uuid, name, status, start, end, artifact_uri, experiment in runs:
        count, step, stamp = metrics.get(uuid, (0, None, None))
        updated = max(t for t in (start, end, stamp, 0) if t is not None) / 1000 or None
        found[uuid] = {
            "name": name,
            "experiment": experiment,
            "status": str(status).lower() if status else None,
            "metrics": count,
            "steps": step,
            "updated": updated,
            "params": params.get(uuid, 0),
            "artifact_uri": artifact_uri,
        }
    return found


def _yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as err:
        raise RunError(path, f"cannot be read ({err})") from err
    return loaded if isinstance(loaded, dict) else {}


def _key_files(folder: str) -> dict[str, str]:
    """Params and tags of a file store: one file per key (keys with ``/`` are nested folders)."""
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, encoding="utf-8") as handle:
                found[os.path.relpath(path, folder).replace(os.sep, "/")] = handle.read()
    return dict(sorted(found.items()))


def _metric_files(folder: str) -> dict[str, str]:
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            found[os.path.relpath(path, folder).replace(os.sep, "/")] = path
    return dict(sorted(found.items()))


def _file_store_last_step(paths: Any) -> int | None:
    from tracklight.runs._files import tail

    steps = []
    for path in paths:
        lines = tail(path, 512)
        if lines and len(lines[-1].split()) >= 3:
            steps.append(int(lines[-1].split()[2]))
    return max(steps) if steps else None


def _local_path(uri: str) -> str | None:
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path)
    if "://" in uri or uri.startswith("mlflow-artifacts:"):
        return None
    return uri
