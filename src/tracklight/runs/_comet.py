"""Reader of offline Comet experiments: the ``<key>-<random>.zip`` archives ``comet_ml.OfflineExperiment``
writes (and ``comet upload`` sends later). An archive holds ``experiment.json`` and ``messages.json``, one
JSON message per line: ``metric_msg`` (name, value, step, epoch, time), ``parameter_msg`` (those the user
logged, ``source: manual``, and the command line's, ``cli``), ``log_other`` (the name), ``file_upload`` (files
stored in the archive).

Plain JSON: reading needs no Comet SDK. A continued experiment writes one archive per start, each listed as
its own run (they share the experiment key, shown as the version).
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from typing import Any

from tracklight.params import flatten
from tracklight.runs._files import mtime
from tracklight.runs._run import MediaFile, Points, Run, RunError, RunInfo, last_step, last_time

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
_POSITIONAL = re.compile(r"run_arg_\d+$")  # how Comet names a command line's positional arguments


class CometRun(Run):
    backend = "comet"

    def __init__(self, ref: str, path: str) -> None:
        super().__init__(ref, path)
        self._loaded: tuple[dict[str, Any], list[dict[str, Any]]] | None = None

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
        return [self.path]

    def params(self) -> dict[str, Any]:
        """The parameters logged by hand (``source: manual``) and the named ones Comet parsed from the command
        line (``cli``): Comet drops a hand-logged value equal to a command-line one, so ``--lr 0.01`` and
        ``log_hyperparams({"lr": 0.01})`` leave only the ``cli`` copy. Left out: positional arguments
        (``run_arg_<n>``) and Comet's own ``curr_step``/``curr_epoch`` (``auto-logged``). A hand-logged value
        wins over a command-line one of the same name."""
        manual: dict[str, Any] = {}
        cli: dict[str, Any] = {}
        for payload in self._payloads("parameter_msg"):
            for param in _params_of(payload):
                name, source = str(param.get("paramName")), param.get("source", "manual")
                if source == "manual":
                    manual[name] = param.get("paramValue")
                elif source == "cli" and not _POSITIONAL.match(name):
                    cli[name] = param.get("paramValue")
        return flatten({**cli, **manual})

    def _read(self) -> dict[str, Points]:
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
        found = []
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
    """Every Comet offline archive in ``folder`` (a ``.zip`` holding ``messages.json``)."""
    found: list[Run] = []
    for name in sorted(names):
        if not name.endswith(".zip"):
            continue
        path = os.path.join(folder, name)
        try:
            with zipfile.ZipFile(path) as archive:
                members = set(archive.namelist())
        except (OSError, zipfile.BadZipFile):
            continue  # not every zip file is a Comet archive; a damaged one cannot be told apart
        if {"messages.json", "experiment.json"} <= members:
            found.append(CometRun(path, path))
    return found
