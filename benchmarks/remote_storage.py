"""Logging to ``s3://``: what the training thread pays per call, how soon values are in the store, what SIGKILL loses.

One run, against moto's S3 server started as a separate process on 127.0.0.1 (so its request handling
does not share this process's interpreter), with s3fs as the client:

1. Per-call cost of ``log_metrics`` + ``save()`` (the Trainer calls both every logging step), CSV and
   TensorBoard: tracklight on ``s3://``, tracklight on a local folder, and Lightning's logger on the same
   ``s3://`` URL. Wall time per call and the training thread's own CPU time (``time.thread_time``).
   Both runs are read back from the store afterwards and must hold every value.
2. Seconds from ``log_metrics`` until the value can be read from the store (``metrics.csv`` through
   s3fs; the event files through TensorBoard's ``EventAccumulator``), measured several times.
3. A child process logs to ``s3://`` and is killed with SIGKILL: how many of the rows it reported are
   missing from the store, how old the oldest missing one was, and how many ``push`` recovers.

Run:
    python benchmarks/remote_storage.py [--calls 2000] [--lightning-calls 200] [--probes 10]

Exits with status 1 when a run reads back incomplete.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
import warnings
from typing import Any

METRICS = {"train/loss": 0.25, "train/acc": 0.75, "lr": 1e-3, "epoch": 0.0}


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as connection:
            if connection.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto's server did not start")


_reader: Any = None


def new_s3() -> Any:
    """The benchmark's own s3fs client (not the loggers' instance), made once: making one costs ~0.3 s of CPU."""
    global _reader
    if _reader is None:
        import s3fs

        _reader = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
    return _reader


def timed_calls(logger: Any, calls: int, pace: float) -> tuple[float, float, float]:
    """Microseconds per ``log_metrics`` + ``save()``: mean wall, 99th percentile wall, mean CPU of this thread.

    Calls are paced (``pace`` seconds apart, not timed) like a training loop's, so the measurement spans
    several background upload passes and includes what they cost this thread.
    """
    logger.log_metrics(METRICS, step=0)  # the first call opens the run: not part of the steady state
    logger.save()
    walls, cpu = [], 0.0
    for step in range(1, calls + 1):
        wall, started = time.perf_counter(), time.thread_time()
        logger.log_metrics(METRICS, step=step)
        logger.save()
        cpu += time.thread_time() - started
        walls.append(time.perf_counter() - wall)
        time.sleep(pace)
    walls.sort()
    return statistics.fmean(walls) * 1e6, walls[int(len(walls) * 0.99)] * 1e6, cpu / calls * 1e6


def csv_rows(url: str) -> int:
    import pandas as pd

    try:  # one GET: a file replaced while it is read in ranges would fail with FileExpired
        data = new_s3().cat_file(url.removeprefix("s3://"))
    except FileNotFoundError:  # not uploaded yet
        return 0
    return len(pd.read_csv(io.BytesIO(data)))


def tb_points(log_dir: str, tag: str = "train/loss") -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    return [event.step for event in accumulator.Scalars(tag)] if tag in accumulator.Tags()["scalars"] else []


def tb_points_in_store(log_dir: str) -> list[int]:
    """:func:`tb_points` over a copy of the event files fetched with one GET each (cheaper to poll than
    TensorBoard's S3 reader, which makes a new boto3 client for every request)."""
    reader = new_s3()
    with tempfile.TemporaryDirectory() as copy:
        for path in reader.find(log_dir.removeprefix("s3://")):
            if "tfevents" in path:
                with open(os.path.join(copy, path.rpartition("/")[2]), "wb") as handle:
                    handle.write(reader.cat_file(path))
        return tb_points(copy)


def per_call_costs(bucket: str, local: str, calls: int, lightning_calls: int, pace: float) -> bool:
    from lightning.pytorch import loggers as lightning_loggers

    from tracklight import loggers

    ok = True
    print(
        f"\n1. log_metrics + save() per call ({len(METRICS)} keys; tracklight {calls:,} calls, Lightning "
        f"{lightning_calls:,} calls)"
    )
    print(f"   {'':40} {'wall us/call':>13} {'p99 wall us':>12} {'thread CPU us/call':>19}")
    for kind, ours, theirs in (
        ("CSV", loggers.CSVLogger, lightning_loggers.CSVLogger),
        ("TensorBoard", loggers.TensorBoardLogger, lightning_loggers.TensorBoardLogger),
    ):
        results = {}
        remote = ours(f"{bucket}/cost", name=f"{kind}-tracklight")
        results["tracklight, s3://"] = timed_calls(remote, calls, pace)
        results["tracklight, local folder"] = timed_calls(ours(local, name=kind), calls, pace)
        lightning = theirs(f"{bucket}/cost", name=f"{kind}-lightning")
        results["Lightning, same s3:// URL"] = timed_calls(lightning, lightning_calls, pace)
        for label, (wall, p99, cpu) in results.items():
            print(f"   {kind + ', ' + label:40} {wall:13,.1f} {p99:12,.1f} {cpu:19,.1f}")
        anchor_wall = results["Lightning, same s3:// URL"][0]
        local_wall = results["tracklight, local folder"][0]
        remote_wall = results["tracklight, s3://"][0]
        print(
            f"   {kind}: tracklight on s3:// is {anchor_wall / remote_wall:,.0f}x cheaper per call than Lightning's "
            f"logger there, and {remote_wall / local_wall:.2f}x its own cost on a local folder"
        )
        finalize = time.perf_counter()
        remote.finalize("success")
        lightning.finalize("success")
        finalize = time.perf_counter() - finalize
        if kind == "CSV":
            complete = (
                csv_rows(f"{remote.log_dir}/metrics.csv") == calls + 1
                and csv_rows(f"{lightning.log_dir}/metrics.csv") == lightning_calls + 1
            )
        else:
            complete = tb_points(remote.log_dir) == list(range(calls + 1)) and tb_points(lightning.log_dir) == list(
                range(lightning_calls + 1)
            )
        print(
            f"   {kind}: finalize of both took {finalize:.2f} s; read back from the store: "
            f"{'every value' if complete else 'INCOMPLETE'}"
        )
        ok &= complete
    return ok


def until_readable(bucket: str, probes: int) -> None:
    from tracklight import loggers

    print(f"\n2. Seconds from log_metrics until the value is readable in the store ({probes} probes each)")
    for kind, make, readable in (
        (
            "CSV (metrics.csv via s3fs)",
            loggers.CSVLogger,
            lambda logger, step: csv_rows(f"{logger.log_dir}/metrics.csv") > step,
        ),
        (
            "TensorBoard (EventAccumulator)",
            loggers.TensorBoardLogger,
            lambda logger, step: step in tb_points_in_store(logger.log_dir),
        ),
    ):
        logger = make(f"{bucket}/latency", name=kind.split()[0])
        _ = logger.log_dir  # the run is opened (version claimed) before the clock runs
        delays = []
        for step in range(probes):
            time.sleep(0.37 * (step % 4))  # probe at different moments of the upload cycle
            logged = time.perf_counter()
            logger.log_metrics(METRICS, step=step)
            logger.save()
            while not readable(logger, step):
                time.sleep(0.02)
            delays.append(time.perf_counter() - logged)
        logger.finalize("success")
        print(f"   {kind:32} median {statistics.median(delays):.2f} s, max {max(delays):.2f} s")


SIGKILLED = """
    import sys, time
    from tracklight.loggers import CSVLogger
    logger = CSVLogger(sys.argv[1], name="", version="killed")
    index = 0
    while True:
        now = time.time()
        logger.log_metrics({"t": now, "i": index}, step=index)
        logger.save()
        print(index, repr(now), flush=True)
        index += 1
        time.sleep(0.005)
"""


def sigkill_loss(bucket: str, staging: str, seconds: float) -> None:
    print(f"\n3. SIGKILL of a process logging CSV rows to s3:// (save() after each row), killed after {seconds:.0f} s")
    env = dict(os.environ, TRACKLIGHT_STAGING_DIR=staging)
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SIGKILLED), f"{bucket}/kill"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    logged: dict[int, float] = {}
    first = child.stdout.readline()
    index, stamp = first.split()
    logged[int(index)] = float(stamp)
    until = time.time() + seconds
    while time.time() < until:
        index, stamp = child.stdout.readline().split()
        logged[int(index)] = float(stamp)
    killed_at = time.time()
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate()
    for line in rest.splitlines():
        index, stamp = line.split()
        logged[int(index)] = float(stamp)

    import pandas as pd

    def indices() -> set[int]:
        data = new_s3().cat_file(f"{bucket.removeprefix('s3://')}/kill/killed/metrics.csv")
        return set(pd.read_csv(io.BytesIO(data))["i"].astype(int))

    stored = indices()
    lost = sorted(set(logged) - stored)
    oldest = killed_at - logged[lost[0]] if lost else 0.0
    (folder,) = os.listdir(staging)
    subprocess.run(
        [sys.executable, "-m", "tracklight.remote", "push", os.path.join(staging, folder)],
        check=True,
        capture_output=True,
    )
    recovered = len(set(lost) & indices())
    print(
        f"   {len(logged):,} rows reported ({len(logged) / seconds:.0f}/s); {len(lost)} not in the store at the kill "
        f"(the last {oldest:.2f} s); `python -m tracklight.remote push` recovered {recovered} of them "
        "from the staging folder"
        + (f" ({len(lost) - recovered} were still in the process's memory)" if recovered < len(lost) else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2_000, help="tracklight calls per case (default 2000)")
    parser.add_argument("--lightning-calls", type=int, default=200, help="Lightning calls per case (default 200)")
    parser.add_argument("--pace", type=float, default=0.0025, help="seconds between two timed calls (default 0.0025)")
    parser.add_argument("--probes", type=int, default=10, help="latency probes per format (default 10)")
    parser.add_argument("--kill-after", type=float, default=6.0, help="seconds before the SIGKILL (default 6)")
    args = parser.parse_args()

    server, endpoint = start_moto()
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    try:
        import lightning
        import s3fs

        print(
            f"Python {sys.version.split()[0]}, lightning {lightning.__version__}, s3fs {s3fs.__version__}, "
            f"{os.cpu_count()} CPUs; moto S3 server at {endpoint} (a separate process)"
        )
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        new_s3().mkdir(bucket)
        with tempfile.TemporaryDirectory(prefix="remote-bench-") as local, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.environ["TRACKLIGHT_STAGING_DIR"] = os.path.join(local, "staging")
            ok = per_call_costs(
                f"s3://{bucket}", os.path.join(local, "logs"), args.calls, args.lightning_calls, args.pace
            )
            until_readable(f"s3://{bucket}", args.probes)
            sigkill_loss(f"s3://{bucket}", os.path.join(local, "killed-staging"), args.kill_after)
    finally:
        server.terminate()
        server.wait()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
