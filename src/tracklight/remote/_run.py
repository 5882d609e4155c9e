"""A run folder on an object store: written locally into a staging folder, mirrored up in the background.

The loggers write a remote run exactly as a local one (``CSVTable``, event files, ``hparams.yaml``,
media files), into a staging folder on the local disk; a :class:`~tracklight.remote._mirror.Mirror`
uploads it. So the local promises carry over: the training thread never waits on the network, rows
are on the local disk within a second, and what the store has not taken yet is never lost while the
machine lives: it stays in the staging folder, which ``python -m tracklight.remote push`` uploads later.

Resuming a folder that exists in the store downloads the files the writers extend (``metrics.csv``,
``hparams.yaml``, ``media/index.jsonl``); every other file there is left alone, and media names in
use there are kept free so no file in the store is replaced.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import weakref
from collections.abc import Hashable
from typing import Any

from tracklight._errors import TracklightError, warn
from tracklight.formats import flushing as _flushing
from tracklight.remote._guard import key
from tracklight.remote._mirror import Mirror, describe_left
from tracklight.remote._store import Store, describe_failure, join
from tracklight.remote._versions import mark

#: Seconds ``finalize`` waits for the upload before it says what is left and lets training end.
FINALIZE_TIMEOUT = 30.0
#: Seconds the process waits for the upload at exit and on SIGTERM.
EXIT_TIMEOUT = 10.0
#: Where staging folders go unless ``TRACKLIGHT_STAGING_DIR`` says otherwise: ``<temp dir>/tracklight-staging``.
STAGING_ENV = "TRACKLIGHT_STAGING_DIR"
#: The file in a staging folder that says where it belongs (hidden: it is never uploaded).
MANIFEST = ".tracklight-remote.json"
#: Files the writers extend rather than create, downloaded when a run folder is resumed.
EXTENDED = ("metrics.csv", "hparams.yaml", "media/index.jsonl")

_runs: weakref.WeakValueDictionary[str, RemoteRun] = weakref.WeakValueDictionary()


def open_run(url: str, version_url: str | None = None) -> RemoteRun:
    """The run folder ``url`` of this process (one per URL, shared by the loggers that write there).

    A version just claimed is new in the store, so it always gets a run of its own: an earlier run of this
    process at the same URL (whose folder was deleted from the store since, or that wrote to another store:
    an endpoint changed in the environment) keeps its staging folder and filesystem for its own loggers.

    Args:
        url: The run folder (a logger's ``log_dir``).
        version_url: The version folder to mark as used, when the version was named rather than claimed
            (writing the marker also proves that the store accepts writes); ``None`` for a claimed version.
    """
    run = _runs.get(url)
    if run is None or run.pid != os.getpid() or version_url is None:
        run = _runs[url] = RemoteRun(url, version_url)
    return run


class RemoteRun:
    """One run folder on an object store: its staging folder and the mirror that uploads it.

    Opening it fails at once, with the URL, when the store cannot be written (no such bucket, writes
    refused, not reachable).
    """

    def __init__(self, url: str, version_url: str | None = None) -> None:
        self.url = url
        self.store = Store(url)
        self.pid = os.getpid()
        self.staging_dir = _new_staging_dir(url)
        self.staging_full = False
        try:
            if version_url is not None:
                mark(Store(version_url), "")
            foreign = self._resume()
        except Exception as error:
            shutil.rmtree(self.staging_dir, ignore_errors=True)
            raise describe_failure(url, error) from error
        self.mirror = Mirror(self.store, self.staging_dir, foreign)
        for relative in EXTENDED:
            self.mirror.mark_uploaded(relative, self._downloaded.get(relative))
        self._write_manifest(foreign)
        self._exit_sync: tuple[float, list[str]] | None = None
        _flushing.register(self, late=True)
        self.mirror.ensure_running()

    def finish(self, timeout: float | None = None) -> list[str]:
        """Wait (bounded) until everything written so far is in the store; warn about what is not."""
        left = self.mirror.sync(FINALIZE_TIMEOUT if timeout is None else timeout)
        if left:
            warn(
                describe_left(
                    self.url,
                    self.staging_dir,
                    left,
                    self.mirror.last_error,
                    " (the upload goes on in the background while the process runs)",
                )
            )
        else:  # no thread left behind until something is written again (a later test or validate stage)
            _flushing.rest(self)
            self.mirror.rest()
        return left

    def flush(self, force: bool = False) -> None:
        """Called by tracklight's flusher after the local writers; ``force`` (exit, SIGTERM) uploads now."""
        if not force:
            self.mirror.ensure_running()
            return
        if self._exit_sync is not None and time.monotonic() - self._exit_sync[0] < 1.0:
            return  # the other exit hook just did this
        left = self.mirror.sync(EXIT_TIMEOUT)
        self._exit_sync = (time.monotonic(), left)
        if left:
            print(
                "tracklight: " + describe_left(self.url, self.staging_dir, left, self.mirror.last_error),
                file=sys.stderr,
            )

    # ---- opening -----------------------------------------------------------------------------------------

    def _resume(self) -> list[str]:
        """Download what the writers extend; return every other file already in the store."""
        fs, root = self.store.fs, self.store.path
        self._downloaded: dict[str, Hashable | None] = {}  # what each file downloaded was in the store
        fs.invalidate_cache(root)
        try:
            existing = fs.find(root)
        except FileNotFoundError:
            existing = []
        foreign = []
        for path in existing:
            relative = path[len(root) :].lstrip("/")
            if not relative or any(part.startswith(".") for part in relative.split("/")):
                continue
            local = os.path.join(self.staging_dir, *relative.split("/"))
            if relative in EXTENDED:
                self._downloaded[relative] = key(fs, path)
                data = fs.cat_file(path)
                try:
                    os.makedirs(os.path.dirname(local), exist_ok=True)
                    with open(local, "wb") as handle:
                        handle.write(data)
                except OSError as error:  # the run would start without what the store holds: say so, write nothing
                    raise staging_error(self.url, local, error) from error
                continue
            foreign.append(relative)
            if relative.startswith("media/"):
                # An empty stand-in keeps the name taken, so media logged now get the next free name.
                os.makedirs(os.path.dirname(local), exist_ok=True)
                open(local, "ab").close()
        return foreign

    def _write_manifest(self, foreign: list[str]) -> None:
        manifest = {
            "url": self.url,
            "foreign": foreign,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "created": time.time(),
        }
        path = os.path.join(self.staging_dir, MANIFEST)
        try:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(manifest, handle)
        except OSError as error:
            # The staging disk is full (or read-only): the writers keep what it refuses in memory, and the
            # mirror uploads that straight from memory, so the run still reaches the store.
            self.staging_full = True
            with contextlib.suppress(OSError):
                os.unlink(path)
            warn(
                f"The staging folder {self.staging_dir} for {self.url} cannot be written ({error}). The run goes "
                f"straight to {self.url}: rows the staging disk refuses are kept in memory and uploaded from there "
                f"(nothing can be pushed later from this folder). Free space there, or set {STAGING_ENV} to a "
                "folder on a disk with room."
            )


def staging_root() -> str:
    return os.environ.get(STAGING_ENV) or os.path.join(tempfile.gettempdir(), "tracklight-staging")


def _new_staging_dir(url: str) -> str:
    """A fresh local folder for ``url``, named after its last parts (never after the URL's scheme)."""
    root = staging_root()
    tail = url.split("://", 1)[-1].split("::")[-1]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", tail).strip("._-")[-80:] or "run"
    try:
        os.makedirs(root, exist_ok=True)
        return tempfile.mkdtemp(prefix=f"{slug}-", dir=root)
    except OSError as error:
        raise staging_error(url, root, error) from error


def staging_error(url: str, path: str, error: OSError) -> TracklightError:
    """The error for a staging folder that cannot be made or filled at the start of a run."""
    return TracklightError(
        f"Cannot log to {url}: its local staging folder cannot be written ({path}: {error}). Free space there, "
        f"or set {STAGING_ENV} to a folder on a disk with room."
    )


def read_manifest(staging_dir: str) -> dict[str, Any]:
    with open(os.path.join(staging_dir, MANIFEST), encoding="utf-8") as handle:
        manifest: dict[str, Any] = json.load(handle)
    return manifest


@atexit.register
def _at_exit() -> None:
    """Upload what is left and remove the staging folders that are fully uploaded."""
    runs = [run for run in list(_runs.values()) if run.pid == os.getpid()]
    if not runs:
        return
    _flushing.flush_all(force=True)  # the local writers, then every mirror (bounded by EXIT_TIMEOUT)
    for run in runs:
        if run._exit_sync is not None and not run._exit_sync[1] and not run.mirror.pending():
            with contextlib.suppress(OSError):
                shutil.rmtree(run.staging_dir)


__all__ = ["EXIT_TIMEOUT", "FINALIZE_TIMEOUT", "RemoteRun", "join", "open_run", "read_manifest", "staging_root"]
