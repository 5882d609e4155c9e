"""Never replace data in an object store that this run does not hold.

Object stores cannot append, so every upload replaces a whole object. Before replacing one, the mirror
asks the store what the object is now (its ETag, or its size and time where the store has no ETag) and
compares with what it left there itself (its last upload, or what it downloaded when the run resumed). An
object changed by someone else (another process on the same version, a later resumed run) is replaced
only if what this run would upload still holds all of it (:func:`extends`); otherwise it is left alone and
the run's copy stays in the staging folder.

The check and the upload are two requests: a writer that lands between them is not seen (the window is a
few milliseconds; S3's conditional writes would close it, and not every fsspec store has them).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Hashable
from typing import Any

import yaml


def key(fs: Any, path: str) -> Hashable | None:
    """What identifies the object at ``path`` as it is now (None when there is none)."""
    fs.invalidate_cache(path)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return None
    if info.get("type") == "directory":
        return None
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return str(etag)
    stamp = info.get("LastModified") or info.get("mtime") or info.get("created") or info.get("updated")
    return (info.get("size"), str(stamp))


def uploaded_key(response: Any) -> Hashable | None:
    """The ETag an upload's answer gives (s3fs returns S3's ``put_object`` answer), or None."""
    if isinstance(response, dict) and response.get("ETag"):
        return str(response["ETag"])
    return None


def extends(relative: str, theirs: bytes, ours: bytes) -> bool:
    """Whether ``ours`` holds everything ``theirs`` (what the store has at ``relative``) holds, so uploading it
    loses nothing: the same rows first for a CSV table (its header may have grown), the same values for YAML,
    the same bytes first for anything else (event files and JSON lines only grow)."""
    if theirs == ours or ours.startswith(theirs):
        return True
    name = relative.rpartition("/")[2]
    try:
        if name.endswith(".csv"):
            header_theirs, rows_theirs = _records(theirs)
            header_ours, rows_ours = _records(ours)
            return set(header_theirs) <= set(header_ours) and rows_ours[: len(rows_theirs)] == rows_theirs
        if name.endswith((".yaml", ".yml")):
            return _contained(yaml.safe_load(theirs), yaml.safe_load(ours))
    except (UnicodeDecodeError, csv.Error, yaml.YAMLError):
        return False
    return False


def _records(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    header = next((values for values in reader if values), [])
    rows = [{k: v for k, v in zip(header, values, strict=False) if v} for values in reader if values]
    return header, rows


def _contained(theirs: Any, ours: Any) -> bool:
    if isinstance(theirs, dict) and isinstance(ours, dict):
        return all(name in ours and _contained(value, ours[name]) for name, value in theirs.items())
    return bool(theirs == ours)
