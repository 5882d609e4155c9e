"""Reader of offline W&B runs: the ``run-<id>.wandb`` transaction log in each ``offline-run-*`` folder (also
what ``wandb sync`` uploads later). Needs the ``wandb`` package for its protobuf classes.

The file is a LevelDB-style log: a 7-byte header (``:W&B``, the magic 0xBEE1 little-endian, version 0),
then 32 KiB blocks of records. Each record has a 7-byte header (crc32 of type byte + payload, payload
length, type: FULL=1, FIRST=2, MIDDLE=3, LAST=4); a block's tail shorter than a header is zero padding.
Payloads are ``wandb.proto.wandb_internal_pb2.Record`` messages. Blocks are aligned to the start of the
file, so the first block holds the file header too.

A run's steps are Lightning's ``trainer/global_step`` where the rows have it (tracklight's and Lightning's
``WandbLogger``), else W&B's own ``_step``; each point's time is its row's ``_timestamp``. Media are the
files the history's media values point to (under the folder's ``files/``). A resumed run writes one folder
per start (a segment): the run is listed once, at its newest segment, with every segment's points. A segment
started with ``resume_from="<id>?_step=<n>"`` (W&B's rewind, what ``WandbLogger.load_state_dict`` does) records
that branch point, and the earlier segments' rows after W&B's step ``n`` are left out, as W&B drops them.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tracklight.params import flatten
from tracklight.runs._files import file_reader, mtime
from tracklight.runs._run import MediaFile, Points, Run, RunError, RunInfo, last_step, last_time
from tracklight.runs._superseded import keep

#: The takeover step of a segment that did not rewind: none of the earlier rows is superseded.
_NEVER = 2**62

__all__ = ["HEADER", "StoredArtifact", "StoredRun", "WandbRun", "payloads", "read_run", "read_runs", "records", "scan"]

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32 * 1024
RECORD_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def payloads(path: str | os.PathLike[str]) -> list[bytes]:
    """Every record payload of the file, reassembled from its fragments and checked against its crc32."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[: len(HEADER)] != HEADER:
        raise ValueError(f"{path} does not start with the W&B log header: {data[:7]!r}")
    out: list[bytes] = []
    pending: bytearray | None = None
    pos = len(HEADER)
    while pos < len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < RECORD_HEADER:
            pos += left_in_block
            continue
        if pos + RECORD_HEADER > len(data):
            break
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + RECORD_HEADER])
        if kind == 0 and length == 0 and crc == 0:  # zero padding to the end of the block
            pos += left_in_block
            continue
        body = data[pos + RECORD_HEADER : pos + RECORD_HEADER + length]
        if len(body) < length:
            break  # a record still being written
        if zlib.crc32(bytes([kind]) + body) != crc:
            raise ValueError(f"{path}: bad crc32 in the record at byte {pos}")
        pos += RECORD_HEADER + length
        if kind == FULL:
            out.append(bytes(body))
        elif kind == FIRST:
            pending = bytearray(body)
        elif kind in (MIDDLE, LAST):
            if pending is None:
                raise ValueError(f"{path}: a fragment of type {kind} at byte {pos} has no FIRST before it")
            pending += body
            if kind == LAST:
                out.append(bytes(pending))
                pending = None
        else:
            raise ValueError(f"{path}: unknown record type {kind} at byte {pos}")
    return out


def records(path: str | os.PathLike[str]) -> list[Any]:
    """Every record of the file, parsed."""
    from tracklight._imports import require

    pb = require("wandb.proto.wandb_internal_pb2", "wandb")

    parsed = []
    for payload in payloads(path):
        record = pb.Record()
        record.ParseFromString(payload)
        parsed.append(record)
    return parsed


@dataclass
class StoredArtifact:
    name: str
    type: str
    aliases: list[str]
    metadata: dict[str, Any]
    files: dict[str, dict[str, Any]]  # path in the artifact -> {"size", "digest", "local_path"}


@dataclass
class StoredRun:
    """What one ``run-<id>.wandb`` file holds, decoded."""

    path: str
    run_id: str = ""
    project: str = ""
    display_name: str = ""
    resume: bool = False
    start_time: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[StoredArtifact] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    exit_code: int | None = None
    #: W&B's step this segment rewound the run to (``resume_from``); ``None`` when it did not.
    branch_step: int | None = None

    def values(self, key: str) -> list[tuple[int | None, Any]]:
        """``(trainer/global_step, value)`` of every history row that has ``key``, in order."""
        return [(row.get("trainer/global_step"), row[key]) for row in self.history if key in row]

    @property
    def steps(self) -> list[int]:
        """W&B's own ``_step`` of every history row."""
        return [row["_step"] for row in self.history]

    @property
    def run_dir(self) -> str:
        return os.path.dirname(self.path)


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def _history_value(item: Any) -> Any:
    kind = item.WhichOneof("value")
    if kind is None:
        return json.loads(item.value_json) if item.value_json else None
    if kind == "none":
        return None
    if kind == "json":
        return json.loads(item.json)
    return getattr(item, kind)


