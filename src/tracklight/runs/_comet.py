"""Reader of offline Comet experiments: the ``<key>-<random>.zip`` archives ``comet_ml.OfflineExperiment``
writes (and ``comet upload`` sends later). An archive holds ``experiment.json`` and ``messages.json``, one
JSON message per line: ``metric_msg`` (name, value, step, epoch, time), ``parameter_msg`` (only those the
user logged, ``source: manual``), ``log_other`` (the name), ``file_upload`` (files stored in the archive).

Plain JSON: reading needs no Comet SDK. A continued experiment writes one archive per start (they share the
experiment key, shown as the version): the experiment is listed once, at its newest archive, with every
archive's values. An archive whose ``log_other`` holds ``tracklight/resumed_after_step`` (``CometLogger``
continuing after a restart) supersedes the earlier archives' values at later steps, which are left out.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

from tracklight._resumed import SDK_MARK
from tracklight.params import flatten
from tracklight.runs._files import mtime
from tracklight.runs._run import MediaFile, Points, Run, RunError, RunInfo, last_step, last_time
from tracklight.runs._superseded import merge

#: The takeover step of an archive that did not supersede anything (an experiment continued by hand).
_NEVER = 2**62

__all__ = ["CometRun", "scan"]

_KINDS = {
    "visualization": "image",
    "audio": "audio",
    "text-sample": "text",
    "histogram3d": "histogram",
    "asset": "file",
}
_SYSTEM = "sys."  # the SDK's own CPU, memory and disk readings: not the user's metrics
_SDK_METRICS = {"process duration"}  # what the SDK logs by itself when an experiment ends


class CometRun(Run):
    backend = "comet"

    def __init__(self, ref: str, path: str, earlier: list[str] | None = None) -> None:
        super().__init__(ref, path)
        self._loaded: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
        #: The experiment's earlier archives (it was continued), oldest first.
        self.earlier = [CometRun(archive, archive) for archive in earlier or []]

    def contents(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``experiment.json`` and the messages, read once."""
        with self._lock:
            if self._loaded is None:
                try:
                    with zipfile.ZipFile(self.path) as archive:
                        experiment = json.loads(archive.read("experiment.json"))
                        lines = archive.read("messages.json").decode("utf-8").splitlines()
                except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
                    raise RunError(self.path, f"is not a readable Comet offline archive ({err})") from err
                messages = []
                for line in lines:
                    try:
                        messages.append(json.loads(line))
                    except ValueError:  # a line cut short by a crash
                        continue
                self._loaded = (experiment, messages)
            return self._loaded

    def _payloads(self, kind: str) -> list[dict[str, Any]]:
        return [message.get("payload", {}) for message in self.contents()[1] if message.get("type") == kind]

    def info(self) -> RunInfo:
        experiment, _ = self.contents()
        points = self.points()
        others = {payload.get("key"): payload.get("value") for payload in self._payloads("log_other")}
        return RunInfo(
            ref=self.ref,
            backend=self.backend,
            name=others.get("Name") or experiment.get("project_name"),
            version=experiment.get("offline_id"),
            status="finished" if experiment.get("stop_time") else "running",
            steps=last_step(points),
            updated=last_time(points) or mtime(self.path),
            metrics=len(points),
            params=len(self.params()),
        )

    def _sources(self) -> list[str]:
        return [*(run.path for run in self.earlier), self.path]

    def _takeover(self) -> int:
        """The step after which this archive supersedes the earlier ones' values (none: ``_NEVER``)."""
        for payload in self._payloads("log_other"):
            value = payload.get("value")
            if payload.get("key") == SDK_MARK and isinstance(value, int) and not isinstance(value, bool):
                return value
        return _NEVER

    def params(self) -> dict[str, Any]:
        """The parameters logged by hand (``source: manual``): not those Comet parses from the command line of
        whatever process ran (``cli``), nor its own ``curr_step``/``curr_epoch`` (``auto-logged``)."""
        found: dict[str, Any] = {}
        for payload in self._payloads("parameter_msg"):
            for param in _params_of(payload):
                if param.get("source", "manual") == "manual":
                    found[str(param.get("paramName"))] = param.get("paramValue")
        earlier: dict[str, Any] = {}
        for run in self.earlier:
            earlier.update(run.params())
        return {**earlier, **flatten(found)}

    def _read(self) -> dict[str, Points]:
        if not self.earlier:
            return self._own_points()
        segments = [*self.earlier, self]
        return merge([segment._own_points() for segment in segments], [segment._takeover() for segment in segments[1:]])

    def _own_points(self) -> dict[str, Points]:
        columns: dict[str, tuple[list[int], list[float], list[float]]] = {}
        epochs: list[tuple[Any, float, float]] = []
        for payload in self._payloads("metric_msg"):
            metric = payload.get("metric", {})
            value = metric.get("metricValue")
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            name = str(metric.get("metricName"))
            if name.startswith(_SYSTEM) or name in _SDK_METRICS:
                continue
            step = metric.get("step")
            stamp = payload.get("local_timestamp") or metric.get("timestamp")
            time = float(stamp) / 1000 if stamp else float("nan")
            _append(columns, name, step, number, time)
            if metric.get("epoch") is not None:  # Lightning's epoch travels in this field, not as a metric
                epochs.append((step, float(metric["epoch"]), time))
        if "epoch" not in columns:
            for step, epoch, time in epochs:
                _append(columns, "epoch", step, epoch, time)
        return {name: Points.of(*column) for name, column in columns.items()}

    def media(self) -> list[MediaFile]:
        found = [media for run in self.earlier for media in run.media()]
        for payload in self._payloads("file_upload"):
            member = payload.get("file_path")
            extra = payload.get("additional_params") or {}
            kind = _KINDS.get(str(payload.get("upload_type")))
            if not member or kind is None:  # source code and the SDK's own files are not the run's media
                continue
            key = str(extra.get("figName") or extra.get("fileName") or payload.get("upload_type"))
            name = os.path.basename(str(extra.get("fileName") or member))
            if kind == "image" and "." not in name:
                name += ".png"
            found.append(MediaFile(key, kind, extra.get("step"), name, _member(self.path, member)))
        return found


