"""Reduce logged values across ranks with ``torch.distributed``: one packed collective per call.

A call first exchanges a fixed-size header (how many values, and a hash of their keys and reductions)
so ranks that logged different keys get a :class:`SyncMismatchError` naming them, instead of pairing the
wrong values or waiting forever. Then every value travels in one float64 tensor through one
``all_gather``; each column is reduced the way its reduction says (sum, max, min or mean over ranks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from tracklight.reducer._errors import SyncMismatchError

__all__ = ["Slot", "distributed_world", "reduce_across_ranks"]


class Slot(NamedTuple):
    """One number to reduce across ranks: ``key`` and ``reduction`` name it in errors, ``op`` is how the
    column combines (sum/max/min/mean). A mean sends two slots (its weighted sum and its count), both summed."""

    key: str
    op: str
    value: Tensor | float
    reduction: str = ""

    @property
    def label(self) -> str:
        return f"{self.key} ({self.reduction or self.op})"


def distributed_world(group: Any = None) -> int:
    """The number of ranks in ``group`` when ``torch.distributed`` is initialised, else 1."""
    dist = torch.distributed
    if not dist.is_available() or not dist.is_initialized():
        return 1
    return int(dist.get_world_size(group))


def _device(group: Any) -> torch.device:
    backend = torch.distributed.get_backend(group)
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def reduce_across_ranks(point: str, slots: Sequence[Slot], group: Any = None) -> list[float]:
    """Every slot's value reduced over the ranks of ``group``, as Python floats in the order of ``slots``.

    Must be called by every rank of the group at the same point of the program (``point`` describes it in
    errors). Slots are matched across ranks by key, not by position, so the order they were logged in does
    not matter.

    Raises:
        SyncMismatchError: on every rank, when the ranks' keys or reductions differ.
    """
    dist = torch.distributed
    world = distributed_world(group)
    order = sorted(range(len(slots)), key=lambda i: slots[i].key)
    signature = [slots[i].label for i in order]
    device = _device(group)

    header = torch.tensor([len(slots), _digest(point + "\n" + "\n".join(signature))], dtype=torch.int64)
    header = header.to(device, non_blocking=True)
    headers = [torch.empty_like(header) for _ in range(world)]
    dist.all_gather(headers, header, group=group)
    seen = torch.stack(headers).tolist()
    if any(row != seen[0] for row in seen):
        _raise_mismatch(point, signature, group, world)
    if not slots:
        return []

    numbers = [0.0 if isinstance(slots[i].value, Tensor) else float(slots[i].value) for i in order]
    pack = torch.tensor(numbers, dtype=torch.float64).to(device, non_blocking=True)
    positions = [n for n, i in enumerate(order) if isinstance(slots[i].value, Tensor)]
    if positions:
        values = [slots[order[n]].value.to(device=device, dtype=torch.float64) for n in positions]  # type: ignore[union-attr]
        pack.index_copy_(0, torch.tensor(positions, device=device), torch.stack(values))
    packs = [torch.empty_like(pack) for _ in range(world)]
    dist.all_gather(packs, pack, group=group)
    gathered = torch.stack(packs)

    reduced = torch.empty_like(pack)
    by_op: dict[str, list[int]] = {}
    for n, i in enumerate(order):
        by_op.setdefault(slots[i].op, []).append(n)
    for op, columns in by_op.items():
        index = torch.tensor(columns, device=device)
        part = gathered.index_select(1, index)
        if op == "sum":
            part = part.sum(0)
        elif op == "mean":
            part = part.mean(0)
        elif op == "max":
            part = part.amax(0)
        else:
            part = part.amin(0)
        reduced.index_copy_(0, index, part)
    host = reduced.tolist()
    out = [0.0] * len(slots)
    for n, i in enumerate(order):
        out[i] = host[n]
    return out


def _raise_mismatch(point: str, signature: list[str], group: Any, world: int) -> None:
    everyone: list[Any] = [None] * world
    torch.distributed.all_gather_object(everyone, (point, signature), group=group)
    union = sorted(set().union(*(set(keys) for _, keys in everyone)))
    problems = []
    for rank, (their_point, keys) in enumerate(everyone):
        missing = [key for key in union if key not in keys]
        if missing:
            problems.append(f"rank {rank} did not log {', '.join(missing)}")
        if their_point != point:
            problems.append(f"rank {rank} was at {their_point}")
    raise SyncMismatchError(
        f"The ranks logged different sync_dist values at {point}, so they cannot be reduced together: "
        f"{'; '.join(problems)}. Fix: log the same keys with the same reduce_fx and sync_dist=True on every rank "
        "(log a neutral value where a rank has no data), or log rank-specific values with sync_dist=False or "
        "rank_zero_only=True."
    )
