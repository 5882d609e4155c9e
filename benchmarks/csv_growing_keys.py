"""CSVLogger with a metric key set that keeps growing: tracklight against Lightning's CSVLogger, same run.

The case from issue #2: 3,000 steps, a new key every 10 steps, ``save()`` after every step as the
Trainer does. Lightning rewrites the whole ``metrics.csv`` at every save that brings a new key;
tracklight rewrites at most about once a second. Both files must parse to the same rows.

A second, smaller measurement gives the per-call cost of ``log_metrics`` + ``save`` with a fixed set of
keys (the common case once training has warmed up).

Run:
    python benchmarks/csv_growing_keys.py [--steps 3000] [--new-key-every 10]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any


def step_metrics(step: int, new_key_every: int) -> dict[str, float]:
    """The metrics of one step: a loss, plus one value for every key introduced so far."""
    metrics = {"loss": 1.0 / (step + 1)}
    for key in range(step // new_key_every + 1):
        metrics[f"metric_{key:04d}"] = step * 0.5 + key
    return metrics


def growing_keys_run(logger: Any, steps: int, new_key_every: int) -> float:
    # Built before the clock starts: the timing is the logger's work, not the benchmark's.
    metrics = [step_metrics(step, new_key_every) for step in range(steps)]
    start = time.perf_counter()
    for step in range(steps):
        logger.log_metrics(metrics[step], step=step)
        logger.save()
    logger.finalize("success")
    return time.perf_counter() - start


def fixed_keys_run(logger: Any, calls: int) -> float:
    metrics = {"train/loss": 0.25, "train/acc": 0.75, "lr": 1e-3, "epoch": 0}
    logger.log_metrics(metrics, step=0)  # first call creates the files: not part of the steady state
    logger.save()
    start = time.perf_counter()
    for step in range(1, calls + 1):
        logger.log_metrics(metrics, step=step)
        logger.save()
    elapsed = time.perf_counter() - start
    logger.finalize("success")
    return elapsed


def read_table(path: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def make_loggers(root: str, name: str) -> tuple[Any, Any]:
    from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger

    from tracklight.loggers import CSVLogger

    return LightningCSVLogger(os.path.join(root, "lightning"), name=name), CSVLogger(
        os.path.join(root, "tracklight"), name=name
    )


def timed(label: str, run: Callable[[], float]) -> float:
    seconds = run()
    print(f"  {label:<12} {seconds:8.3f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--new-key-every", type=int, default=10)
    parser.add_argument("--fixed-calls", type=int, default=20000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    with tempfile.TemporaryDirectory() as root:
        theirs, ours = make_loggers(root, "growing")
        print(f"growing keys: {args.steps} steps, a new key every {args.new_key_every} steps, save() every step")
        lightning_s = timed("lightning", lambda: growing_keys_run(theirs, args.steps, args.new_key_every))
        tracklight_s = timed("tracklight", lambda: growing_keys_run(ours, args.steps, args.new_key_every))
        print(f"  ratio        {lightning_s / tracklight_s:8.1f}x faster (target >= 50x)")

        their_columns, their_rows = read_table(theirs.experiment.metrics_file_path)
        our_columns, our_rows = read_table(ours.experiment.metrics_file_path)
        if their_columns != our_columns or their_rows != our_rows:
            raise SystemExit(
                f"metrics.csv differ: {len(their_columns)}/{len(our_columns)} columns, "
                f"{len(their_rows)}/{len(our_rows)} rows"
            )
        print(f"  same table: {len(our_rows)} rows x {len(our_columns)} columns")

        theirs, ours = make_loggers(root, "fixed")
        print(f"fixed keys: {args.fixed_calls} calls of log_metrics + save, 4 keys")
        lightning_s = fixed_keys_run(theirs, args.fixed_calls)
        tracklight_s = fixed_keys_run(ours, args.fixed_calls)
        print(f"  lightning    {lightning_s / args.fixed_calls * 1e6:8.1f} us per call")
        print(f"  tracklight   {tracklight_s / args.fixed_calls * 1e6:8.1f} us per call")
        print(f"  ratio        {lightning_s / tracklight_s:8.1f}x faster")
        if read_table(theirs.experiment.metrics_file_path) != read_table(ours.experiment.metrics_file_path):
            raise SystemExit("fixed-keys metrics.csv differ")


if __name__ == "__main__":
    main()
