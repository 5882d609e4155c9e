"""A small, test-only reader of W&B's ``run-<id>.wandb`` transaction logs, and the offline set-up tests use.

The file is a LevelDB-style log: a 7-byte header (``:W&B``, the magic 0xBEE1 little-endian, version 0),
then 32 KiB blocks of records. Each record has a 7-byte header (crc32 of type byte + payload, payload
length, type: FULL=1, FIRST=2, MIDDLE=3, LAST=4); a block's tail shorter than a header is zero padding.
Payloads are ``wandb.proto.wandb_internal_pb2.Record`` messages. Blocks are aligned to the start of the
file, so the first block holds the file header too.
"""

from __future__ import annotations

import fnmatch
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    from wandb.proto import wandb_internal_pb2 as pb

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
    found = []
    for folder, _, names in os.walk(os.fspath(root)):  # not into the `latest-run` link: each file once
        found.extend(os.path.join(folder, name) for name in fnmatch.filter(names, pattern))
    return sorted(found, key=lambda path: (read_run(path).start_time, path))


def read_runs(root: str | os.PathLike[str], run_id: str | None = None) -> list[StoredRun]:
    """Every run (segment) stored under ``root``, oldest first; a resumed run has one segment per start."""
    return [read_run(path) for path in run_files(root, run_id)]


def end_run() -> None:
    """End the process's W&B run, as the process's exit (or the user's ``wandb.finish()``) does, and wait until
    W&B has written its file out. Loggers leave their run open after ``finalize``, as Lightning's do."""
    import wandb

    from tracklight.loggers.wandb import wait_until_closed

    run = wandb.run
    if run is not None:
        run.finish()
        assert wait_until_closed(run.settings.log_internal), "W&B did not close the run's file"


def offline_env(monkeypatch: Any, root: Path) -> None:
    """Offline, quiet, and every W&B directory under ``root``: nothing reaches the network or the home dir."""
    for name in ("WANDB_PROJECT", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_NAME", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    for name, sub in (
        ("WANDB_DIR", "wandb_dir"),
        ("WANDB_DATA_DIR", "wandb_data"),
        ("WANDB_CACHE_DIR", "wandb_cache"),
        ("WANDB_CONFIG_DIR", "wandb_config"),
        ("WANDB_ARTIFACT_DIR", "wandb_artifacts"),
    ):
        (root / sub).mkdir(exist_ok=True)
        monkeypatch.setenv(name, str(root / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.setenv("WANDB_DISABLE_CODE", "true")
    monkeypatch.setenv("WANDB_X_DISABLE_STATS", "true")
    monkeypatch.setenv("WANDB_X_DISABLE_MACHINE_INFO", "true")
