"""The batch size of a batch, found the way Lightning finds it: the first dimension of the first tensor."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from torch import Tensor

from tracklight._errors import TracklightWarning
from tracklight.reducer._errors import LoggingMisuseError

__all__ = ["infer_batch_size"]


def _sizes(batch: Any) -> Iterator[int]:
    if isinstance(batch, Tensor):
        yield 1 if batch.ndim == 0 else batch.size(0)
    elif isinstance(batch, Mapping):
        for value in batch.values():
            yield from _sizes(value)
    elif dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        for field in dataclasses.fields(batch):
            yield from _sizes(getattr(batch, field.name))
    elif isinstance(batch, Iterable) and not isinstance(batch, str | bytes):
        for item in batch:
            yield from _sizes(item)


def infer_batch_size(batch: Any) -> int:
    """The first dimension of the first tensor in ``batch`` (a tensor, or dicts/lists/tuples/dataclasses of them).

    Raises:
        LoggingMisuseError: when ``batch`` holds no tensor; the message says to pass ``batch_size``.
    """
    found: int | None = None
    for size in _sizes(batch):
        if found is None:
            found = size
        elif size != found:
            warnings.warn(
                "Trying to infer the `batch_size` from an ambiguous collection. The batch size we found is "
                f"{found}: the batch holds tensors of different lengths, and the first is taken. Fix: pass "
                "log(..., batch_size=...) to weigh the epoch mean by the right size.",
                TracklightWarning,
                stacklevel=4,
            )
            break
    if found is None:
        raise LoggingMisuseError(
            f"We could not infer the batch_size from the batch: a batch of type {type(batch).__name__} holds no "
            "tensor. Fix: pass the number of samples with log(..., batch_size=n)."
        )
    return found
