"""WandbLogger's side of resume: its state, and the ``wandb.init`` arguments that continue the run.

W&B can rewind a run: ``wandb.init(resume_from="<id>?_step=<n>")`` keeps the run's history up to W&B's
step ``n`` and continues from there; the rows after it are dropped when the run reaches the server (offline,
the run's file records the branch point and ``wandb sync`` applies it). tracklight logs rows without W&B's
``step=``, so the state keeps W&B's step of the last row logged at the checkpoint (``wandb_step``) beside the
trainer's (``last_step``). When W&B refuses to rewind (an older server, a project without the feature),
the run is continued as it is (``resume="allow"``), with one warning, and the superseded rows stay.
"""

from __future__ import annotations

from typing import Any

from tracklight._errors import warn
from tracklight.loggers._remote_resume import ResumeState
from tracklight.loggers.wandb.sink import WandbSink

__all__ = ["check", "init_run", "wandb_step"]


def wandb_step(sink: WandbSink | None, rows_queued: int) -> int | None:
    """W&B's step of the last row queued so far, from what the worker saw last and what is still queued; never
    asks W&B."""
    if sink is None or not rows_queued:
        return None
    delivered, next_step = sink.progress
    if next_step is None:  # nothing handed over yet: the run's first step (after a rewind, the step after it)
        next_step = getattr(sink.run, "starting_step", None)
        if not isinstance(next_step, int) or isinstance(next_step, bool):
            return None
    return next_step + (rows_queued - delivered) - 1


def check(resume: ResumeState, explicit_id: str | None, project: str | None) -> None:
    """Drop a loaded state of another project (one warning) or of another run than an explicit ``id``."""
    state = resume.state
    if state is None:
        return
    if isinstance(state.get("project"), str) and project is not None and state["project"] != project:
        resume.give_up(
            f"its run is in the project {state['project']!r}, and this logger logs to {project!r}; pass the same "
            "project as the first time to continue it"
        )
    elif explicit_id is not None and explicit_id != state.get("id"):
        resume.state = None  # the id given to the constructor wins, silently: the user asked for it


def init_run(wandb: Any, arguments: dict[str, Any], resume: ResumeState) -> Any:
    """``wandb.init`` for the state ``resume`` holds (rewinding to its W&B step when it has one), else as asked."""
    state, resume.state = resume.state, None  # once: a run finished and opened again later is not rewound again
    if state is None:
        return wandb.init(**arguments)
    arguments = {**arguments, "id": state["id"], "resume": "allow"}
    step = _rewind_step(state, arguments.get("dir"))
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return wandb.init(**arguments)
    rewind = {key: value for key, value in arguments.items() if key not in ("id", "resume")}
    try:
        return wandb.init(**rewind, resume_from=f"{state['id']}?_step={step}")
    except Exception as error:  # a server without rewinding: continue the run as it is
        warn(
            f"WandbLogger: W&B did not rewind the run {state['id']} to its step {step} ({type(error).__name__}: "
            f"{error}), so it is continued as it is: the rows the earlier process logged after step "
            f"{state.get('last_step')} stay beside the new ones. Fix: enable run rewinding for the project."
        )
        return wandb.init(**arguments)


def _rewind_step(state: dict[str, Any], save_dir: Any) -> Any:
    """W&B's step to rewind to: that of the last row the checkpoint covers. ``wandb_step`` is the last row queued
    when the checkpoint was saved; a Trainer logs the values of the batch it saves in right after saving (the
    record's ``last_step`` says so), so where the earlier process's run file is on this machine, its last row at
    a trainer step up to ``last_step`` is kept too (rows after it are superseded)."""
    step = state.get("wandb_step")
    last_step = state.get("last_step")
    if save_dir is None or not isinstance(last_step, int) or not isinstance(step, int) or isinstance(step, bool):
        return step
    try:
        from tracklight.runs._wandb import read_run, run_files

        files = run_files(save_dir, str(state["id"]))
        rows = read_run(files[-1]).history if files else []
    except Exception:  # no readable file (an online run elsewhere, a damaged file): W&B's step as saved
        return step
    covered = [
        row["_step"]
        for row in rows
        if isinstance(row.get("_step"), int)
        and isinstance(row.get("trainer/global_step"), int | float)
        and row["trainer/global_step"] <= last_step
    ]
    return max([step, *covered])
