"""What the remote loggers (MLflow, W&B, Comet, Neptune) share to continue a run after a restart.

A remote logger's ``state_dict()`` names its run and the last step it logged; ``load_state_dict(state)``,
called before the run starts, makes the logger continue that run. The values the earlier process stored
at steps after ``last_step`` are then superseded: each backend marks where the new process took over (see
:mod:`tracklight.runs._superseded`, which the readers share), because no backend here deletes points.

:class:`ResumeState` keeps what ``load_state_dict`` was given until the run starts. Checking a state never
raises: a state this logger cannot use gives one warning, and the logger starts a new run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tracklight._errors import warn

__all__ = ["ResumeState", "last_step_of", "next_last_step"]


class ResumeState:
    """The state one remote logger was asked to continue, checked once, and its ``last_step``.

    Args:
        owner: The logger's class name (``state["logger"]`` must be it).
        continue_run: The constructor's ``continue_run``: false ignores every state.
    """

    def __init__(self, owner: str, continue_run: bool) -> None:
        self.owner = owner
        self.continue_run = bool(continue_run)
        #: The checked state, or ``None`` when there is none to continue.
        self.state: dict[str, Any] | None = None
        #: When the state was loaded (seconds since the epoch): this process took over the run then, before it
        #: logged anything.
        self.loaded_at = 0.0

    def load(self, state: Mapping[str, Any], started: bool, identity: tuple[str, ...]) -> None:
        """Remember ``state`` when this logger can continue it: it comes from the same kind of logger, names a
        run (one of the ``identity`` keys holds text) and has a ``last_step`` (an integer or ``None``)."""
        if not self.continue_run:
            return
        if started:
            warn(
                f"{self.owner}.load_state_dict() was called after the run started, so it changes nothing: this "
                "logger goes on logging to its run. Fix: call load_state_dict() before the first value is logged "
                "(Lightning's Trainer does, when fit(ckpt_path=...) resumes)."
            )
            return
        problem = _problem(self.owner, state, identity)
        if problem is not None:
            self.state = None
            warn(
                f"{self.owner}.load_state_dict() cannot continue the run in this state ({problem}), so a new run "
                f"is started. Fix: pass the state a {self.owner}'s state_dict() returned, or continue_run=False "
                "to start a new run without this warning."
            )
            return
        self.state = dict(state)
        self.loaded_at = time.time()

    def give_up(self, why: str) -> None:
        """The run of the state cannot be continued (it is gone, the server says no): one warning, a new run."""
        if self.state is None:
            return
        self.state = None
        warn(f"{self.owner} cannot continue the run it was given ({why}), so it starts a new run.")

    def get(self, key: str) -> Any:
        return None if self.state is None else self.state.get(key)

    @property
    def last_step(self) -> int | None:
        return last_step_of(self.state)


def last_step_of(state: Mapping[str, Any] | None) -> int | None:
    """``state["last_step"]`` as an integer (``None`` when nothing was logged before the state was taken)."""
    value = None if state is None else state.get("last_step")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def next_last_step(last: int | None, step: int | None) -> int | None:
    """The largest step logged so far, once ``step`` is logged too."""
    if step is None:
        return last
    step = int(step)
    return step if last is None or step > last else last


def _problem(owner: str, state: Any, identity: tuple[str, ...]) -> str | None:
    """What makes ``state`` unusable, or ``None``."""
    if not isinstance(state, Mapping):
        return f"it is a {type(state).__name__}, not a dict"
    if state.get("logger") != owner:
        return f"it is the state of {state.get('logger')!r}, not of a {owner}"
    if not any(isinstance(state.get(key), str) and state.get(key) for key in identity):
        return f"it names no run: none of {', '.join(repr(key) for key in identity)} is set"
    step = state.get("last_step", "missing")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
        return f"its 'last_step' is {step!r}, not an integer or None"
    return None
