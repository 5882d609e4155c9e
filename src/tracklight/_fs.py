"""Versioned run directories and atomic file writes: the only place tracklight creates them.

A ``root`` that is a URL (``s3://bucket/logs``) is listed and claimed in its object store instead
(:mod:`tracklight.remote._versions`); fsspec is imported only then.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from tracklight.remote._store import is_url

_VERSION_DIR = re.compile(r"^version_(\d+)$")


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
