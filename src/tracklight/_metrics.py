"""Metric values as plain Python numbers, with an error that names the key when one is not a number.

Every backend converts metric values here, on the calling thread, so a bad value is refused the same way
everywhere and before anything is queued: a value is stored as the number it is, or refused with an
:class:`InvalidMetricError` that names the key and the fix. Nothing else escapes.

Steps are checked here too (:func:`check_step`): a step must fit a signed 64-bit integer, the widest step
MLflow (its SQL stores and REST API), TensorBoard (``Event.step``), W&B, Comet and Neptune hold. A step
beyond it would be refused by the server long after the call (MLflow), or stored as another step
(TensorBoard kept ``2**64`` as 0), so it is refused at the call, on every backend.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from tracklight._errors import InvalidMetricError

#: The largest magnitude a 64-bit float holds: an int beyond it has no float value in any backend.
_FLOAT_MAX = sys.float_info.max

#: The steps every backend holds: a signed 64-bit integer (MLflow's and TensorBoard's step is an int64).
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1


def check_step(metrics: Iterable[str], step: Any) -> None:
    """Raise :class:`InvalidMetricError` naming the keys of ``metrics`` when ``step`` is not ``None`` nor a whole
    number within a signed 64-bit integer; ``step`` itself is left as it is."""
    if step is None or (type(step) is int and STEP_MIN <= step <= STEP_MAX):
        return
    cause: Exception | None = None
    try:
        whole = int(step)  # numpy and torch integers, a one-element tensor, a float: what the backends do with it
    except (TypeError, ValueError, OverflowError) as error:
        problem, cause = f"is {step!r:.60}, not a whole number", error
    else:
        if STEP_MIN <= whole <= STEP_MAX:
            return
        problem = f"is {whole}, beyond what the backends hold (a 64-bit integer, at most 2**63 - 1)"
    keys = ", ".join(repr(key) for key in list(metrics)[:5]) or "(no keys)"
    raise InvalidMetricError(
        f"The step of the metrics {keys} {problem}, so nothing of this call is logged. Fix: log at a step "
        f"between {STEP_MIN} and {STEP_MAX}, e.g. trainer.global_step or a counter from 0."
    ) from cause


def to_number(key: str, value: Any) -> float | int:
    """``value`` as an int or float: Python numbers, numpy scalars and one-element tensors or arrays."""
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return value if -_FLOAT_MAX <= value <= _FLOAT_MAX else _refuse_huge(key, value)
    if kind is bool:
        return int(value)
    if getattr(kind, "item", None) is not None:  # looked up on the class: an instance's __getattr__ may lie
        return _plain(key, _item(key, value), kind)
    return _plain(key, value, kind)


def to_numbers(metrics: Mapping[str, Any], prefix: str = "", join: str = "-") -> dict[str, float | int]:
    """Every value of ``metrics`` as a number, keys prefixed with ``prefix`` + ``join`` when a prefix is set."""
    if prefix:
        return {f"{prefix}{join}{key}": to_number(key, value) for key, value in metrics.items()}
    return {key: to_number(key, value) for key, value in metrics.items()}


def are_plain(values: Iterable[Any]) -> bool:
    """Whether :func:`to_number` would return every value unchanged (floats, and ints a float can hold), so a
    backend's fast path may skip it."""
    for value in values:
        kind = type(value)
        if kind is not float and (kind is not int or not -_FLOAT_MAX <= value <= _FLOAT_MAX):
            return False
    return True


def _item(key: str, value: Any) -> Any:
    """The single element of a tensor, array or numpy scalar."""
    try:
        numel = value.numel() if hasattr(type(value), "numel") else getattr(value, "size", 1)
        if isinstance(numel, int) and numel != 1:
            raise InvalidMetricError(
                f"Metric {key!r} is a tensor or array with {numel} elements; only single values can be logged. "
                f"Fix: reduce it first (e.g. value.mean()) or log each element under its own key."
            )
        return value.item()
    except InvalidMetricError:
        raise
    except Exception as err:  # a meta tensor, a broken array-like: whatever it raises, the user needs the key
        raise InvalidMetricError(
            f"Metric {key!r}: its {type(value).__name__} holds no readable value ({type(err).__name__}: {err}). "
            "Fix: log a number, or a one-element tensor that holds data (not on the 'meta' device)."
        ) from err


def _plain(key: str, value: Any, given: type) -> float | int:
    """``value`` (what the user gave, or the element read out of it) as an int or float, or the error."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):  # int subclasses (IntEnum, numpy's item()) become plain ints
        return int(value) if -_FLOAT_MAX <= value <= _FLOAT_MAX else _refuse_huge(key, value)
    if isinstance(value, float):
        return float(value)
    name = given.__name__ if given is type(value) else f"{given.__name__} holding a {type(value).__name__}"
    if isinstance(value, complex):
        raise InvalidMetricError(
            f"Metric {key!r} is a complex number ({name}); backends store real numbers only. "
            f"Fix: log its parts under their own keys, e.g. {{'{key}/real': z.real, '{key}/imag': z.imag}}, "
            "or its magnitude abs(z)."
        )
    try:
        shown = f"{value!r:.60}"
    except Exception:  # a value whose repr raises is still named by its key and type
        shown = "unprintable"
    raise InvalidMetricError(
        f"Metric {key!r} has a value of type {name} ({shown}); metrics must be numbers or "
        "one-element tensors. Fix: log text with log_text() and nested values as separate keys."
    )


def _refuse_huge(key: str, value: int) -> NoReturn:
    raise InvalidMetricError(
        f"Metric {key!r} is an integer of {value.bit_length()} bits, beyond what a 64-bit float holds "
        "(about 1.8e308), so no backend can store it. Fix: log a scaled value, e.g. math.log10(value)."
    )
