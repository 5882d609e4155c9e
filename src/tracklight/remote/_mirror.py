"""Uploading a local staging folder to its folder on an object store, in the background.

Object stores cannot append, so a file that changed goes up whole. One thread per mirror looks at the
staging folder about once a second and uploads every file that changed since its last upload in one
batch (``fs.pipe`` with several paths: s3fs sends them concurrently). Passes take at most a quarter of
the time however large the files grow, so a big ``metrics.csv`` is uploaded less often rather than
all the time. A failed pass is retried with backoff (faster while someone waits in :meth:`Mirror.sync`);
nothing is lost meanwhile, since the files stay in the staging folder.

Only complete records go up: a CSV or JSON-lines file up to its last newline, an event file up to its
last whole TFRecord, so a reader never sees half a row even if the process dies during a write.

No lock is shared with the training thread or a signal handler: :meth:`Mirror.sync` only sets a
number and polls another, so it is safe to call from a SIGTERM handler that interrupted anything.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import weakref
from collections.abc import Hashable, Iterable
from typing import Any, Protocol

from tracklight._errors import warn
from tracklight.remote._guard import extends, key, uploaded_key
from tracklight.remote._store import Store

#: Seconds between two looks at the staging folder; a value reaches the store within about this
#: (plus the local writers' own flush, a quarter to three quarters of a second).
INTERVAL = 1.0
#: Uploads take at most this share of the time: a pass that took 2 s waits until 8 s after it started.
MAX_SHARE = 0.25
#: The longest wait between two attempts while the store fails (one second while someone waits).
BACKOFF_MAX = 30.0
#: A mirror's thread ends after this long with nothing to upload; the next change starts it again (so no thread
#: outlives the run's last write by much, finalized or not).
IDLE_EXIT = 2.0
#: Files that only grow (event files) are cut into segments of about this size, since each change
#: uploads the whole file again.
SEGMENT_BYTES = 1 << 20
_POLL = 0.05

_Signature = tuple[Any, ...]


class Source(Protocol):
    """A writer that can hand the mirror a file it could not write to the staging folder (a full disk)."""

    def held(self) -> Hashable | None:
        """A token for what is held in memory and not in the staging file (changes with it), or None."""

    def snapshot(self) -> tuple[Hashable | None, bytes]:
        """The whole file as it would be with what is held written, and the token it matches."""

    def stored(self, where: str, token: Any) -> None:
        """Told once the store holds the snapshot with ``token``."""


class Mirror:
    """Keeps ``store`` up to date with the files under ``staging`` (relative paths kept as they are).

    Args:
        store: The folder on the object store.
        staging: The local folder the run's writers write into.
        foreign: Relative paths that exist in the store and were not written by this run: never written.

    Example:
        >>> import tempfile, os
        >>> staging = tempfile.mkdtemp()
        >>> with open(os.path.join(staging, "metrics.csv"), "w") as f:
        ...     _ = f.write("loss,step\\n0.5,0\\n0.25,1")  # the last row is not finished yet
        >>> mirror = Mirror(Store("memory://tracklight-doc/mirror"), staging)
        >>> mirror.sync(timeout=5)
        []
        >>> mirror.store.fs.cat_file(mirror.store.child("metrics.csv"))
        b'loss,step\\n0.5,0\\n'
    """

    def __init__(self, store: Store, staging: str, foreign: Iterable[str] = ()) -> None:
        self.store = store
        self.staging = staging
        self.foreign = set(foreign)
        self.last_error: str | None = None
        self._uploaded: dict[str, _Signature] = {}
        self._complete: dict[str, tuple[int | None, int]] = {}  # event file: inode, end of its whole records
        self._said_foreign: set[str] = set()
        self._said_down = False
        self._sync_request = 0.0  # monotonic time of the last sync() call
        self._clean_start = -1.0  # monotonic start of the last pass that left nothing to upload
        self._thread: _UploadThread | None = None
        self._pid = os.getpid()
        self._sources: dict[str, weakref.ref[Any]] = {}
        #: What each object was when this run last left it in the store (uploaded, or downloaded on resume).
        self._keys: dict[str, Hashable | None] = {}
        #: Files the store holds in a version this run does not hold all of (another writer): never replaced.
        self.conflicts: dict[str, str] = {}
        self._verify_due = False  # look for files gone from the store (a bucket deleted and made again)
        self._unverified = False  # something was uploaded, or a pass failed, since the store was last listed
        self._said_missing = False

    def add_source(self, relative: str, source: Source) -> None:
        """Upload ``relative`` from ``source`` whenever it holds what the staging folder could not take."""
        self._sources[relative] = weakref.ref(source)

    # ---- for the run: what is in sync -------------------------------------------------------------------

    def mark_uploaded(self, relative: str, stored_as: Hashable | None = None) -> None:
        """Record that the store already holds ``relative`` as it is in the staging folder now (as the object
        ``stored_as``: its ETag, see :func:`~tracklight.remote._guard.key`)."""
        signature = _signature(os.path.join(self.staging, relative))
        if signature is not None:
            self._uploaded[relative] = signature
            self._keys[relative] = stored_as

    def pending(self) -> list[str]:
        """The files of the staging folder whose last change is not in the store yet."""
        return sorted(set(self._changed()) | set(self.conflicts))

    def ensure_running(self) -> None:
        """Start the background thread if it is not running (it ends when idle, or in a forked child)."""
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        thread = _UploadThread(self)
        self._thread = thread
        thread.start()

    def rest(self) -> None:
        """End the thread now (everything is uploaded and nothing is being written); ``ensure_running`` starts
        it again."""
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=INTERVAL + 1.0)

    def sync(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` seconds for a pass that starts now to upload everything; what is left."""
        request = time.monotonic()
        # finalize, exit, push: what was uploaded is still there, or goes up again (one listing, and none when
        # nothing happened since the last one: an exit after finalize asks nothing of the store)
        self._verify_due = self._verify_due or self._unverified
        self._sync_request = request
        self.ensure_running()
        deadline = request + timeout
        while self._clean_start < request:
            if time.monotonic() >= deadline:
                return self.pending()
            time.sleep(_POLL)
        return sorted(self.conflicts)

    # ---- the thread ------------------------------------------------------------------------------------

    def _loop(self) -> None:
        next_pass = 0.0
        retry_floor = 0.0
        failures = 0
        idle_since = time.monotonic()
        while True:
            if self._thread is not threading.current_thread():
                return  # replaced (ensure_running in a forked child) or told to rest
            now = time.monotonic()
            waited_for = self._sync_request > self._clean_start
            if now < next_pass and not (waited_for and now >= retry_floor):
                time.sleep(min(_POLL, next_pass - now))
                continue
            started = time.monotonic()
            try:
                verified = self._verify_due
                if verified:
                    self._verify()
                changed = self._changed()
                if changed:
                    self._upload(changed)
                if verified:  # what this pass uploaded was just put there
                    self._unverified = False
            except Exception as error:
                failures += 1
                self._verify_due = self._unverified = True  # the store may come back empty (a bucket made again)
                if self._resting_after_failure(started):
                    return  # nothing at risk, so nothing to say: the next write tries (and says) again
                self._failed(error)
                next_pass = started + min(BACKOFF_MAX, INTERVAL * 2 ** (failures - 1))
                retry_floor = started + INTERVAL
                continue
            failures = 0
            if self._said_down:
                self._said_down = False
            self._clean_start = started
            duration = time.monotonic() - started
            next_pass = started + max(INTERVAL, duration / MAX_SHARE)
            if changed:
                idle_since = started
            elif started - idle_since >= IDLE_EXIT and self._sync_request <= started:
                self._thread = None
                return

    def _resting_after_failure(self, started: float) -> bool:
        """After a failed pass: rest (end the thread) when nothing local waits to be sent and nobody waits on a
        sync. A store that went away after everything was uploaded is then not polled forever; the next write
        wakes the thread, and its first pass lists the store again (``_verify_due``)."""
        if self._sync_request > started:
            return False
        try:
            if self._changed():
                return False
        except OSError:
            return False
        self._thread = None
        return True

    def _held(self) -> dict[str, Hashable]:
        """The files a writer holds in memory, because the staging disk refused them: their tokens."""
        held = {}
        for relative, ref in list(self._sources.items()):
            source = ref()
            token = None if source is None else source.held()
            if token is not None:
                held[relative] = token
        return held

    def _changed(self) -> dict[str, _Signature]:
        changed: dict[str, _Signature] = {}
        held = self._held()
        for relative, token in held.items():
            if relative not in self.conflicts and self._uploaded.get(relative) != ("memory", token):
                changed[relative] = ("memory", token)
        for relative in _files(self.staging):
            signature = _signature(os.path.join(self.staging, relative))
            if signature is None or relative in held or self._uploaded.get(relative) == signature:
                continue
            if relative in self.conflicts:
                continue
            if relative in self.foreign:
                if signature[0] and relative not in self._said_foreign:
                    self._said_foreign.add(relative)
                    warn(
                        f"{self.store.child_url(relative)} existed before this run started, so it is not replaced; "
                        f"this run's version is kept in {os.path.join(self.staging, relative)}."
                    )
                continue
            changed[relative] = signature
        return changed

    def _upload(self, changed: dict[str, _Signature]) -> None:
        batch = {}
        stored = []
        for relative, signature in changed.items():
            source = self._sources[relative]() if relative in self._sources else None
            if signature[0] == "memory" and source is not None:
                token, data = source.snapshot()  # straight from memory: the staging disk refused it
                changed[relative] = ("memory", token)
                batch[self.store.child(*relative.split("/"))] = data
                stored.append((source, token, relative))
                continue
            try:
                with open(os.path.join(self.staging, relative), "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:  # replaced or removed since the scan: the next pass sees what is there
                continue
            batch[self.store.child(*relative.split("/"))] = self._complete_part(relative, signature, data)
        fs = self.store.fs
        relatives = {self.store.child(*relative.split("/")): relative for relative in changed}
        for path in list(batch):
            verdict = self._may_replace(relatives[path], path, batch[path])
            if verdict != "upload":
                del batch[path]
            if verdict == "conflict":
                changed.pop(relatives[path])
        if batch:
            answers = fs.pipe(batch)
            answers = answers if isinstance(answers, list) and len(answers) == len(batch) else [None] * len(batch)
            for path, answer in zip(batch, answers, strict=True):
                self._keys[relatives[path]] = uploaded_key(answer) or key(fs, path)
            self._unverified = True
        # The signatures were taken before reading: a file that changed while it was read goes up again.
        self._uploaded.update(changed)
        for source, token, relative in stored:
            if relative in changed:
                source.stored(self.store.child_url(relative), token)

    def _may_replace(self, relative: str, path: str, data: bytes) -> str:
        """ "upload" when uploading ``data`` to ``path`` loses nothing (the object is absent, is what this run left
        there, or holds nothing ``data`` lacks); "held" when the object already holds all of ``data``; else
        "conflict": another writer changed it, which is said once, and it is left alone."""
        fs = self.store.fs
        now = key(fs, path)
        if now is None or (relative in self._keys and now == self._keys[relative]):
            return "upload"
        theirs = fs.cat_file(path)
        if extends(relative, theirs, data):
            return "upload"
        if extends(relative, data, theirs):
            self._keys[relative] = now
            return "held"
        local = os.path.join(self.staging, *relative.split("/"))
        self.conflicts[relative] = (
            f"{self.store.child_url(relative)} holds data this run does not have (another process wrote it: one on "
            f"the same version, or a later run that resumed it), so it is not replaced. This run's copy is kept in "
            f"{local}."
        )
        warn(self.conflicts[relative] + " The staging folder is kept.")
        return "conflict"

    def _verify(self) -> None:
        """Forget the uploads of files that are no longer in the store (deleted, or the bucket made again), so the
        pass uploads them again."""
        self._verify_due = self._unverified = False
        if not self._uploaded:
            return
        fs, root = self.store.fs, self.store.path
        fs.invalidate_cache(root)
        try:
            present = {path[len(root) :].lstrip("/") for path in fs.find(root)}
        except FileNotFoundError:
            present = set()
        missing = sorted(relative for relative in self._uploaded if relative not in present)
        for relative in missing:
            del self._uploaded[relative]
            self._keys.pop(relative, None)
        if missing and not self._said_missing:
            self._said_missing = True
            warn(
                f"{len(missing)} file(s) of {self.store.url} were no longer in the store (deleted, or the bucket "
                f"made again): {_describe(missing)}. They are uploaded again from {self.staging}."
            )

    def _complete_part(self, relative: str, signature: _Signature, data: bytes) -> bytes:
        """``data`` without a record still being written at its end."""
        name = relative.rpartition("/")[2]
        if name.endswith((".csv", ".jsonl")):
            return data[: data.rfind(b"\n") + 1]
        if "tfevents" in name:
            # Event files only grow: the records already walked need not be walked again.
            inode, known = self._complete.get(relative, (None, 0))
            end = _whole_records(data, known if inode == signature[2] and known <= len(data) else 0)
            self._complete[relative] = (signature[2], end)
            return data[:end]
        return data

    def _failed(self, error: Exception) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        if self._said_down:
            return
        self._said_down = True
        warn(
            f"Could not upload to {self.store.url} ({self.last_error}). Training goes on: the run's files are kept "
            f"in {self.staging} and uploaded when the store answers again (retried in the background)."
        )


def _files(root: str) -> list[str]:
    """Relative paths (with ``/``) of the files under ``root``, leaving out hidden and temporary ones."""
    found = []
    for directory, folders, names in os.walk(root):
        folders[:] = [folder for folder in folders if not folder.startswith(".")]
        prefix = os.path.relpath(directory, root).replace(os.sep, "/")
        for name in names:
            if not name.startswith("."):
                found.append(name if prefix == "." else f"{prefix}/{name}")
    return found


class _UploadThread(threading.Thread):
    """A mirror's thread (``tracklight-upload``, a daemon); :meth:`stop` (a test suite's thread check, such as
    Lightning's) ends it as :meth:`Mirror.rest` does."""

    def __init__(self, mirror: Mirror) -> None:
        super().__init__(target=mirror._loop, name="tracklight-upload", daemon=True)
        self._mirror = mirror

    def stop(self) -> None:
        if self._mirror._thread is self:
            self._mirror.rest()
        elif self is not threading.current_thread():
            self.join(timeout=INTERVAL + 1.0)


def _signature(path: str) -> _Signature | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


_RECORD_HEADER = struct.Struct("<Q")


def _whole_records(data: bytes, start: int = 0) -> int:
    """The end of the last whole TFRecord (8-byte length, 4-byte CRC, data, 4-byte CRC) in ``data``."""
    position, size = start, len(data)
    while position + 12 <= size:
        end = position + 16 + _RECORD_HEADER.unpack_from(data, position)[0]
        if end > size:
            break
        position = end
    return position


def _describe(paths: list[str], limit: int = 5) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def describe_left(url: str, staging: str, left: list[str], error: str | None, later: str = "") -> str:
    """The message for files that could not be uploaded: which, why, where they are kept, how to send them."""
    reason = f" ({error})" if error else ""
    return (
        f"{len(left)} file(s) of {url} could not be uploaded yet{reason}: {_describe(left)}. They are kept in "
        f"{staging}{later}; to upload them later run: python -m tracklight.remote push {staging}"
    )
