"""Reader of offline Neptune runs: ``<data dir>/.neptune/offline/run__<id>__.../data-1.log`` (what ``neptune
sync`` uploads later), one JSON operation per line. Series (``LogFloats``) are metrics, with their steps
and timestamps; atoms (``Assign*``) under a ``hyperparams`` or ``parameters`` namespace are hyperparameters
(Lightning's ``NeptuneLogger`` writes ``training/hyperparams/...``), keyed by the path after it; uploaded
files are media. The SDK's own readings (``monitoring/``, ``sys/``) are left out of the metrics.

Plain JSON: reading needs no Neptune SDK.

Neptune cannot reopen an offline run, so ``NeptuneLogger`` continuing one after a restart writes a new offline
run naming the one it continues (``tracklight/resumed_from``) and the step it took over at
(``tracklight/resumed_after_step``): such a run is read with the runs it continues, as one run, without the
values they logged after that step. Each stays listed on its own too, as ``neptune sync`` sends each as a run.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tracklight._resumed import NEPTUNE_FROM, SDK_MARK
from tracklight.runs._files import file_reader, mtime
from tracklight.runs._run import MediaFile, Points, Run, RunError, RunInfo, last_step, last_time
from tracklight.runs._superseded import merge

#: The takeover step of a run that did not continue another.
_NEVER = 2**62

__all__ = ["NeptuneRun", "scan"]

LOG = "data-1.log"
_SYSTEM = ("monitoring", "sys", "source_code")
_PARAM_NAMESPACES = ("hyperparams", "parameters")


class NeptuneRun(Run):
    backend = "neptune"

    def __init__(self, ref: str, path: str) -> None:
        super().__init__(ref, path)
        self._operations: list[dict[str, Any]] | None = None
        self._earlier: list[NeptuneRun] | None = None

    def earlier(self) -> list[NeptuneRun]:
        """The offline runs this one continues (``tracklight/resumed_from``), oldest first; found once."""
        with self._lock:
            if self._earlier is None:
                chain: list[NeptuneRun] = []
                seen = {_container_id(self.path)}
                current: NeptuneRun = self
                while True:
                    before = current.atoms().get(NEPTUNE_FROM)
                    folder = _sibling(current.path, before) if isinstance(before, str) and before not in seen else None
                    if folder is None:
                        break
                    seen.add(before)
                    current = NeptuneRun(folder, folder)
                    chain.insert(0, current)
                self._earlier = chain
            return self._earlier

    def operations(self) -> list[dict[str, Any]]:
        with self._lock:
            if self._operations is None:
                log = os.path.join(self.path, LOG)
                try:
                    with open(log, encoding="utf-8") as handle:
                        lines = handle.readlines()
                except OSError as err:
                    raise RunError(log, f"cannot be read ({err.strerror})") from err
                operations = []
                for line in lines:
                    try:
                        operations.append(json.loads(line)["obj"])
                    except (ValueError, KeyError, TypeError):  # a line cut short by a crash
                        continue
                self._operations = operations
            return self._operations

    def atoms(self) -> dict[str, Any]:
        """The value of every atom by path, after deletions."""
        found: dict[str, Any] = {}
        for operation in self.operations():
            path = "/".join(operation.get("path", []))
            kind = str(operation.get("type", ""))
            if kind.startswith("Assign"):
                found[path] = operation.get("value")
            elif kind == "DeleteAttribute":
                found.pop(path, None)
        return found

    def info(self) -> RunInfo:
        atoms = self.atoms()
        points = self.points()
        failed = atoms.get("sys/failed")
        return RunInfo(
            ref=self.ref,
            backend=self.backend,
            name=atoms.get("sys/name") or None,
            version=atoms.get("sys/custom_run_id") or _container_id(self.path),
            status="failed" if failed else None,
            steps=last_step(points),
            updated=last_time(points) or mtime(os.path.join(self.path, LOG)),
            metrics=len(points),
            params=len(self.params()),
        )

    def _sources(self) -> list[str]:
        return [*(os.path.join(run.path, LOG) for run in self.earlier()), os.path.join(self.path, LOG)]

    def params(self) -> dict[str, Any]:
        found = {}
        for path, value in self.atoms().items():
            parts = path.split("/")
            for namespace in _PARAM_NAMESPACES:
                if namespace in parts[:-1]:
                    found["/".join(parts[parts.index(namespace) + 1 :])] = value
                    break
        earlier = {key: value for run in self.earlier() for key, value in run.params().items()}
        return dict(sorted({**earlier, **found}.items()))

    def _read(self) -> dict[str, Points]:
        runs = [*self.earlier(), self]
        return merge([run._own_points() for run in runs], [_takeover(run.atoms()) for run in runs[1:]])

    def _own_points(self) -> dict[str, Points]:
        columns: dict[str, tuple[list[int], list[float], list[float]]] = {}
        for operation in self.operations():
            kind = operation.get("type")
            path_parts = operation.get("path", [])
            if not path_parts or path_parts[0] in _SYSTEM:
                continue
            path = "/".join(path_parts)
            if kind == "ClearFloatLog":
                columns.pop(path, None)
            elif kind == "LogFloats":
                steps, values, times = columns.setdefault(path, ([], [], []))
                for entry in operation.get("values", []):
                    step = entry.get("step")
                    steps.append(int(step) if step is not None else len(steps))
                    values.append(float(entry.get("value")))
                    times.append(float(entry.get("ts") or "nan"))
        return {path: Points.of(*column) for path, column in columns.items() if column[0]}

    def media(self) -> list[MediaFile]:
        found: dict[str, MediaFile] = {}
        for operation in self.operations():
            path = "/".join(operation.get("path", []))
            if operation.get("type") == "UploadFile":
                source = operation.get("file_path") or os.path.join(
                    self.path, "upload_path", str(operation.get("tmp_file_name"))
                )
                extension = operation.get("ext") or ""
                name = os.path.basename(path) + (f".{extension}" if extension else "")
                kind = "image" if extension in ("png", "jpg", "jpeg") else "file"
                found[path] = MediaFile(path, kind, None, name, file_reader(source))
            elif operation.get("type") == "DeleteAttribute":
                found.pop(path, None)
        return list(found.values())


def _takeover(atoms: dict[str, Any]) -> int:
    value = atoms.get(SDK_MARK)
    return value if isinstance(value, int) and not isinstance(value, bool) else _NEVER


def _sibling(folder: str, container_id: str) -> str | None:
    """The offline run folder of ``container_id`` beside ``folder`` (``run__<container id>__<pid>__<random>``)."""
    parent = os.path.dirname(os.path.normpath(folder))
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return None
    for name in names:
        path = os.path.join(parent, name)
        if _container_id(path) == container_id and os.path.isfile(os.path.join(path, LOG)):
            return path
    return None


def _container_id(folder: str) -> str | None:
    name = os.path.basename(os.path.normpath(folder))
    return name.split("__")[1] if name.count("__") >= 2 else None


def scan(folder: str, names: set[str]) -> list[Run]:
    """The offline Neptune run in ``folder``, if it holds a ``data-1.log``."""
    return [NeptuneRun(folder, folder)] if LOG in names else []
