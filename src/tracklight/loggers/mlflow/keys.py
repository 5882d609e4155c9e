"""MLflow's key rules: the one function every metric and hyperparameter key goes through, and a map that
keeps keys which become the same MLflow key apart."""

from __future__ import annotations

import hashlib
import re
import warnings

from tracklight._errors import TracklightWarning

__all__ = ["MAX_KEY_LENGTH", "KeyMap", "KeyRenamedWarning", "mlflow_key"]

#: The longest metric or param key MLflow takes (``mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH``).
MAX_KEY_LENGTH = 250

# What Lightning's MLFlowLogger keeps in a metric key: ASCII letters and digits, ``_ - . /`` and space.
_REMOVED_CHARACTERS = re.compile(r"[^a-zA-Z0-9_\-./ ]+")


class KeyRenamedWarning(TracklightWarning, RuntimeWarning):
    """A key was changed to one MLflow takes. A ``RuntimeWarning`` too, the category Lightning's logger uses."""


def mlflow_key(key: str) -> str:
    """The key MLflow stores for ``key``: the one rule every metric and hyperparameter key goes through.

    1. Every character other than ASCII letters, digits, ``_``, ``-``, ``.``, ``/`` and space is removed, as
       Lightning's ``MLFlowLogger`` removes them from metric keys (``[top-1]`` becomes ``top-1``).
    2. A key longer than 250 characters keeps its first 241 and ends in ``_`` plus 8 hex digits of a hash
       of the whole key, so long keys that share a beginning stay apart.
    3. Each ``/``-separated part that is empty, ``.`` or ``..`` becomes ``_`` (MLflow refuses keys that a
       file path would read differently: ``a//b``, ``/a``, ``a/``, ``a/./b``), and so does an empty key.

    Example:
        >>> mlflow_key("val/acc@top1")
        'val/acctop1'
        >>> mlflow_key("/loss//")
        '_/loss/_/_'
    """
    mapped = _REMOVED_CHARACTERS.sub("", key)
    if len(mapped) > MAX_KEY_LENGTH:
        mapped = mapped[: MAX_KEY_LENGTH - 9] + "_" + hashlib.sha1(key.encode()).hexdigest()[:8]
    return "/".join("_" if part in ("", ".", "..") else part for part in mapped.split("/"))


class KeyMap:
    """Original key -> MLflow key, remembering which original took each MLflow key to catch collisions."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._mapped: dict[str, str] = {}
        self._owner: dict[str, str] = {}

    def __call__(self, key: str) -> str:
        mapped = self._mapped.get(key)
        return mapped if mapped is not None else self._add(key)

    def _add(self, key: str) -> str:
        mapped = wanted = mlflow_key(key)
        number = 1
        while mapped in self._owner:
            number += 1
            mapped = f"{wanted}_{number}"
        self._mapped[key] = mapped
        self._owner[mapped] = key
        if mapped != wanted:
            warnings.warn(
                f"MLFlowLogger: the {self._what} keys {self._owner[wanted]!r} and {key!r} both become {wanted!r} "
                f"in MLflow, so {key!r} is logged as {mapped!r}. Rename one of them to choose the names.",
                KeyRenamedWarning,
                stacklevel=5,
            )
        elif mapped != key:
            # A metric key's warning starts with Lightning's own sentence, so a `match=` written for it holds.
            lightning = (
                f"MLFlow only allows '_', '/', '.' and ' ' special characters in metric name. Replacing {key} with "
                f"{mapped}. "
                if self._what == "metric"
                else ""
            )
            warnings.warn(
                f"{lightning}MLFlowLogger: MLflow only allows '_', '-', '.', '/' and ' ' as special characters in "
                f"metric names and other keys, so the {self._what} key {key!r} is logged as {mapped!r} (other "
                "characters are removed, as Lightning's MLFlowLogger removes them; empty, '.' or '..' parts between "
                "slashes become '_'; at most 250 characters).",
                KeyRenamedWarning,
                stacklevel=5,
            )
        return mapped
