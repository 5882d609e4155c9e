"""A folder on an object store, named by a URL and reached through fsspec, with errors that name the fix.

Nothing here imports fsspec until a URL is actually used, so ``import tracklight`` and local runs stay
light. fsspec instances are not fork-safe, so a :class:`Store` opens its filesystem again in a forked child.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Any

from tracklight._errors import MissingDependencyError, TracklightError
from tracklight._imports import require

# A scheme followed by "://" (s3://bucket), or fsspec's chaining with "::" (simplecache::s3://bucket).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*(?:://|::)")


def is_url(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a folder on an fsspec filesystem rather than a local directory.

    ``file://`` URLs are local paths (see :func:`local_path`).

    Example:
        >>> is_url("s3://bucket/logs"), is_url("memory://logs"), is_url("logs"), is_url("file:///tmp/logs")
        (True, True, False, False)
    """
    path = os.fspath(path)
    return bool(_URL.match(path)) and not path.startswith("file://")


def local_path(path: str) -> str:
    """``path`` without a ``file://`` prefix, which names a local directory as Lightning reads it."""
    return path[len("file://") :] if path.startswith("file://") else path


def join(url: str, *parts: str) -> str:
    """``url`` with ``parts`` appended, always with ``/`` (object stores know no other separator)."""
    return posixpath.join(url, *(part for part in parts if part))


def check_protocol(url: str) -> None:
    """Raise at once, naming the package to install, when fsspec cannot load ``url``'s filesystem."""
    _filesystem_class(url)


class Store:
    """The folder ``url`` on its filesystem: ``fs`` and ``path`` as fsspec names them.

    Example:
        >>> store = Store("memory://tracklight-doc/run")
        >>> store.fs.pipe_file(store.child("a.txt"), b"hello")
        >>> store.fs.cat_file(store.child("a.txt"))
        b'hello'
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._opened: tuple[int, Any, str] | None = None

    @property
    def fs(self) -> Any:
        return self._open()[1]

    @property
    def path(self) -> str:
        return self._open()[2]

    def child(self, *parts: str) -> str:
        """The filesystem path of ``parts`` under this folder."""
        return join(self.path, *parts)

    def child_url(self, *parts: str) -> str:
        return join(self.url, *parts)

    def _open(self) -> tuple[int, Any, str]:
        opened = self._opened
        if opened is None or opened[0] != os.getpid():
            _filesystem_class(self.url)  # the clear error for a missing package comes first
            fsspec = require("fsspec", "remote")
            # fsspec's cached instance, as the user's own fsspec/pandas reads get: writes go where those read.
            fs, path = fsspec.core.url_to_fs(self.url)
            opened = self._opened = (os.getpid(), fs, path.rstrip("/"))
        return opened

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "_opened": None}


def describe_failure(url: str, error: BaseException) -> TracklightError:
    """The error to raise when ``url`` cannot be written at the start of a run: what is wrong and the fix."""
    if isinstance(error, TracklightError):
        return error
    cause = f"{type(error).__name__}: {error}"
    if isinstance(error, FileNotFoundError):
        hint = "The bucket (or container) does not exist: create it, or fix the URL."
    elif isinstance(error, PermissionError):
        hint = "The store refuses writes there: check the credentials and the bucket's policy."
    else:
        hint = "Check the URL, the credentials and that the store can be reached (an endpoint set in the environment?)."
    return TracklightError(f"Cannot log to {url}: {cause}. {hint}")


def _filesystem_class(url: str) -> Any:
    fsspec = require("fsspec", "remote")
    protocol = fsspec.core.split_protocol(url.split("::")[-1] if "::" in url else url)[0] or "file"
    for part in url.split("::")[:-1]:  # chained wrappers first (simplecache::...)
        _load_class(fsspec, part, url)
    return _load_class(fsspec, protocol, url)


def _load_class(fsspec: Any, protocol: str, url: str) -> Any:
    try:
        return fsspec.get_filesystem_class(protocol)
    except ImportError as err:
        known = require("fsspec.registry", "remote").known_implementations.get(protocol, {})
        package = str(known.get("class", "")).partition(".")[0]
        install = f"pip install {package}" if package and package != "fsspec" else "install what fsspec names"
        if protocol in ("s3", "s3a"):
            install += " (or pip install 'tracklight[remote]')"
        raise MissingDependencyError(
            f"Logging to {url} needs fsspec's {protocol!r} filesystem, which could not be loaded ({err}). "
            f"Install it: {install}."
        ) from err
    except ValueError as err:
        raise TracklightError(
            f"{url}: fsspec knows no {protocol!r} protocol ({err}). Check the URL's scheme, or install the package "
            "that registers it."
        ) from err