def _append(columns: dict[str, Any], name: str, step: Any, value: float, time: float) -> None:
    steps, values, times = columns.setdefault(name, ([], [], []))
    steps.append(int(step) if step is not None else len(steps))
    values.append(value)
    times.append(time)


def _params_of(payload: dict[str, Any]) -> list[dict[str, Any]]:
    param = payload.get("param") or payload.get("params")
    if isinstance(param, list):
        return [item for item in param if isinstance(item, dict)]
    return [param] if isinstance(param, dict) else []


def _member(archive: str, member: str) -> Any:
    def load() -> bytes:
        with zipfile.ZipFile(archive) as handle:
            return handle.read(member)

    return load


def scan(folder: str, names: set[str]) -> list[Run]:
    """Every Comet experiment in ``folder`` (``.zip`` archives holding ``messages.json``), once per key: a
    continued experiment's archives are read together, oldest first, and listed at the newest."""
    by_key: dict[str, list[tuple[float, str]]] = {}
    for name in sorted(names):
        if not name.endswith(".zip"):
            continue
        path = os.path.join(folder, name)
        try:
            with zipfile.ZipFile(path) as archive:
                if not {"messages.json", "experiment.json"} <= set(archive.namelist()):
                    continue
                experiment = json.loads(archive.read("experiment.json"))
        except (OSError, ValueError, zipfile.BadZipFile):
            continue  # not every zip file is a Comet archive; a damaged one cannot be told apart
        key = str(experiment.get("offline_id") or path) if isinstance(experiment, dict) else path
        started = experiment.get("start_time") if isinstance(experiment, dict) else None
        order = float(started) if isinstance(started, (int, float)) else mtime(path) or 0.0
        by_key.setdefault(key, []).append((order, path))
    found: list[Run] = []
    for archives in by_key.values():
        paths = [path for _, path in sorted(archives)]
        found.append(CometRun(paths[-1], paths[-1], paths[:-1]))
    return sorted(found, key=lambda run: run.path)
