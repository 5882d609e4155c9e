"""Loggers that write into ``save_dir/name/version_N``: the directory logic CSV and TensorBoard share."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracklight._errors import UnsafePathError, warn
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

    Resume (docs/resume.md): :meth:`state_dict` names the version and the last step logged; :meth:`load_state_dict`
    before the run starts makes the logger continue that version, and the writers set aside what the earlier
    process logged past that step when they open the folder (:meth:`_take_resume`).
    """

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        sub_dir: str | os.PathLike[str] | None = None,
        continue_run: bool = True,
    ) -> None:
        self._continue_run = continue_run
        self._explicit_version = version is not None
        self._version_claimed = False  # the version was chosen here (a folder claimed): the run started
        self._last_step: int | None = None
        self._resume_pending = False
        self._resume_last_step: int | None = None
        self._continued = False  # load_state_dict made this logger continue an earlier run
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
            self._version_claimed = True
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

    # ---- resume ------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """``{"logger", "name", "version", "last_step"}``: the version folder this run writes and the largest step
        logged so far (None before the first). Asking for it chooses the version if nothing did yet."""
        return {"logger": type(self).__name__, "name": self.name, "version": self.version, "last_step": self._last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the version ``state`` names; what was logged there past ``state["last_step"]`` is set aside when
        this logger first writes. See :meth:`tracklight.loggers.Logger.load_state_dict` for the rules."""
        if not self._continue_run:
            return
        kind = type(self).__name__
        if self._run_started():
            warn(
                f"{kind}.load_state_dict() was called after the run started (it writes version {self._version!r}); "
                "nothing changes. Load the state before the logger's first log call or its first use by the Trainer."
            )
            return
        problem = self._unusable(state)
        if problem is not None:
            warn(f"{kind} cannot continue the run in the state it was given: {problem}. It starts a new run.")
            return
        version = state["version"]
        if self._explicit_version and self._version != version:
            return  # the version given to the constructor wins; the state describes another run
        self._version = version
        last_step = state.get("last_step")
        self._continued = True
        self._resume_pending = True
        self._resume_last_step = last_step
        if last_step is not None and (self._last_step is None or last_step > self._last_step):
            self._last_step = last_step

    def _unusable(self, state: Any) -> str | None:
        """Why ``state`` cannot be continued by this logger, or None."""
        if not isinstance(state, Mapping):
            return f"it is a {type(state).__name__}, not the dict state_dict() returns"
        if state.get("logger") != type(self).__name__:
            return f"it is the state of a {state.get('logger')!r}, not of a {type(self).__name__}"
        version = state.get("version")
        if isinstance(version, bool) or not isinstance(version, (int, str)):
            return f"its 'version' is {version!r}, not an int or a folder name"
        if isinstance(version, str) and leaves_its_folder(os.path.expandvars(version)):
            return f"its 'version' {version!r} would lead out of save_dir"
        last_step = state.get("last_step")
        if last_step is not None and (isinstance(last_step, bool) or not isinstance(last_step, int)):
            return f"its 'last_step' is {last_step!r}, not an int or None"
        if "name" in state and state["name"] != self.name:
            return f"it is a run of the experiment {state['name']!r}, and this logger writes {self.name!r}"
        if not self._remote and not (self._explicit_version and self._version == version):
            folder = os.path.join(self.root_dir, version if isinstance(version, str) else f"version_{version}")
            if not os.path.isdir(os.path.expandvars(os.path.expanduser(folder))):
                return f"its folder {folder} is gone"
        return None

    def _continues_step_zero(self) -> bool:
        """Whether this logger continues a run whose values at step 0 are kept (not superseded)."""
        return self._continued and self._resume_last_step is not None and self._resume_last_step >= 0

    def _run_started(self) -> bool:
        """Whether this logger chose its version or opened its writers (then a state can no longer move it)."""
        return self._version_claimed or self._writers_open()

    def _writers_open(self) -> bool:
        return False

    def _take_resume(self) -> tuple[bool, int | None]:
        """``(True, last_step)`` once, the first time a writer opens the folder of a continued run."""
        pending, self._resume_pending = self._resume_pending, False
        return pending, self._resume_last_step

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
