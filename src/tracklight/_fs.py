"""Versioned run directories and atomic file writes: the only place tracklight creates them.

A ``root`` that is a URL (``s3://bucket/logs``) is listed and claimed in its object store instead
(:mod:`tracklight.remote._versions`); fsspec is imported only then.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no folder locks; copies of a logger in several processes are then unguarded
    fcntl = None  # type: ignore[assignment]

from tracklight.remote._store import is_url

_VERSION_DIR = re.compile(r"^version_(\d+)$")
#: Opening with this flag fails (ELOOP) on a symbolic link instead of following it (0 where the OS has none).
O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)


def open_no_follow(path: str, flags: int) -> int:
    """``os.open`` that never follows a symbolic link at ``path``; usable as ``open(..., opener=...)``."""
    return os.open(path, flags | O_NOFOLLOW, 0o666)


def same_file(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not deleted, moved, or replaced by another)."""
    try:
        there = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    here = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino)


class DeletionWatch:
    """Tells a writer, cheaply, that the file it holds open was deleted or replaced: :func:`same_file` costs two
    system calls, so it runs at most every ``interval`` seconds, and only after a write or before one (a run left
    idle in a notebook must not bring back a folder its user deleted on purpose).

    Example:
        >>> import tempfile
        >>> handle = tempfile.NamedTemporaryFile()
        >>> watch = DeletionWatch()
        >>> watch.wrote()
        >>> watch.lost(handle.fileno(), handle.name, force=True)
        False
    """

    __slots__ = ("_dirty", "_due", "interval")

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._due = 0.0
        self._dirty = False

    def wrote(self) -> None:
        """Note a write: the next due check looks again."""
        self._dirty = True

    def lost(self, fd: int, path: str, force: bool = False, writing: bool = False) -> bool:
        """Whether ``path`` no longer names the file open as ``fd``; checked when due (or ``force``) after a write,
        or before one (``writing``: a forced write leaves no mark, and what it wrote into a file deleted since the
        last check would be lost with the descriptor)."""
        if not (self._dirty or writing):
            return False
        now = time.monotonic()
        if not force and now < self._due:
            return False
        self._due, self._dirty = now + self.interval, False
        return not same_file(fd, path)


def copy_open_file(fd: int, path: str) -> int:
    """Write everything the open file ``fd`` holds to a new file at ``path`` (its folders made again), swapped in
    atomically; return a descriptor of the new file (readable and writable). This is how a file deleted while it
    is open is brought back: the descriptor still reaches its content."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    new, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        offset = 0
        while chunk := os.pread(fd, 1 << 20, offset):
            view = memoryview(chunk)
            while view:
                view = view[os.write(new, view) :]
            offset += len(chunk)
        os.fchmod(new, os.fstat(fd).st_mode & 0o777)
        os.fsync(new)
        os.replace(tmp, path)
    except BaseException:
        os.close(new)
        Path(tmp).unlink(missing_ok=True)
        raise
    return new


@contextlib.contextmanager
def folder_lock(path: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the folder that holds ``path`` (shared by every process on this machine that
    writes files there: a forked or spawned copy of a logger). Where the folder is gone or cannot be locked (no
    ``fcntl``, a filesystem without locks) it goes on without one."""
    with _lock_fds_guard:
        try:
            fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            fd = -1
        else:
            _lock_fds.add(fd)
    if fd < 0:
        yield
        return
    try:
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with _lock_fds_guard:
            _lock_fds.discard(fd)
            os.close(fd)  # closing the last descriptor of it releases the lock


# A flock belongs to the open file, which a forked child shares: a child that kept the copy of a descriptor another
# thread held locked at the fork would hold the lock for good (and wait on itself). The child closes its copies.
_lock_fds: set[int] = set()
_lock_fds_guard = threading.Lock()


def _before_fork() -> None:
    _lock_fds_guard.acquire()


def _after_fork_in_parent() -> None:
    _lock_fds_guard.release()


def _after_fork_in_child() -> None:
    global _lock_fds_guard
    for fd in _lock_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    _lock_fds.clear()
    _lock_fds_guard = threading.Lock()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def leaves_its_folder(path: str) -> bool:
    """Whether ``path``, joined under a folder, could name something outside it: absolute, or with a ``..`` part."""
    return os.path.isabs(path) or ".." in re.split(r"[\\/]", path)


def existing_versions(root: str | os.PathLike[str]) -> list[int]:
    """The N of every ``version_N`` directory directly under ``root`` (empty if ``root`` is missing)."""
    try:
        entries = os.scandir(root)
    except (FileNotFoundError, NotADirectoryError):
        return []
    with entries:
        return sorted(
            int(match.group(1)) for entry in entries if (match := _VERSION_DIR.match(entry.name)) and entry.is_dir()
        )


def next_version(root: str | os.PathLike[str]) -> int:
    """The version after the highest existing one, without claiming it (for ranks that must not write)."""
    if is_url(root):
        from tracklight.remote._versions import next_version_at

        return next_version_at(os.fspath(root))
    versions = existing_versions(root)
    return versions[-1] + 1 if versions else 0


def claim_next_version(root: str | os.PathLike[str]) -> int:
    """Create ``root/version_N`` for the next free N and return N.

    ``os.mkdir`` either creates the directory or fails because it exists, so processes that start at the
    same moment on the same ``root`` each get a distinct version: a loser of the race moves on to N+1.
    """
    if is_url(root):
        from tracklight.remote._versions import claim_next_version_at

        return claim_next_version_at(os.fspath(root))
    os.makedirs(root, exist_ok=True)
    version = next_version(root)
    while True:
        try:
            os.mkdir(os.path.join(root, f"version_{version}"))
            return version
        except FileExistsError:
            version += 1


def set_aside(path: str | os.PathLike[str], label: str) -> str:
    """Rename ``path`` to a free name beside it, ``metrics.csv`` to ``metrics.<label>.csv`` (then
    ``metrics.<label>-1.csv``...), and return the new path. A symbolic link is renamed itself, never its target;
    nothing is deleted."""
    path = os.fspath(path)
    stem, extension = os.path.splitext(path)
    number = 0
    while True:
        target = f"{stem}.{label}{extension}" if number == 0 else f"{stem}.{label}-{number}{extension}"
        if not os.path.lexists(target):
            os.rename(path, target)
            return target
        number += 1


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
