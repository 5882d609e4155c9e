"""Loggers that write into ``save_dir/name/version_N``: the directory logic CSV and TensorBoard share."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tracklight._errors import UnsafePathError
from tracklight._fs import claim_next_version, leaves_its_folder, next_version
from tracklight._rank import global_rank
from tracklight.loggers._starting import start_lock
from tracklight.loggers.logger import Logger
from tracklight.remote._store import check_protocol, is_url, join, local_path

if TYPE_CHECKING:
    from tracklight.remote._run import RemoteRun


class VersionedDirLogger(Logger):
    """``save_dir/name/version_N`` (or ``save_dir/name/<version string>``), with N chosen atomically on rank 0.

    The version is chosen the first time it is needed. Rank zero claims it by creating the directory,
    so concurrent runs on the same ``save_dir`` never share one; other ranks only compute it, as they
    must not create directories (Lightning broadcasts rank zero's paths where it matters).

    A ``save_dir`` that is a URL (``s3://bucket/logs``) keeps the same layout in its object store:
    ``log_dir`` is a URL, and the writers write into :meth:`_local_dir`, a staging folder that
    :mod:`tracklight.remote` uploads in the background.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        sub_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._save_dir = local_path(os.fspath(save_dir))
        self._name = _inside_save_dir("name", name or "", self._save_dir)
        self._version = version
        if isinstance(version, str):
            _inside_save_dir("version", version, self._save_dir)
        self._sub_dir = None if sub_dir is None else _inside_save_dir("sub_dir", os.fspath(sub_dir), self._save_dir)
        self._remote = is_url(self._save_dir)
        self._remote_run: RemoteRun | None = None
        if self._remote:
            check_protocol(self._save_dir)  # a missing fsspec package is named now, not at the first write

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | str:
        if self._version is None or (self._remote and self._remote_run is None):
            with start_lock(self):  # threads asking first at once: one version claimed, one remote run opened
                self._choose_version()
        return self._version  # type: ignore[return-value]  # chosen above

    def _choose_version(self) -> None:
        if self._version is None:
            root = os.path.expanduser(os.path.expandvars(self._versions_dir))  # where log_dir will be: "~" expanded
            self._version = claim_next_version(root) if global_rank() == 0 else next_version(root)
            if self._remote and global_rank() == 0:
                self._open_remote(claimed=True)
        elif self._remote and self._remote_run is None and global_rank() == 0:
            self._open_remote(claimed=False)  # a named version: fail now if the store refuses writes

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return self._name_dir()

    @property
    def _versions_dir(self) -> str:
        """The folder holding the version folders: ``root_dir`` (so a subclass that overrides it moves them);
        Fabric's loggers, whose ``root_dir`` means ``save_dir``, override this instead."""
        return self.root_dir

    def _name_dir(self) -> str:
        # Through the properties, so a subclass that overrides `name` (or `save_dir`) moves its directories.
        if self._remote:
            return join(self.save_dir, self.name)
        return os.path.join(self.save_dir, self.name)

    @property
    def sub_dir(self) -> str | None:
        return self._sub_dir

    @property
    def log_dir(self) -> str:
        version = self.version if isinstance(self.version, str) else f"version_{self.version}"
        if self._remote:
            return join(self._versions_dir, version, self._sub_dir or "")  # a URL: no "~" nor "$VAR" in it
        path = os.path.join(self._versions_dir, version)
        if self._sub_dir:
            path = os.path.join(path, self._sub_dir)
        return os.path.expandvars(os.path.expanduser(path))

    def _local_dir(self) -> str:
        """Where the writers write: ``log_dir``, or for a URL the local staging folder uploaded to it."""
        log_dir = self.log_dir
        if not self._remote:
            return log_dir
        if self._remote_run is None:  # never a local path made from a URL: open the run or raise
            self._open_remote(claimed=False)
        assert self._remote_run is not None
        return self._remote_run.staging_dir

    def _files_dir(self) -> str | None:
        return self._local_dir()

    def _open_remote(self, claimed: bool) -> None:
        from tracklight.remote._run import open_run

        version = self._version if isinstance(self._version, str) else f"version_{self._version}"
        version_url = join(self._versions_dir, version)
        # log_dir, built here from the version already chosen (log_dir itself would ask for the version again)
        log_dir = join(version_url, self._sub_dir or "")
        self._remote_run = open_run(log_dir, None if claimed else version_url)

    def _finish_remote(self) -> None:
        """At ``finalize``: wait (bounded) for the upload of everything written, and say what is left."""
        if self._remote_run is not None:
            self._remote_run.finish()

    def __getstate__(self) -> dict[str, Any]:
        # Resolve the version before pickling (ddp_spawn) so every process writes to the same directory.
        if global_rank() == 0:
            _ = self.version
        state = self._state_for_pickle()
        state["_remote_run"] = None  # threads and a staging folder belong to this process
        return state

    def _state_for_pickle(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _inside_save_dir(argument: str, value: str, save_dir: str) -> str:
    """``value`` (a part of ``log_dir`` under ``save_dir``), or an error if it would lead out of ``save_dir``."""
    if leaves_its_folder(os.path.expandvars(value)):
        raise UnsafePathError(
            f"{argument}={value!r} would put the run's files outside save_dir ({save_dir!r}): it is an absolute "
            f"path or goes up with '..'. Fix: pass a {argument} relative to save_dir without '..', or choose "
            f"save_dir so that {argument} is below it."
        )
    return value
