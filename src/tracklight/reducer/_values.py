"""Logged values: checked and made safe to keep at ``log()`` time, turned into Python numbers in one batch.

Tensors stay tensors (on their device, no host synchronisation) until a step is logged or an epoch ends;
then :func:`to_floats` moves every tensor of a dict to the host with one transfer per device and dtype.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from tracklight._errors import TracklightWarning
from tracklight._imports import is_instance_by_name
from tracklight.reducer._errors import InvalidMetricError

__all__ = ["Scalar", "default_dtype", "is_metric", "keep_tensor", "materialize", "normalize", "to_floats"]

_METRIC_CLASS = "torchmetrics.metric.Metric"
_warned_not_floating: set[str] = set()
_FLOATS = (torch.float32, torch.float64)
_float32, _float64 = _FLOATS


class Scalar(float):
    """A reduced value already on the host: a ``float`` that remembers the dtype of the tensor it stands for.

    ``trainer.callback_metrics`` hands out tensors, as Lightning's does; :meth:`as_tensor` makes that tensor
    once, when someone asks for it, so reducing never creates tensors nobody reads.
    """

    __slots__ = ("_tensor", "dtype")
    dtype: torch.dtype
    _tensor: Tensor | None

    def __new__(cls, value: float, dtype: torch.dtype) -> Scalar:
        self = super().__new__(cls, value)
        self.dtype = dtype
        self._tensor = None
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Scalar, (float(self), self.dtype))

    def as_tensor(self) -> Tensor:
        if self._tensor is None:
            self._tensor = torch.tensor(float(self), dtype=self.dtype)
        return self._tensor


def default_dtype() -> torch.dtype:
    """The dtype Lightning keeps logged values in: torch's default, but no lower than float32."""
    dtype = torch.get_default_dtype()
    return dtype if dtype in _FLOATS else torch.float32


def is_metric(value: Any) -> bool:
    """Whether ``value`` is a ``torchmetrics.Metric``, told without importing torchmetrics."""
    return is_instance_by_name(value, _METRIC_CLASS)


def normalize(name: str, value: Any, call: str = "log", fx: str | None = None) -> tuple[Any, bool]:
    """``(value, is_metric)`` with ``value`` safe to keep: a detached one-element tensor of at least float32
    that later in-place changes cannot alter, a Python float, or a ``torchmetrics.Metric``.

    Raises:
        InvalidMetricError: for dicts, strings and other types that cannot be logged, and for tensors with
            more than one element; the message names the key and the fix.
    """
    if isinstance(value, Tensor):
        return keep_tensor(name, value, call, fx), False
    kind = type(value)
    if kind is float:
        return value, False
    if kind is int or kind is bool:
        return float(value), False
    if is_metric(value):
        return value, True
    if isinstance(value, numbers.Real) or (
        isinstance(value, numbers.Number) and not isinstance(value, numbers.Complex)
    ):
        return float(value), False  # type: ignore[arg-type]  # numpy scalars, Fractions, Decimals
    raise InvalidMetricError(_unloggable(name, value, call))


def keep_tensor(name: str, value: Tensor, call: str = "log", fx: str | None = None) -> Tensor:
    """A logged tensor made safe to keep: one element, 0-d, float32 or float64, detached, and copied when
    something could change it in place later. ``fx`` (the hook) only names the place in the warning."""
    if value.dim():
        if value.numel() != 1:
            raise InvalidMetricError(
                f"`{call}({name}, {value})` was called, but the tensor must have a single element. You can try doing "
                f"`{call}({name}, {value}.mean())`: {name!r} got a tensor of shape {tuple(value.shape)}. Fix: reduce "
                f"it first, e.g. {call}({name!r}, value.mean()), or log each element under its own key."
            )
        value = value.reshape(())
    dtype = value.dtype
    if dtype is not _float32 and dtype is not _float64:
        if not value.is_floating_point() and name not in _warned_not_floating:
            _warned_not_floating.add(name)
            warnings.warn(warn_not_floating(name, call, fx), TracklightWarning, stacklevel=4)
        return value.detach().to(default_dtype())  # a copy: nothing can change it later
    if value.is_leaf or value._base is not None:
        # Leaves (parameters, buffers, anything made under no_grad) and views can be changed in place after
        # log() returns, by the optimizer or the user; Lightning's copy keeps the logged value, so does this
        # one. Results of autograd-tracked operations are not changed in place, so they are not copied.
        return value.detach().clone()
    return value.detach()


