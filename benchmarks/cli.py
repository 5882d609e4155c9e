"""How fast the ``tracklight`` command answers on big runs: ``show`` and ``plot`` of a run with 1,000,000 points
per metric (the issue asks for under 2 s), ``ls`` over 1,000 runs (under 3 s).

Each command runs as a user runs it, in a fresh ``python -m tracklight`` process (interpreter start and imports
included): once with an empty cache ("first"), then best of ``--repeat`` ("again", the run's points cached).
The anchor, measured in the same run, is a fresh process doing only ``pandas.read_csv`` of the same
``metrics.csv``: the least any tool that reads the run must pay.

How it is fast:

* CSV: pandas' C parser reads ``metrics.csv`` once; summaries are numpy reductions over whole columns.
* TensorBoard: records are framed in bulk (runs of repeating record lengths found with numpy) and decoded
  by templates (the columns of the wall time, the step and each float learnt from one record, then every
  record of that shape decoded at once): no per-event protobuf parsing.
* Plots: lines longer than the plot can show are thinned to the minimum and maximum of each stretch (4,000
  points per line in a file, 400 in the terminal), so drawing costs the same for a million points as for a
  thousand; matplotlib is used without pyplot.
* ``ls``: a CSV run costs its header line, its last lines (for the last step) and ``hparams.yaml``;
  pandas and matplotlib are not imported at all; tables are plain aligned text (a rich table of a thousand
  rows took seconds).
* Runs of 200,000 points or more keep their points in a cache folder (numpy arrays, named after the files'
  paths, sizes and modification times): a second look loads them without parsing or importing pandas.

Run:
    python benchmarks/cli.py [--points 1000000] [--runs 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def write_csv_run(folder: str, points: int) -> None:
    import pandas as pd

    os.makedirs(folder, exist_ok=True)
    steps = np.arange(points)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"step": steps, "train/loss": np.exp(-steps / points) + rng.normal(0, 0.01, points)})
    frame["val/acc"] = 1 - frame["train/loss"] / 2
    frame.to_csv(os.path.join(folder, "metrics.csv"), index=False)
    with open(os.path.join(folder, "hparams.yaml"), "w") as handle:
        handle.write("lr: 0.001\nbatch_size: 64\n")


def write_tensorboard_run(folder: str, points: int) -> None:
    """As tracklight's TensorBoardLogger writes: both metrics in one event per step."""
    from tracklight.formats import tfevents

    os.makedirs(folder, exist_ok=True)
    layout = tfevents.SummaryLayout(["train/loss", "val/acc"])
    with open(os.path.join(folder, "events.out.tfevents.1.bench.tracklight"), "wb") as handle:
        handle.write(tfevents.frame(tfevents.encode_file_version(1.0)))
        for start in range(0, points, 100_000):
            handle.write(
                b"".join(
                    tfevents.frame(tfevents.encode_event(step, 1e9 + step, layout.pack([1.0 / (step + 1), 0.5])))
                    for step in range(start, min(points, start + 100_000))
                )
            )


def write_many_runs(root: str, count: int) -> None:
    for number in range(count):
        folder = os.path.join(root, f"experiment_{number % 10}", f"version_{number}")
        os.makedirs(folder)
        with open(os.path.join(folder, "metrics.csv"), "w") as handle:
            handle.write("epoch,step,train/loss,val/acc\n")
            handle.writelines(f"{step // 50},{step},{1 / (step + 1)},\n" for step in range(200))
        with open(os.path.join(folder, "hparams.yaml"), "w") as handle:
            handle.write(f"lr: {0.001 * (number + 1)}\nbatch_size: 64\nlayers: [64, 32]\n")


def best_of(repeat: int, command: list[str], cache: str | None = None) -> float:
    times = []
    environment = dict(os.environ, TRACKLIGHT_CACHE_DIR=cache) if cache else None
    if cache and repeat == 1:  # "first": nothing cached yet
        shutil.rmtree(cache, ignore_errors=True)
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    python = sys.executable
    tracklight = [python, "-m", "tracklight"]
    with tempfile.TemporaryDirectory() as root:
        csv_run = os.path.join(root, "big_csv")
        board_run = os.path.join(root, "big_tb")
        many = os.path.join(root, "many")
        print(f"writing a CSV run and a TensorBoard run of {args.points:,} points per metric (2 metrics), ", end="")
        print(f"and {args.runs:,} small CSV runs ...", flush=True)
        write_csv_run(csv_run, args.points)
        write_tensorboard_run(board_run, args.points)
        write_many_runs(many, args.runs)

        anchor = best_of(args.repeat, [python, "-c", f"import pandas; pandas.read_csv({csv_run + '/metrics.csv'!r})"])
        rows = [
            ("show (CSV)", [*tracklight, "show", csv_run], 2.0),
            ("plot -o png (CSV)", [*tracklight, "plot", csv_run, "-o", os.path.join(root, "csv.png")], 2.0),
            ("plot, terminal (CSV)", [*tracklight, "plot", csv_run], 2.0),
            ("show (TensorBoard)", [*tracklight, "show", board_run], 2.0),
            ("plot -o png (TensorBoard)", [*tracklight, "plot", board_run, "-o", os.path.join(root, "tb.png")], 2.0),
            (f"ls ({args.runs:,} CSV runs)", [*tracklight, "ls", many], 3.0),
        ]
        print(f"\nanchor: a fresh python reading the CSV with pandas.read_csv: {anchor:.2f} s\n")
        cache = os.path.join(root, "cache")
        # Every cell carries its unit: "first" is held to the budget, "first / anchor" is a ratio.
        print(f"{'command':<28} {'first':>8} {'again':>8} {'first/anchor':>13} {'budget for first':>17}")
        for label, command, budget in rows:
            first = best_of(1, command, cache)
            again = best_of(args.repeat, command, cache)
            cells = f"{first:>6.2f} s {again:>6.2f} s {first / anchor:>12.2f}x {budget:>15.1f} s"
            print(f"{label:<28} {cells}")


if __name__ == "__main__":
    main()
