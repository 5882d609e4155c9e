"""Loggers that write into ``save_dir/name/version_N``: the directory logic CSV and TensorBoard share."""

from __future__ import annotations

import os
from typing import Any

from tracklight._fs import claim_next_version, next_version
from tracklight._rank import global_rank
from tracklight.loggers.logger import Logger


class VersionedDirLogger(Logger):
    """``save_dir/name/version_N`` (or ``save_dir/name/<version string>``), with N chosen atomically on rank 0.

    The version is chosen the first time it is needed. Rank zero claims it by creating the directory,
    so concurrent runs on the same ``save_dir`` never share one; other ranks only compute it, as they
    must not create directories (Lightning broadcasts rank zero's paths where it matters).
    """

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        sub_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version
        self._sub_dir = None if sub_dir is None else os.fspath(sub_dir)

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | str:
        if self._version is None:
            root = os.path.expanduser(os.path.expandvars(self.root_dir))  # where log_dir will be: "~" expanded
            self._version = claim_next_version(root) if global_rank() == 0 else next_version(root)
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return os.path.join(self._save_dir, self._name)

    @property
    def sub_dir(self) -> str | None:
        return self._sub_dir

    @property
    def log_dir(self) -> str:
        version = self.version if isinstance(self.version, str) else f"version_{self.version}"
        path = os.path.join(self.root_dir, version)
        if self._sub_dir:
            path = os.path.join(path, self._sub_dir)
        return os.path.expandvars(os.path.expanduser(path))

    def __getstate__(self) -> dict[str, Any]:
        # Resolve the version before pickling (ddp_spawn) so every process writes to the same directory.
        if global_rank() == 0:
            _ = self.version
        return self._state_for_pickle()

    def _state_for_pickle(self) -> dict[str, Any]:
        return dict(self.__dict__)
