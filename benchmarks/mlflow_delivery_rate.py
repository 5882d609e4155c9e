"""How fast MLflow delivery moves metric points into an SQLite store: live, and replaying a spill file.

Three ways to put the same points (by default 10 keys x 10,000 steps) into a fresh ``sqlite:///`` store,
measured in one run, in turns (``--rounds`` times each, the median kept):

- ``log_batch`` (the anchor): MLflow's own ``MlflowClient.log_batch``, 1000 metrics a call, synchronous;
- ``tracklight``: ``MLFlowLogger.log_metrics`` for every step, then ``flush()``; the clock runs from the first
  call until everything is in the store (the worker batches to MLflow's limits);
- ``replay``: the spill file a logger left while its tracking server was down all run, sent into the
  store by ``python -m tracklight.delivery replay --tracking-uri`` (``tracklight.delivery.replay.replay``):
  the rate at which an outage is caught up.

Each configuration's points are read back from the store and counted. The target: ``tracklight`` within
1.25x of the anchor's time (it does the same ``log_batch`` calls, from another thread).

Run:
    python benchmarks/mlflow_delivery_rate.py [--steps 10000] [--keys 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

# Before anything imports mlflow (its telemetry client starts at import): no calls to MLflow's servers.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TARGET_RATIO = 1.25


def rows(steps: int, keys: int) -> list[dict[str, float]]:
    return [{f"train/metric_{key:02d}": step * 0.001 + key for key in range(keys)} for step in range(steps)]


def count(uri: str, experiment: str, keys: int) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return sum(len(client.get_metric_history(run.info.run_id, f"train/metric_{key:02d}")) for key in range(keys))


def anchor(uri: str, data: list[dict[str, float]]) -> float:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("anchor"))
    start = time.perf_counter()
    timestamp = int(time.time() * 1000)
    batch: list[Any] = []
    for step, row in enumerate(data):
        batch.extend(Metric(key, value, timestamp, step) for key, value in row.items())
        if len(batch) >= 1000:
            client.log_batch(run.info.run_id, metrics=batch, synchronous=True)
            batch = []
    if batch:
        client.log_batch(run.info.run_id, metrics=batch, synchronous=True)
    return time.perf_counter() - start


def live(uri: str, data: list[dict[str, float]], workdir: str) -> float:
    from tracklight.loggers.mlflow import MLFlowLogger

    logger = MLFlowLogger("tracklight", tracking_uri=uri, save_dir=workdir, delivery_timeout=600)
    assert logger.run_id is not None  # the run exists before the clock starts, as for the anchor
    start = time.perf_counter()
    for step, row in enumerate(data):
        logger.log_metrics(row, step=step)
    report = logger.flush()
    elapsed = time.perf_counter() - start
    assert report is not None and report.complete, report
    logger.finalize("success")
    return elapsed


def replayed(uri: str, data: list[dict[str, float]], workdir: str) -> float:
    """A logger whose tracking server was down all run leaves a spill file: time its replay into the store."""
    import socket

    from tracklight.delivery.replay import replay
    from tracklight.loggers.mlflow import MLFlowLogger

    with socket.socket() as sock:  # a port nobody listens on: connecting is refused, as to a stopped server
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    logger = MLFlowLogger("replay", tracking_uri=down, save_dir=workdir, delivery_timeout=1)
    for step, row in enumerate(data):
        logger.log_metrics(row, step=step)
    logger.finalize("success")
    report = logger.delivery_report
    assert report is not None and report.kept["metric"] == len(data) * len(data[0]), report
    start = time.perf_counter()
    done = replay(str(report.spill_path), timeout=600, tracking_uri=uri)
    elapsed = time.perf_counter() - start
    assert done.complete, done
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    data = rows(args.steps, args.keys)
    points = args.steps * args.keys
    times: dict[str, list[float]] = {"log_batch": [], "tracklight": [], "replay": []}
    for _ in range(args.rounds):
        for kind in times:
            with tempfile.TemporaryDirectory() as folder:
                root = Path(folder)
                uri = f"sqlite:///{root / 'mlflow.db'}"
                if kind == "log_batch":
                    from mlflow.tracking import MlflowClient

                    MlflowClient(uri).search_experiments()  # the store's tables, outside the clock
                    times[kind].append(anchor(uri, data))
                    assert count(uri, "anchor", args.keys) == points
                elif kind == "tracklight":
                    times[kind].append(live(uri, data, str(root / "local")))
                    assert count(uri, "tracklight", args.keys) == points
                else:
                    from mlflow.tracking import MlflowClient

                    MlflowClient(uri).search_experiments()
                    times[kind].append(replayed(uri, data, str(root / "local")))
                    assert count(uri, "replay", args.keys) == points
    base = statistics.median(times["log_batch"])
    print(f"{points} metric points into SQLite, median of {args.rounds} rounds (every point read back):")
    for kind, measured in times.items():
        median = statistics.median(measured)
        print(f"  {kind:<11} {median:7.2f} s  {points / median:9.0f} points/s  {median / base:5.2f}x the anchor")
    ratio = statistics.median(times["tracklight"]) / base
    print(f"tracklight / log_batch: {ratio:.2f}x (target <= {TARGET_RATIO}x)")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
