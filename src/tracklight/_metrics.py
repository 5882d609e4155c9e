"""Metric values as plain Python numbers, with an error that names the key when one is not a number."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracklight._errors import InvalidMetricError


def to_number(key: str, value: Any) -> float | int:
    """``value`` as an int or float: Python numbers, numpy scalars and one-element tensors or arrays."""
    kind = type(value)
    if kind is float or kind is int:
        return value
    if kind is bool:
        return int(value)
    item = getattr(value, "item", None)
    if item is not None:
        numel = value.numel() if hasattr(value, "numel") else getattr(value, "size", 1)
        if numel != 1:
            raise InvalidMetricError(
                f"Metric {key!r} is a tensor or array with {numel} elements; only single values can be logged. "
                f"Fix: reduce it first (e.g. value.mean()) or log each element under its own key."
            )
        value = item()
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, (int, float)):
        return value
    raise InvalidMetricError(
        f"Metric {key!r} has a value of type {kind.__name__} ({value!r:.60}); metrics must be numbers or "
        "one-element tensors. Fix: log text with log_text() and nested values as separate keys."
    )


def to_numbers(metrics: Mapping[str, Any], prefix: str = "", join: str = "-") -> dict[str, float | int]:
    """Every value of ``metrics`` as a number, keys prefixed with ``prefix`` + ``join`` when a prefix is set."""
    if prefix:
        return {f"{prefix}{join}{key}": to_number(key, value) for key, value in metrics.items()}
    return {key: to_number(key, value) for key, value in metrics.items()}
