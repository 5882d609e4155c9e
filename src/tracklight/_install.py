"""The ``pip`` command that adds one of tracklight's extras to the environment tracklight runs in.

``pip install 'tracklight[wandb]'`` works only for a tracklight that came from a package index. Run from a
clone (editable or through ``PYTHONPATH``), the extra comes from that clone: ``pip install -e
'/path/to/clone[wandb]'``; installed from a wheel file or a folder, from that file or folder. Every
``MissingDependencyError`` message goes through :func:`fix_install_commands`, so whoever writes one names the
extra as ``pip install 'tracklight[X]'`` and the user reads the command that works for their install.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

#: How messages name an extra: ``pip install 'tracklight[wandb]'`` (quotes optional).
_INDEX_COMMAND = re.compile(r"pip install '?tracklight\[(?P<extra>[\w,-]+)\]'?")

#: This package's folder: ``<clone>/src/tracklight`` when it runs from a clone.
_PACKAGE = Path(__file__).resolve().parent


def fix_install_commands(message: str) -> str:
    """``message`` with each ``pip install 'tracklight[X]'`` replaced by :func:`install_command` ``(X)``.

    Example:
        >>> fix_install_commands("Fix: pip install 'tracklight[wandb]'") == "Fix: " + install_command("wandb")
        True
    """
    return _INDEX_COMMAND.sub(lambda match: install_command(match["extra"]), message)


@functools.cache
def install_command(extra: str) -> str:
    """The command that installs tracklight's ``extra`` where this tracklight came from.

    From a clone: ``pip install -e '<clone>[extra]'``; from a wheel file or a folder that is still there: that
    path with ``[extra]``; from a URL: ``pip install 'tracklight[extra] @ <url>'``; otherwise (a package index,
    or an install that cannot be told apart): ``pip install 'tracklight[extra]'``.
    """
    clone = _clone_root()
    if clone is not None:
        return f"pip install -e {shlex.quote(f'{clone}[{extra}]')}"
    source = _installed_from()
    if source is None:
        return f"pip install 'tracklight[{extra}]'"
    url, editable = source
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        if path.exists():
            return f"pip install {'-e ' if editable else ''}{shlex.quote(f'{path}[{extra}]')}"
        return f"pip install 'tracklight[{extra}]'"
    return f"pip install {shlex.quote(f'tracklight[{extra}] @ {url}')}"


def _clone_root() -> Path | None:
    """The clone this package runs from (``<root>/src/tracklight`` with tracklight's ``pyproject.toml``), if any."""
    root = _PACKAGE.parent.parent
    try:
        project = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if _PACKAGE.parent.name == "src" and re.search(r'^name = "tracklight"', project, re.M) else None


def _installed_from() -> tuple[str, bool] | None:
    """The URL this installed package came from and whether it is editable (PEP 610 ``direct_url.json``), or
    None when it came from an index or its metadata does not belong to the package running here."""
    try:
        distribution = metadata.distribution("tracklight")
        if Path(str(distribution.locate_file("tracklight"))).resolve() != _PACKAGE:
            return None  # the metadata found first belongs to another copy of tracklight
        direct = distribution.read_text("direct_url.json")
        if direct is None:
            return None
        record = json.loads(direct)
        return str(record["url"]), bool(record.get("dir_info", {}).get("editable", False))
    except (metadata.PackageNotFoundError, OSError, ValueError, KeyError, TypeError):
        return None
