"""``version_N`` folders on an object store: listed like local ones, claimed with a conditional create.

Object stores have no directories to ``mkdir``: a folder exists while an object lies under it. A run
claims ``version_N`` by creating the object ``version_N/.tracklight-run`` only if it does not exist yet.
Where the store can do that atomically (S3's ``If-None-Match: *``, which s3fs sends for
``pipe_file(mode="create")``; fsspec's in-memory filesystem) two runs never share a version. Elsewhere
fsspec can only check, then write; the marker then carries a token that is read back, which narrows
the race to the store's own consistency window (the docs say so per store).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import socket
import time
import uuid
from typing import Any

from tracklight._errors import warn
from tracklight.remote._store import Store, describe_failure

#: The object that claims a version folder (and proves the store accepts writes there).
CLAIM_NAME = ".tracklight-run"

_VERSION = re.compile(r"^version_(\d+)$")


def existing_versions(store: Store) -> list[int]:
    """The N of every ``version_N`` folder directly under ``store`` (empty if there is none)."""
    fs = store.fs
    fs.invalidate_cache(store.path)  # a listing cached by s3fs would hide versions claimed since
    try:
        entries = fs.ls(store.path, detail=True)
    except FileNotFoundError:
        return []
    versions = []
    for entry in entries:
        match = _VERSION.match(entry["name"].rstrip("/").rpartition("/")[2])
        if match and entry.get("type") == "directory":
            versions.append(int(match.group(1)))
    return sorted(versions)


def next_version(store: Store) -> int:
    versions = existing_versions(store)
    return versions[-1] + 1 if versions else 0


def claim_next_version(store: Store) -> int:
    """Claim ``version_N`` for the next free N under ``store`` and return N; a loser of a race moves on."""
    version = next_version(store)
    while True:
        if claim(store, f"version_{version}"):
            return version
        version += 1


def claim(store: Store, folder: str) -> bool:
    """Create ``folder/.tracklight-run`` unless it exists; whether this process created it."""
    fs, path = store.fs, store.child(folder, CLAIM_NAME)
    token = uuid.uuid4().hex
    marker = _marker(token)
    if has_atomic_create(fs):
        try:
            fs.pipe_file(path, marker, mode="create")
        except FileExistsError:
            return False
        return True
    if fs.exists(path):
        return False
    fs.pipe_file(path, marker)
    time.sleep(0.2)  # let a rival's write land before reading back whose marker stayed
    fs.invalidate_cache(path)
    return bool(json.loads(fs.cat_file(path)).get("token") == token)


def mark(store: Store, folder: str) -> None:
    """Write ``folder/.tracklight-run`` whether or not it exists: a named or resumed version is not claimed,
    but writing the marker proves at once that the store accepts writes there. A marker left by a process of
    this machine that still runs means two writers on one version: said at once (the mirror then never
    replaces what the other one uploads)."""
    path = store.child(folder, CLAIM_NAME)
    try:
        other = json.loads(store.fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        other = {}
    if other.get("host") == socket.gethostname() and _alive(other.get("pid")):
        warn(
            f"{store.child_url(folder)} is being written by another process (pid {other['pid']}) of this machine. "
            "Both go on, but neither replaces what the other uploaded: a file the other changed is left as it is "
            "and this run's copy stays in its staging folder. Give each process its own version (version=None "
            "picks the next free one)."
        )
    store.fs.pipe_file(path, _marker(uuid.uuid4().hex))


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def has_atomic_create(fs: Any) -> bool:
    """Whether ``fs.pipe_file(..., mode="create")`` is a conditional create in the store itself.

    fsspec's generic ``pipe_file`` checks, then writes; a filesystem that overrides it (or the async
    ``_pipe_file``) with a ``mode`` argument passes the condition to the store.
    """
    from fsspec.asyn import AsyncFileSystem
    from fsspec.spec import AbstractFileSystem

    generic = (AbstractFileSystem.pipe_file, AsyncFileSystem._pipe_file)
    for name in ("_pipe_file", "pipe_file"):
        method = getattr(type(fs), name, None)
        if method is not None and method not in generic and "mode" in inspect.signature(method).parameters:
            return True
    return False


def _marker(token: str) -> bytes:
    info = {"token": token, "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
    return json.dumps(info).encode("utf-8")


def claim_next_version_at(url: str) -> int:
    """:func:`claim_next_version` under the folder ``url``, failing with the URL when the store refuses."""
    try:
        return claim_next_version(Store(url))
    except Exception as error:
        raise describe_failure(url, error) from error


def next_version_at(url: str) -> int:
    try:
        return next_version(Store(url))
    except Exception as error:
        raise describe_failure(url, error) from error
