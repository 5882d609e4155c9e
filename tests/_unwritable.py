"""Folders that cannot be written, made for real where the machine allows it.

``read_only_folder`` is a read-only bind mount (we run as root, so ``chmod`` alone stops nothing); where
``mount`` is not permitted, a non-root user gets ``chmod 555``, and root a folder below a regular file,
where creating anything fails with ``NotADirectoryError``. ``small_filesystem`` is a tmpfs of a few
KiB that fills up; where it cannot be mounted, writes of tracklight's spill file below it fail with
``ENOSPC`` once the budget is spent (an injected fault).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _mount(*args: str) -> bool:
    try:
        return subprocess.run(["mount", *args], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@contextlib.contextmanager
def read_only_folder(base: Path) -> Iterator[Path]:
    folder = base / "read-only"
    folder.mkdir(parents=True)
    if _mount("--bind", str(folder), str(folder)):
        try:
            if _mount("-o", "remount,ro,bind", str(folder)):
                yield folder
                return
        finally:
            _umount(folder)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    blocker = base / "a-file"
    blocker.write_text("a regular file where a folder would be")
    yield blocker / "read-only"


@contextlib.contextmanager
def small_filesystem(base: Path, monkeypatch: pytest.MonkeyPatch, size_kib: int = 64) -> Iterator[Path]:
    folder = base / "small"
    folder.mkdir(parents=True)
    if _mount("-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)):
        try:
            yield folder
        finally:
            _umount(folder)
        return
    from tracklight.delivery import spill

    budget = [size_kib * 1024]

    class Full:
        def __init__(self, handle: Any) -> None:
            self._handle = handle

        def write(self, text: str) -> int:
            budget[0] -= len(text.encode())
            if budget[0] < 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return int(self._handle.write(text))

        def __getattr__(self, name: str) -> Any:
            return getattr(self._handle, name)

        def __iter__(self) -> Any:
            return iter(self._handle)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self._handle.close()

    def open_with_budget(path: Any, *args: Any, **kwargs: Any) -> Any:
        handle = open(path, *args, **kwargs)
        return Full(handle) if str(path).startswith(str(folder)) else handle

    monkeypatch.setattr(spill, "open", open_with_budget, raising=False)
    yield folder