#: How much of an unloggable value an error message shows (Lightning shows all of it).
_SHOWN = 200


def _unloggable(name: str, value: Any, call: str) -> str:
    # Lightning's sentence first, as Lightning words it (so a test's match= written for Lightning still
    # matches), then what to do.
    said = f"`{call}({name}, {shown(value)})` was called, but"
    kind = type(value).__name__
    if isinstance(value, Mapping):
        if any(isinstance(v, Mapping) for v in value.values()):
            return (
                f"{said} nested dictionaries cannot be logged. Fix: flatten {name!r} and use {call}_dict(), "
                f"e.g. {call}_dict({{'{name}/a': ..., '{name}/b': ...}})."
            )
        return (
            f"{said} `{kind}` values cannot be logged: {call}() takes one value for {name!r}. "
            f"Fix: use {call}_dict() for several values."
        )
    if isinstance(value, str):
        return (
            f"{said} `{kind}` values cannot be logged: {name!r} got a string; only numbers, one-element tensors and "
            "torchmetrics Metrics can be logged. Fix: log text with logger.log_text(), or log a number."
        )
    return (
        f"{said} `{kind}` values cannot be logged: only numbers, one-element tensors and torchmetrics Metrics can "
        f"be logged as {name!r}. Fix: convert it to a number or a tensor first, e.g. torch.as_tensor(value)."
    )


def shown(value: Any) -> str:
    """``str(value)`` for an error message: cut to its first characters, and never raising."""
    try:
        text = str(value)
    except Exception:  # a broken __str__ must not hide the error being reported
        return f"<{type(value).__name__}>"
    return text[:_SHOWN] + "..." if len(text) > _SHOWN else text


def warn_not_floating(name: str, call: str, fx: str | None = None) -> str:
    where = f" in your `{fx}`" if fx else ""
    return (
        f"You called `{call}({name!r}, ...)`{where} but the value needs to be floating to be reduced. Converting it "
        f"to {default_dtype()}. Fix: convert it yourself (value.float()), or, for a value you do not want reduced "
        f"such as a counter, write it to the logger directly: logger.log_metrics({{{name!r}: value}})."
    )


def to_floats(values: Mapping[str, Any]) -> dict[str, float]:
    """Every value as a Python number: tensors moved to the host together, one transfer per device and dtype."""
    out: dict[str, Any] = {}
    groups: dict[tuple[torch.device, torch.dtype], tuple[list[str], list[Tensor]]] = {}
    for key, value in values.items():
        if isinstance(value, Tensor):
            keys, tensors = groups.setdefault((value.device, value.dtype), ([], []))
            keys.append(key)
            tensors.append(value.reshape(()) if value.dim() else value)
            out[key] = None  # keeps the caller's key order
        elif isinstance(value, float):
            out[key] = float(value)
        else:
            out[key] = value
    for keys, tensors in groups.values():
        host = [tensors[0].item()] if len(tensors) == 1 else torch.stack(tensors).tolist()
        out.update(zip(keys, host, strict=True))
    return out


def materialize(values: dict[str, Any]) -> dict[str, Any]:
    """Turn the :class:`Scalar` (and plain float) values of ``values`` into tensors, in place; returns it."""
    for key, value in values.items():
        if isinstance(value, float):
            values[key] = value.as_tensor() if isinstance(value, Scalar) else torch.tensor(value, dtype=default_dtype())
    return values
