"""Workers for the 2-process ``torch.distributed`` (gloo) tests of the reducer.

Each worker joins a process group through a file rendezvous, runs every scenario on its own shard of
the data and writes what its reducer produced to ``<out>/rank<N>.json``. The test process compares
those files with a single-process run over all the data.
"""

from __future__ import annotations

import json
import os
import traceback
from typing import Any

#: Per-sample values; the two ranks get uneven shards (different batch sizes, and rank 1 fewer batches).
SAMPLES = [0.5 + 0.37 * i - 0.011 * i * i for i in range(23)]
#: Batches of each rank, as slices of SAMPLES.
SHARDS = {
    0: [(0, 5), (5, 10), (10, 12)],
    1: [(12, 15), (15, 16), (16, 23)],
}
#: Rank 1 ends its epoch after fewer batches: only epoch values may be synced then.
SHORT_SHARDS = {0: [(0, 5), (5, 10), (10, 12)], 1: [(12, 19)]}
REDUCTIONS = ("mean", "sum", "max", "min")


class ListLogger:
    """A logger that keeps ``(step, metrics)`` in a list (duck-typed, as MetricReducer accepts any)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int | None, dict[str, float]]] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append((step, dict(metrics)))

    def save(self) -> None:
        pass


def run_epoch(shards: list[tuple[int, int]], sync: bool, on_step: bool, log_every_n_steps: int = 1) -> Any:
    """One training epoch of MetricReducer over ``shards``: every reduction of the batch mean (a float64
    tensor), weighted by the batch size, plus the same values logged as Python floats."""
    import torch

    from tracklight.reducer import MetricReducer

    logger = ListLogger()
    reducer = MetricReducer(logger, log_every_n_steps=log_every_n_steps)
    reducer.start_epoch("train")
    for start, stop in shards:
        batch = torch.tensor(SAMPLES[start:stop], dtype=torch.float64)
        for reduction in REDUCTIONS:
            reducer.log(
                f"t_{reduction}",
                batch.mean(),
                on_step=on_step,
                on_epoch=True,
                reduce_fx=reduction,
                sync_dist=sync,
                batch_size=len(batch),
            )
            reducer.log(
                f"p_{reduction}",
                float(batch.sum()) / len(batch),
                on_step=False,
                on_epoch=True,
                reduce_fx=reduction,
                sync_dist=sync,
                batch_size=len(batch),
            )
        reducer.step()
    epoch = reducer.end_epoch()
    return {"epoch": epoch, "calls": logger.calls}


def _scenarios(rank: int) -> dict[str, Any]:
    import torch

    from tracklight.reducer import MetricReducer, SyncMismatchError

    out: dict[str, Any] = {}
    out["synced"] = run_epoch(SHARDS[rank], sync=True, on_step=True)
    out["local"] = run_epoch(SHARDS[rank], sync=False, on_step=True)
    out["short"] = run_epoch(SHORT_SHARDS[rank], sync=True, on_step=False)

    # keys that differ across ranks: an error naming them, on every rank, instead of a hang
    reducer = MetricReducer()
    reducer.start_epoch("validate")
    reducer.log("acc", torch.tensor(1.0), sync_dist=True)
    if rank == 0:
        reducer.log("only_on_rank0", torch.tensor(1.0), sync_dist=True)
    reducer.step()
    try:
        reducer.end_epoch()
        out["mismatch"] = None
    except SyncMismatchError as err:
        out["mismatch"] = str(err)

    # the same key with different reductions on the two ranks
    reducer = MetricReducer()
    reducer.start_epoch("validate")
    reducer.log("loss", torch.tensor(1.0), sync_dist=True, reduce_fx="max" if rank else "mean")
    reducer.step()
    try:
        reducer.end_epoch()
        out["reduction_mismatch"] = None
    except SyncMismatchError as err:
        out["reduction_mismatch"] = str(err)

    # the process group still works after those errors: a clean epoch
    out["after"] = run_epoch(SHARDS[rank], sync=True, on_step=False)
    return out


def worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """Entry point of each spawned process."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        try:
            result: Any = _scenarios(rank)
        except Exception:
            result = {"error": traceback.format_exc()}
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump(result, fh)
    finally:
        dist.destroy_process_group()
