"""NeptuneLogger's side of resume: its state, and how the run is continued in each connection mode.

In ``async``/``sync`` mode the run is continued by its id (``neptune.init_run(with_id=...)``). Neptune only
takes increasing steps in a series, so the values the new process logs at steps the series has already
are placed just after its last step (``SeriesSteps``), none lost. Offline runs cannot be reopened (each
``neptune sync`` makes a run of its own): the new process writes a new offline run that records which run it
continues (``tracklight/resumed_from``) and where it took over (``tracklight/resumed_after_step``), and
``tracklight.runs`` reads the chain as one run without the superseded values. Debug runs live in memory
only, so there is nothing to continue.
"""

from __future__ import annotations

from typing import Any

from tracklight._resumed import NEPTUNE_FROM, SDK_MARK
from tracklight.loggers._remote_resume import ResumeState, last_step_of

__all__ = ["check", "mark", "with_id"]
_SERVER_MODES = ("async", "sync")


def check(resume: ResumeState, mode: str, kwargs: dict[str, Any], run_given: bool) -> None:
    """Keep a loaded state only when this logger can continue its run: same kind of mode (server or offline),
    no run, ``with_id`` or ``custom_run_id`` of the user's own (which win, silently)."""
    state = resume.state
    if state is None:
        return
    explicit = kwargs.get("with_id") or kwargs.get("custom_run_id")
    if run_given or (explicit and explicit != state.get("run_id")):
        resume.state = None
        return
    before = str(state.get("mode") or "async")
    if mode == "debug" or before == "debug":
        resume.give_up("debug runs are kept in memory only")
    elif (mode in _SERVER_MODES) != (before in _SERVER_MODES):
        resume.give_up(f"its run was logged in {before} mode and this logger logs in {mode} mode; use the same mode")


def with_id(state: dict[str, Any], mode: str) -> str | None:
    """The id to continue the run of ``state`` by (``init_run(with_id=...)``), in the modes that can."""
    return str(state["run_id"]) if mode in _SERVER_MODES else None


def mark(run: Any, state: dict[str, Any]) -> None:
    """Record in the run where this process took over (and, offline, which run it continues)."""
    step = last_step_of(state)
    run[SDK_MARK] = -1 if step is None else step
    run[NEPTUNE_FROM] = str(state["run_id"])
