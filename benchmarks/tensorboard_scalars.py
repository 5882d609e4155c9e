"""Scalars through ``TensorBoardLogger.log_metrics``: tracklight against Lightning's logger, same run.

Both loggers get the same metric dicts (by default 20,000 calls x 10 keys, Python floats as Lightning's
Trainer hands them over) and are finalized, so every scalar is on disk when the clock stops. Then
TensorBoard's ``EventAccumulator`` reads both runs back and the tags, steps and float32 values must be
identical. A second, shorter measurement follows the Trainer's pattern (``save()`` after every call).

Run:
    python benchmarks/tensorboard_scalars.py [--calls 20000] [--keys 10] [--values float|tensor]

Exits with status 1 when the two runs read back differently.
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import sys
import tempfile
import time
import warnings
from typing import Any

TARGET_RATIO = 10.0


def make_metrics(calls: int, keys: int, kind: str) -> list[dict[str, Any]]:
    names = [f"train/metric_{index:02d}" for index in range(keys)]
    rows = [{name: math.sin(step * 0.001 + index) for index, name in enumerate(names)} for step in range(calls)]
    if kind == "tensor":
        import torch

        rows = [{name: torch.tensor(value) for name, value in row.items()} for row in rows]
    return rows


def timed_run(logger: Any, rows: list[dict[str, Any]], save_every_call: bool) -> float:
    start = time.perf_counter()
    for step, metrics in enumerate(rows):
        logger.log_metrics(metrics, step=step)
        if save_every_call:
            logger.save()
    logger.finalize("success")
    return time.perf_counter() - start


def read_back(log_dir: str) -> dict[str, list[tuple[int, bytes]]]:
    """Every scalar series as (step, float32 bits), read by TensorBoard with nothing sampled away."""
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(
        log_dir, size_guidance=event_accumulator.STORE_EVERYTHING_SIZE_GUIDANCE
    )
    accumulator.Reload()
    return {
        tag: [(event.step, struct.pack("<f", event.value)) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def measure(label: str, rows: list[dict[str, Any]], root: str, save_every_call: bool) -> bool:
    from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger

    from tracklight.loggers import TensorBoardLogger

    scalars = sum(len(row) for row in rows)
    theirs = LightningTensorBoardLogger(root, name=f"{label}-lightning")
    ours = TensorBoardLogger(root, name=f"{label}-tracklight")
    their_seconds = timed_run(theirs, rows, save_every_call)
    our_seconds = timed_run(ours, rows, save_every_call)
    ratio = their_seconds / our_seconds

    print(f"\n{label}: {len(rows):,} log_metrics calls x {len(rows[0])} keys = {scalars:,} scalars")
    print(f"  lightning  {their_seconds:8.3f} s  {scalars / their_seconds:>12,.0f} scalars/s")
    print(f"  tracklight {our_seconds:8.3f} s  {scalars / our_seconds:>12,.0f} scalars/s")
    print(
        f"  ratio      {ratio:8.1f}x  (target >= {TARGET_RATIO:.0f}x: {'met' if ratio >= TARGET_RATIO else 'NOT met'})"
    )

    start = time.perf_counter()
    their_series, our_series = read_back(theirs.log_dir), read_back(ours.log_dir)
    identical = their_series == our_series and sum(len(points) for points in our_series.values()) == scalars
    print(
        f"  read back with EventAccumulator in {time.perf_counter() - start:.1f} s: "
        f"{len(our_series)} tags, {sum(len(points) for points in our_series.values()):,} points, "
        f"{'identical tags/steps/values' if identical else 'DIFFERENT'}"
    )
    return identical


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000, help="log_metrics calls (default 20000)")
    parser.add_argument("--keys", type=int, default=10, help="metrics per call (default 10)")
    parser.add_argument(
        "--values",
        choices=("float", "tensor"),
        default="float",
        help="Python floats (as the Trainer passes) or tensors",
    )
    parser.add_argument(
        "--save-calls", type=int, default=5_000, help="calls in the log_metrics + save() measurement (0 to skip)"
    )
    args = parser.parse_args()

    import lightning
    import tensorboard
    import torch

    print(
        f"Python {sys.version.split()[0]}, lightning {lightning.__version__}, torch {torch.__version__}, "
        f"tensorboard {tensorboard.__version__}, {os.cpu_count()} CPUs"
    )
    ok = True
    with tempfile.TemporaryDirectory(prefix="tb-bench-") as root, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = make_metrics(args.calls, args.keys, args.values)
        ok &= measure("log_metrics", rows, root, save_every_call=False)
        if args.save_calls:
            ok &= measure("log_metrics+save", rows[: args.save_calls], root, save_every_call=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
