"""Media kept as files under a run's directory, with a JSON-lines index, for backends that cannot show them."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from typing import Any, TextIO

from tracklight._errors import warn
from tracklight._fs import open_no_follow, set_aside

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class MediaFiles:
    """Writes ``<root>/media/<kind>/<key>/<step>_<n>.<ext>`` and appends one line per call to ``media/index.jsonl``.

    Existing files are never replaced: a second write for the same key and step gets the next free name.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.join(root, "media")
        self.index_path = os.path.join(self.root, "index.jsonl")
        self._lock = threading.Lock()

    def keep(self, kind: str, key: str, step: int | None, files: list[tuple[str, bytes]], **meta: Any) -> list[str]:
        """Store ``files`` (pairs of extension and content) and index them; returns the relative paths written."""
        folder = os.path.join(self.root, kind, _folder_name(key))
        stem = "none" if step is None else str(step)
        written = []
        with self._lock:
            os.makedirs(folder, exist_ok=True)
            for extension, content in files:
                path = _free_path(folder, stem, extension)
                with open(path, "xb") as handle:
                    handle.write(content)
                written.append(os.path.relpath(path, os.path.dirname(self.root)))
            record = {"time": time.time(), "kind": kind, "key": key, "step": step, "files": written, **meta}
            with self._open_index() as index:
                index.write(json.dumps(record, default=str) + "\n")
        return written

    def _open_index(self) -> TextIO:
        """The index, opened to append, never through a symbolic link: one in its place is renamed aside."""
        try:
            return open(self.index_path, "a", encoding="utf-8", opener=open_no_follow)
        except OSError:
            if not os.path.islink(self.index_path):
                raise
        kept = set_aside(self.index_path, "link")
        warn(f"{self.index_path} was a symbolic link, which is never followed; it was renamed to {kept}.")
        return open(self.index_path, "a", encoding="utf-8", opener=open_no_follow)


def _folder_name(key: str) -> str:
    """``key`` as one folder name: path separators and other unsafe characters replaced, never ``.`` or ``..``."""
    name = _UNSAFE.sub("_", key).strip("_")
    return "_" if name in ("", ".", "..") else name


def _free_path(folder: str, stem: str, extension: str) -> str:
    number = 0
    while True:
        path = os.path.join(folder, f"{stem}_{number}.{extension}")
        if not os.path.lexists(path):
            return path
        number += 1
