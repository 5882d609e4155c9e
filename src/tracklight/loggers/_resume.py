"""Resume helpers several loggers share: the state of a list of loggers, and giving each its own back.

A list of loggers is saved as a list of their :meth:`~tracklight.loggers.Logger.state_dict` results. On the way
back each state goes to the logger of the same class, in order (the second ``CSVLogger`` gets the second
``CSVLogger`` state), so adding or removing another logger between the two processes changes nothing for the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tracklight._errors import warn


def states_of(loggers: Iterable[Any]) -> list[dict[str, Any]]:
    """Each logger's ``state_dict()``; ``{}`` for one that has none (a Lightning logger) or whose call failed."""
    states = []
    for logger in loggers:
        state: dict[str, Any] = {}
        method = getattr(logger, "state_dict", None)
        if callable(method) and _is_tracklight(logger):
            try:
                state = dict(method())
            except Exception as err:  # a state is a convenience: it never stops a checkpoint from being saved
                warn(
                    f"{type(logger).__name__}.state_dict() failed ({type(err).__name__}: {err}); its run is not "
                    "recorded in this checkpoint, so a resume from it starts a new run for this logger."
                )
        states.append(state)
    return states


def pairs(loggers: Sequence[Any], states: Sequence[Any]) -> list[tuple[Any, Mapping[str, Any]]]:
    """``(logger, state)`` for each tracklight logger that has a state of its own class in ``states``."""
    by_class: dict[str, list[Mapping[str, Any]]] = {}
    for state in states:
        if isinstance(state, Mapping) and isinstance(state.get("logger"), str):
            by_class.setdefault(state["logger"], []).append(state)
    found = []
    for logger in loggers:
        if not _is_tracklight(logger):
            continue
        waiting = by_class.get(type(logger).__name__)
        if waiting:
            found.append((logger, waiting.pop(0)))
    return found


def load_into(loggers: Sequence[Any], states: Sequence[Any]) -> None:
    """Give each tracklight logger its state; a logger whose ``load_state_dict`` raises is reported, not raised."""
    for logger, state in pairs(loggers, states):
        try:
            logger.load_state_dict(state)
        except Exception as err:
            warn(
                f"{type(logger).__name__}.load_state_dict() failed ({type(err).__name__}: {err}); this logger starts "
                "a new run. Pass continue_run=False to the logger to start a new run without trying."
            )


def _is_tracklight(logger: Any) -> bool:
    from tracklight.loggers.logger import Logger

    return isinstance(logger, Logger)