def _set(target: dict[str, Any], item: Any, value: Any) -> None:
    if item.nested_key and len(item.nested_key) > 1:
        for part in item.nested_key[:-1]:
            target = target.setdefault(part, {})
        target[item.nested_key[-1]] = value
    else:
        target[_key(item)] = value


def _remove(target: dict[str, Any], item: Any) -> None:
    keys = list(item.nested_key) or [item.key]
    for part in keys[:-1]:
        target = target.get(part, {})
    target.pop(keys[-1], None)


def read_run(path: str | os.PathLike[str]) -> StoredRun:
    run = StoredRun(path=os.fspath(path))
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            body = record.run
            run.run_id, run.project, run.display_name = body.run_id, body.project, body.display_name
            run.resume = bool(body.resume)
            run.start_time = body.start_time.seconds + body.start_time.nanos / 1e9
            if body.HasField("branch_point") and body.branch_point.metric == "_step":
                run.branch_step = int(body.branch_point.value)
            for item in body.config.update:
                _set(run.config, item, json.loads(item.value_json))
        elif kind == "config":
            for item in record.config.update:
                _set(run.config, item, json.loads(item.value_json))
            for item in record.config.remove:
                _remove(run.config, item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, item, _history_value(item))
            run.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _set(run.summary, item, json.loads(item.value_json))
            for item in record.summary.remove:
                _remove(run.summary, item)
        elif kind == "artifact":
            body = record.artifact
            run.artifacts.append(
                StoredArtifact(
                    name=body.name,
                    type=body.type,
                    aliases=list(body.aliases),
                    metadata=json.loads(body.metadata) if body.metadata else {},
                    files={
                        entry.path: {"size": entry.size, "digest": entry.digest, "local_path": entry.local_path}
                        for entry in body.manifest.contents
                    },
                )
            )
        elif kind == "metric":
            body = record.metric
            run.metrics.append({"name": body.name, "glob_name": body.glob_name, "step_metric": body.step_metric})
        elif kind in ("output_raw", "output"):
            run.output.append(getattr(record, kind).line)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    run.config.pop("_wandb", None)
    return run


def run_files(root: str | os.PathLike[str], run_id: str | None = None) -> list[str]:
    """Every ``run-*.wandb`` file under ``root`` (any depth), oldest run segment first."""
    pattern = f"run-{run_id}.wandb" if run_id else "run-*.wandb"
    found: list[str] = []
    for folder, _, names in os.walk(os.fspath(root)):  # not into the `latest-run` link: each file once
        found.extend(os.path.join(folder, name) for name in fnmatch.filter(names, pattern))
    return sorted(found, key=lambda path: (read_run(path).start_time, path))


def read_runs(root: str | os.PathLike[str], run_id: str | None = None) -> list[StoredRun]:
    """Every run (segment) stored under ``root``, oldest first; a resumed run has one segment per start."""
    return [read_run(path) for path in run_files(root, run_id)]


# ---- the run, for tracklight.runs ----------------------------------------------------------------------

_STEP_KEY = "trainer/global_step"
_MEDIA_PATHS = ("path", "filenames")


