"""MLFlowLogger's side of resume: its state, the run it continues, and the tag that marks superseded points.

MLflow has no call that deletes metric points. A continued run gets the tag ``tracklight.resumed.<ms>`` =
``<last_step>`` instead: points logged before that time at steps after ``last_step`` are superseded, and
``tracklight.runs`` leaves them out. The metric timestamps tell the processes apart, so what the earlier
process kept in its spill file (sent now, with its own timestamps) is superseded the same way.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

from tracklight._errors import warn
from tracklight._resumed import MLFLOW_TAG_PREFIX
from tracklight.loggers._remote_resume import ResumeState

__all__ = ["Continued", "check", "continued", "state_of"]

_SAFE_LOCAL_ID = re.compile(r"[A-Za-z0-9_.-]+")


def state_of(owner: str, **fields: Any) -> dict[str, Any]:
    """The logger's ``state_dict()``: plain data, with credentials taken out of the tracking URI."""
    state = {"logger": owner, **fields}
    state["tracking_uri"] = _without_credentials(str(fields["tracking_uri"]))
    return state


def check(resume: ResumeState, run_id: str | None, tracking_uri: str) -> None:
    """Drop a loaded state that names another store (one warning) or another run than an explicit ``run_id``."""
    state = resume.state
    if state is None:
        return
    local_id = state.get("local_id")
    if local_id is not None and not (isinstance(local_id, str) and _SAFE_LOCAL_ID.fullmatch(local_id)):
        resume.give_up(f"its 'local_id' {local_id!r} is not a local id MLFlowLogger makes")
        return
    logged_to = state.get("tracking_uri")
    if isinstance(logged_to, str) and logged_to != _without_credentials(tracking_uri):
        resume.give_up(
            f"its run is in {logged_to}, and this logger logs to {_without_credentials(tracking_uri)}; pass the "
            "same tracking_uri as the first time to continue it"
        )
        return
    if run_id is not None and run_id != state.get("run_id"):
        resume.state = None  # the run_id given to the constructor wins, silently: the user asked for it


@dataclass
class Continued:
    """The run a starting logger continues: from where, and since when."""

    run_id: str | None
    local_id: str
    last_step: int | None
    start_ms: int

    def tag(self) -> dict[str, Any]:
        """The delivery item that marks the takeover in the run."""
        step = "none" if self.last_step is None else str(self.last_step)
        return {"kind": "tag", "key": f"{MLFLOW_TAG_PREFIX}{self.start_ms}", "value": step}

    def announce_spill(self, path: str, where: str) -> None:
        """One line when the earlier process left values in its spill file: they are sent now, before the new ones."""
        if not os.path.exists(path):
            return
        from tracklight.delivery.spill import SpillFile

        try:
            kept = SpillFile(path).unsent
        except Exception:  # a damaged file is reported by delivery itself when it reads it
            return
        if kept:
            run = f"run {self.run_id}" if self.run_id else "its run"
            warn(
                f"MLFlowLogger: the process that logged before this restart kept {kept} values in {path}; they are "
                f"sent now to {run} on {where}, each once."
            )


def continued(resume: ResumeState, run_id: str | None) -> Continued | None:
    """The run to continue, as the logger starts (``None``: a new run, or the ``run_id`` given, as usual)."""
    state = resume.state
    if state is None:
        return None
    found = state.get("run_id")
    local_id = state.get("local_id")
    if not isinstance(local_id, str):
        local_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-resumed"
    return Continued(
        run_id if run_id is not None else found if isinstance(found, str) else None,
        local_id,
        resume.last_step,
        int(resume.loaded_at * 1000),
    )


def _without_credentials(uri: str) -> str:
    return re.sub(r"//[^/@]*@", "//", uri)
