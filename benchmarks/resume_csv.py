"""Resuming a CSVLogger onto a 1,000,000-row ``metrics.csv``: what it adds to the start of the run.

A killed run left a million rows, the last 200 of them past the checkpoint it resumes from. Timed, each on its own
copy of the file: the start of a resumed logger (``load_state_dict``, the first ``log_metrics`` + ``save``, which
opens the folder, moves the 200 rows to ``metrics.superseded.csv`` and appends), and the start of a logger beside it
in a new version (the same calls without the state). The difference is what resuming adds (the goal: at most 1 s).
The anchor, measured in the same run on the same file: reading it once with the ``csv`` module.

Run:
    python benchmarks/resume_csv.py [--rows 1000000] [--past 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import tempfile
import time
import warnings


def write_metrics(path: str, rows: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "loss", "lr", "step", "val_loss"])
        for step in range(rows):
            writer.writerow([step // 1000, 1.0 / (step + 1), 0.001, step, "" if step % 1000 else 0.5])


def read_once(path: str) -> float:
    start = time.perf_counter()
    with open(path, newline="") as handle:
        count = sum(1 for _ in csv.reader(handle))
    assert count > 1
    return time.perf_counter() - start


def start_logger(save_dir: str, state: dict | None, step: int) -> float:
    from tracklight.loggers import CSVLogger

    start = time.perf_counter()
    logger = CSVLogger(save_dir, name="exp")
    if state is not None:
        logger.load_state_dict(state)
    logger.log_metrics({"loss": 0.5}, step=step)
    logger.save()
    elapsed = time.perf_counter() - start
    logger.finalize("success")
    if state is not None:
        assert logger.version == 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--past", type=int, default=200, help="rows the killed run wrote past the checkpoint")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import tracklight.loggers  # noqa: F401  (imported before any clock starts)

    root = tempfile.mkdtemp()
    original = os.path.join(root, "original.csv")
    write_metrics(original, args.rows)
    last_step = args.rows - 1 - args.past
    state = {"logger": "CSVLogger", "name": "exp", "version": 0, "last_step": last_step}
    anchors, resumed, fresh = [], [], []
    try:
        for attempt in range(args.repeat):
            save_dir = os.path.join(root, f"try{attempt}")
            target = os.path.join(save_dir, "exp", "version_0", "metrics.csv")
            os.makedirs(os.path.dirname(target))
            shutil.copyfile(original, target)
            anchors.append(read_once(target))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the one warning naming the side file
                resumed.append(start_logger(save_dir, state, last_step + 1))
            fresh.append(start_logger(save_dir, None, 0))  # version_1 beside it
            side = os.path.join(os.path.dirname(target), "metrics.superseded.csv")
            with open(side) as handle:
                assert sum(1 for _ in handle) == args.past + 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    anchor, resume, new = min(anchors), min(resumed), min(fresh)
    print(f"rows: {args.rows:,}, rows past the checkpoint: {args.past}")
    print(f"anchor: reading metrics.csv once with the csv module: {anchor:.3f} s")
    print(f"start of a resumed CSVLogger: {resume:.3f} s ({resume / anchor:.3f}x the anchor)")
    print(f"start of a new-version CSVLogger: {new:.3f} s")
    print(f"resuming adds: {resume - new:.3f} s (goal: at most 1 s)")


if __name__ == "__main__":
    main()