class WandbRun(Run):
    backend = "wandb"

    def __init__(self, ref: str, folder: str, log_file: str, earlier: list[str] | None = None) -> None:
        super().__init__(ref, folder)
        self.log_file = log_file
        #: The log files of the run's earlier segments (a resumed run), oldest first.
        self.earlier = list(earlier or [])
        self._stored: StoredRun | None = None
        self._segments: list[StoredRun] | None = None

    def stored(self) -> StoredRun:
        """The decoded log file of the newest segment (read once)."""
        return self.segments()[-1]

    def segments(self) -> list[StoredRun]:
        """Every segment's decoded log file, oldest first (read once)."""
        with self._lock:
            if self._segments is None:
                found = []
                for path in [*self.earlier, self.log_file]:
                    try:
                        found.append(read_run(path))
                    except ValueError as err:
                        raise RunError(path, f"is damaged ({err})") from err
                self._segments = found
            return self._segments

    def info(self) -> RunInfo:
        stored = self.stored()
        points = self.points()
        status = None if stored.exit_code is None else ("finished" if stored.exit_code == 0 else "failed")
        return RunInfo(
            ref=self.ref,
            backend=self.backend,
            name=stored.display_name or None,
            version=stored.run_id or None,
            status=status or "running",
            steps=last_step(points),
            updated=last_time(points) or mtime(self.log_file),
            metrics=len(points),
            params=len(self.params()),
        )

    def params(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for segment in self.segments():
            config.update(flatten(segment.config))
        return config

    def _sources(self) -> list[str]:
        return [*self.earlier, self.log_file]

    def _read(self) -> dict[str, Points]:
        segments = self.segments()
        columns: dict[str, tuple[list[int], list[float], list[float], list[int], list[int]]] = {}
        for index, segment in enumerate(segments):
            for row in segment.history:
                step = row.get(_STEP_KEY, row.get("_step"))
                stamp = row.get("_timestamp", float("nan"))
                own_step = int(row.get("_step", 0))
                for key, value in row.items():
                    if key.startswith("_") or key == _STEP_KEY or isinstance(value, bool):
                        continue
                    if isinstance(value, (int, float)):
                        steps, values, times, owners, own_steps = columns.setdefault(key, ([], [], [], [], []))
                        steps.append(int(step if step is not None else len(steps)))
                        values.append(float(value))
                        times.append(float(stamp))
                        owners.append(index)
                        own_steps.append(own_step)
        # A segment that rewound the run drops the earlier rows after its W&B step; one that did not keeps them.
        takeovers = [_NEVER if s.branch_step is None else s.branch_step for s in segments[1:]]
        found = {}
        for key, (steps, values, times, owners, own_steps) in columns.items():
            points = Points.of(steps, values, times)
            mask = keep(np.asarray(own_steps), np.asarray(owners), takeovers)
            found[key] = points if mask.all() else Points(points.step[mask], points.value[mask], points.time[mask])
        return found

    def media(self) -> list[MediaFile]:
        found: list[MediaFile] = []
        for segment in self.segments():
            found.extend(_media(segment))
        return found


def _media(segment: StoredRun) -> list[MediaFile]:
    """One segment's media files, under its folder's ``files/``."""
    files = os.path.join(segment.run_dir, "files")
    found: list[MediaFile] = []
    for row in segment.history:
        step = row.get(_STEP_KEY, row.get("_step"))
        for key, value in row.items():
            if not isinstance(value, dict) or "_type" not in value:
                continue
            kind = str(value["_type"]).partition("-")[0].partition("/")[0].removesuffix("s")
            paths = value.get("filenames") or ([value["path"]] if "path" in value else [])
            for relative in paths:
                path = os.path.join(files, relative)
                if os.path.isfile(path):
                    found.append(MediaFile(key, kind, step, os.path.basename(relative), file_reader(path)))
    return found


def scan(folder: str, names: set[str]) -> list[Run]:
    """The offline W&B run in ``folder``, if it holds a ``run-<id>.wandb`` file; a resumed run's earlier segments
    (sibling folders of the same run id) are read with its newest one, and not listed on their own."""
    logs = sorted(name for name in names if name.startswith("run-") and name.endswith(".wandb"))
    if not logs:
        return []
    segments = _segment_files(folder, logs[-1])
    if segments[-1] != os.path.join(folder, logs[-1]):
        return []  # an earlier segment: listed with the newest one
    return [WandbRun(folder, folder, segments[-1], segments[:-1])]


def _segment_files(folder: str, log_name: str) -> list[str]:
    """The log files of every segment of the run in ``folder``, oldest first: W&B names its folders
    ``(offline-)run-<YYYYmmdd_HHMMSS>-<run id>``, with ``-<n>`` added when one of that name exists already."""
    run_id = log_name.removeprefix("run-").removesuffix(".wandb")
    parent = os.path.dirname(os.path.abspath(folder))
    own = os.path.join(folder, log_name)
    pattern = re.compile(rf"(?:offline-)?run-(\d{{8}}_\d{{6}})-{re.escape(run_id)}(?:-(\d+))?")
    try:
        names = os.listdir(parent)
    except OSError:
        return [own]
    found: list[tuple[str, int, str]] = []
    for name in names:
        match = pattern.fullmatch(name)
        path = os.path.join(parent, name, log_name)
        if match and os.path.isfile(path):
            found.append((match[1], int(match[2] or 0), path))
    paths = [path for _, _, path in sorted(found)]
    if os.path.abspath(own) not in {os.path.abspath(path) for path in paths}:
        return [own]
    return [own if os.path.abspath(path) == os.path.abspath(own) else path for path in paths]
