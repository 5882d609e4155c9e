"""Read back what the real Comet and Neptune SDKs stored offline, and watch for network calls.

Comet: an offline experiment is a ``.zip`` archive holding ``experiment.json`` and ``messages.json``
(one JSON message per line; uploaded files are stored beside them under the name in ``file_path``).
Neptune: an offline run is a directory ``<data dir>/offline/run__<id>__...`` whose ``data-1.log``
holds one JSON operation per line; uploaded file contents are copies under its ``upload_path/``.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import socket
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

# ---- Comet ------------------------------------------------------------------------------------------------


@dataclass
class CometArchive:
    path: str
    experiment: dict[str, Any]
    messages: list[dict[str, Any]]
    zip: zipfile.ZipFile = field(repr=False)

    @property
    def key(self) -> str:
        return str(self.experiment["offline_id"])

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message["payload"] for message in self.messages if message["type"] == kind]

    def metrics(self, name: str) -> list[tuple[int | None, int | None, float]]:
        """(step, epoch, value) of every value logged for metric ``name``, in order."""
        return [
            (m["metric"]["step"], m["metric"]["epoch"], m["metric"]["metricValue"])
            for m in self.of_type("metric_msg")
            if m["metric"]["metricName"] == name
        ]

    def parameters(self) -> dict[str, Any]:
        found = {}
        for payload in self.of_type("parameter_msg"):
            param = payload.get("param") or payload.get("params")
            if param["source"] == "manual":
                found[param["paramName"]] = param["paramValue"]
        return found

    def others(self) -> dict[str, Any]:
        return {payload["key"]: payload["value"] for payload in self.of_type("log_other")}

    def uploads(self, upload_type: str) -> list[dict[str, Any]]:
        return [p for p in self.of_type("file_upload") if p["upload_type"] == upload_type]

    def file(self, upload: dict[str, Any]) -> bytes:
        return self.zip.read(upload["file_path"])


def end_experiment() -> None:
    """End the process's running Comet experiment, as the process's exit (or the user's ``experiment.end()``)
    does: that writes its offline archive. Loggers leave it open after ``finalize``, as Lightning's does."""
    import sys

    comet_ml = sys.modules.get("comet_ml")
    running = comet_ml.get_running_experiment() if comet_ml is not None else None
    if running is not None and not running.ended:
        running.end()


def comet_archives(directory: str | os.PathLike[str]) -> list[CometArchive]:
    """Every offline archive in ``directory``, oldest first, once the running experiment was ended."""
    end_experiment()
    found = []
    for path in sorted(glob.glob(os.path.join(os.fspath(directory), "*.zip")), key=os.path.getmtime):
        archive = zipfile.ZipFile(path)
        experiment = json.loads(archive.read("experiment.json"))
        messages = [json.loads(line) for line in archive.read("messages.json").decode().splitlines() if line]
        found.append(CometArchive(path, experiment, messages, archive))
    return found


# ---- Neptune ----------------------------------------------------------------------------------------------


@dataclass
class NeptuneRun:
    directory: str
    operations: list[dict[str, Any]]

    def of_path(self, path: str) -> list[dict[str, Any]]:
        parts = path.split("/")
        return [op for op in self.operations if op["path"] == parts]

    def series(self, path: str) -> list[tuple[float | None, Any]]:
        """(step, value) of every entry appended to the series at ``path``."""
        return [(v["step"], v["value"]) for op in self.of_path(path) if "values" in op for v in op["values"]]

    def atoms(self) -> dict[str, Any]:
        """The value of every atom (``Assign*``) by path, after deletions."""
        found: dict[str, Any] = {}
        for op in self.operations:
            path = "/".join(op["path"])
            if op["type"].startswith("Assign"):
                found[path] = op["value"]
            elif op["type"] == "DeleteAttribute":
                found.pop(path, None)
        return found

    def files(self) -> dict[str, bytes]:
        """The content of every file field (``UploadFile``) by path, after deletions."""
        found: dict[str, bytes] = {}
        for op in self.operations:
            path = "/".join(op["path"])
            if op["type"] == "UploadFile":
                source = op["file_path"] or os.path.join(self.directory, "upload_path", op["tmp_file_name"])
                with open(source, "rb") as handle:
                    found[path] = handle.read()
            elif op["type"] == "DeleteAttribute":
                found.pop(path, None)
        return found

    def paths(self) -> set[str]:
        return {"/".join(op["path"]) for op in self.operations}


def neptune_runs(data_directory: str | os.PathLike[str]) -> list[NeptuneRun]:
    """Every offline run under a Neptune data directory (``NEPTUNE_DATA_DIRECTORY``), oldest first."""
    runs = []
    pattern = os.path.join(os.fspath(data_directory), "offline", "*", "data-1.log")
    for log in sorted(glob.glob(pattern), key=os.path.getmtime):
        with open(log, encoding="utf-8") as handle:
            operations = [json.loads(line)["obj"] for line in handle if line.strip()]
        runs.append(NeptuneRun(os.path.dirname(log), operations))
    return runs


def stop_started_runs(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Record the Neptune runs started from now on; call what this returns to stop those still open (what the
    client does at exit: loggers leave their run open after ``finalize``, as Lightning's did)."""
    import neptune

    started: list[Any] = []
    init_run = neptune.init_run

    def recording(*args: Any, **kwargs: Any) -> Any:
        started.append(init_run(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(neptune, "init_run", recording)

    def stop() -> None:
        for run in started:
            if run.get_state() != "stopped":
                run.stop()

    return stop


def assert_steps_increase(run: NeptuneRun) -> int:
    """Every series of the run has strictly increasing steps (what Neptune's server demands); returns how many
    series were checked."""
    steps: dict[str, list[float]] = defaultdict(list)
    for op in run.operations:
        for entry in op.get("values", []) if op["type"].startswith("Log") else []:
            if entry["step"] is not None:
                steps["/".join(op["path"])].append(entry["step"])
    for path, series in steps.items():
        assert all(a < b for a, b in itertools.pairwise(series)), f"{path}: steps {series} do not increase"
    return len(steps)


# ---- the network ------------------------------------------------------------------------------------------


def _loopback(host: Any) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse every outbound connection and name lookup, and list the attempts (a network that is down); this
    machine's loopback stays open."""
    attempts: list[str] = []
    real_connect = socket.socket.connect

    def refuse(what: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what}{args[-1:] if what == 'connect' else args[:2]}")
            raise OSError("network disabled in this test")

        return call

    def connect(self: socket.socket, address: Any) -> Any:
        # A Unix socket or this machine's loopback is not the network: an SDK's own service socket, or a server an
        # earlier test started on 127.0.0.1 and a background thread of its run still retrying.
        if self.family == socket.AF_UNIX or (isinstance(address, tuple) and _loopback(address[0])):
            return real_connect(self, address)
        return refuse("connect")(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if _loopback(host):
            return real_getaddrinfo(host, *args, **kwargs)
        return refuse("getaddrinfo")(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


#: Run in a fresh interpreter: every name lookup or connection hangs (a network that drops packets),
#: after noting itself in the file named by argv[1]. A test gives the script a short timeout.
HANGING_NETWORK = """
import socket, sys, time
log = sys.argv[1]

def hang(what):
    def call(*args, **kwargs):
        with open(log, "a") as handle:
            handle.write(f"{what} {args[-1:]!r}\\n")
        time.sleep(3600)
    return call

socket.getaddrinfo = hang("getaddrinfo")
socket.create_connection = hang("create_connection")
_connect = socket.socket.connect
def connect(self, address):
    if self.family == socket.AF_UNIX:
        return _connect(self, address)
    return hang("connect")(self, address)
socket.socket.connect = connect
"""
