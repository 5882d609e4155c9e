"""Small file helpers the readers share: hyperparameter YAML, the last lines of a file, modification times."""

from __future__ import annotations

import json
import os
from typing import Any

import yaml

from tracklight.params import flatten
from tracklight.runs._run import MediaFile, RunError

__all__ = ["file_reader", "media_index", "mtime", "name_and_version", "read_hparams", "tail"]


def read_hparams(path: str) -> dict[str, Any]:
    """An ``hparams.yaml`` (Lightning's or tracklight's), flattened; {} when the file is missing.

    Lightning may write ``!!python/...`` tags (tuples, Namespaces); those are read as plain values, never
    constructed. Raises :class:`RunError` naming the file when it is not YAML.
    """
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        try:
            loaded = yaml.load(text, Loader=loader)
        except yaml.constructor.ConstructorError:
            from tracklight.params import _PythonTagsAsPlain

            plain = _PythonTagsAsPlain(text)
            try:
                loaded = plain.get_single_data()
            finally:
                plain.dispose()
    except yaml.YAMLError as err:
        raise RunError(path, f"cannot be read as YAML ({err})") from err
    return flatten(loaded) if isinstance(loaded, dict) else {}


def tail(path: str, size: int = 8192) -> list[bytes]:
    """The complete lines among the last ``size`` bytes of a file (the first may be cut: it is left out when the
    read did not start at the beginning); a last line without its newline is left out too (still being written)."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        start = max(0, end - size)
        handle.seek(start)
        data = handle.read()
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a line still being written
    if start > 0 and lines:
        lines.pop(0)
    return lines


def mtime(*paths: str) -> float | None:
    """The newest modification time of the paths that exist."""
    times = []
    for path in paths:
        try:
            times.append(os.stat(path).st_mtime)
        except OSError:
            continue
    return max(times) if times else None


def media_index(folder: str) -> list[MediaFile]:
    """Media kept as files under ``<folder>/media``, listed in ``media/index.jsonl`` (tracklight's loggers)."""
    index = os.path.join(folder, "media", "index.jsonl")
    found: list[MediaFile] = []
    try:
        with open(index, encoding="utf-8") as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        return found
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a crash
            continue
        for relative in record.get("files", []):
            path = os.path.join(folder, relative)
            found.append(
                MediaFile(
                    key=str(record.get("key")),
                    kind=str(record.get("kind", "file")),
                    step=record.get("step"),
                    name=os.path.basename(relative),
                    load=file_reader(path),
                )
            )
    return found


def file_reader(path: str) -> Any:
    """A ``MediaFile.load`` that reads ``path`` when called."""

    def load() -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    return load


def name_and_version(folder: str) -> tuple[str | None, str | None]:
    """``save_dir/name/version_N``: the logger's name and version, as Lightning lays them out."""
    base = os.path.basename(os.path.normpath(folder))
    parent = os.path.basename(os.path.dirname(os.path.normpath(os.path.abspath(folder))))
    if base.startswith("version_"):
        return parent or None, base.removeprefix("version_")
    return base or None, None
