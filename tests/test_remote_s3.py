"""Runs on a real S3 API (moto's server on 127.0.0.1, s3fs as the client) and what its faults cost.

A Lightning Trainer writes CSV and TensorBoard runs to ``s3://`` (and ``memory://``) that read back
complete; a bucket that does not exist or refuses writes fails at once with the URL; a store that goes
away mid-run costs no value; a SIGKILL loses at most the upload window, and what it kept locally goes up
with ``python -m tracklight.remote push``; SIGTERM and a plain exit upload everything; processes that
start together in one remote folder get distinct versions.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest

# The child processes and what they report are those of the local durability tests, pointed at a URL.
from test_durability import LOGGING_LOOP, read_logged, start_child
from tracklight import TracklightError
from tracklight.loggers import CSVLogger, TensorBoardLogger

#: Rows logged longer ago than this before a SIGKILL must be in the store (local flush + upload pass + slack
#: for two shared CPU cores; the benchmark measures the real figure).
REMOTE_LOSS_S = 5.0
#: The local disk's promise (test_durability): rows older than this at a SIGKILL are in the staging folder.
LOCAL_LOSS_S = 1.5


@pytest.fixture(autouse=True)
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRACKLIGHT_STAGING_DIR", str(tmp_path / "staging"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "staging"


def read_csv(url: str) -> pd.DataFrame:
    fsspec.filesystem("s3").invalidate_cache()
    return pd.read_csv(url)


def scalars(url: str, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(url, size_guidance={"scalars": 0})
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def no_url_folders(root: Path) -> bool:
    return not [path for path in root.rglob("*") if ":" in path.name]


@pytest.mark.parametrize("store", ["s3", "memory"])
def test_trainer_runs_on_object_storage_read_back_complete(
    store: str, request: pytest.FixtureRequest, tiny_model: type, make_trainer: Any, tmp_path: Path
) -> None:
    root = f"{request.getfixturevalue('bucket')}/logs" if store == "s3" else f"memory://t-{uuid.uuid4().hex[:8]}/logs"
    csv_logger, tb_logger = CSVLogger(root), TensorBoardLogger(root)
    trainer = make_trainer(logger=[csv_logger, tb_logger], max_epochs=2)
    trainer.fit(tiny_model(lr=0.05))

    assert trainer.log_dir == csv_logger.log_dir == f"{root}/lightning_logs/version_0"
    assert tb_logger.log_dir == f"{root}/lightning_logs/version_1"
    frame = (
        read_csv(f"{csv_logger.log_dir}/metrics.csv")
        if store == "s3"
        else pd.read_csv(f"{csv_logger.log_dir}/metrics.csv")
    )
    train = frame.dropna(subset=["train_loss"])
    assert train["step"].tolist() == list(range(8))  # 2 epochs of 4 steps, every step logged
    assert frame["val_loss"].notna().sum() == 2
    with fsspec.open(f"{csv_logger.log_dir}/hparams.yaml", "r") as handle:
        assert "lr: 0.05" in handle.read()

    losses = scalars(tb_logger.log_dir, "train_loss")
    assert [step for step, _ in losses] == list(range(8))
    assert [value for _, value in losses] == pytest.approx(train["train_loss"].tolist(), rel=1e-6)
    assert [step for step, _ in scalars(tb_logger.log_dir, "val_loss")] == [3, 7]
    # Lightning writes its checkpoints beside the run, through fsspec itself; the logger leaves them alone.
    assert fsspec.core.url_to_fs(csv_logger.log_dir)[0].find(f"{csv_logger.log_dir}/checkpoints")
    assert no_url_folders(tmp_path)


def test_a_bucket_that_does_not_exist_fails_at_once_with_the_url(s3: Any, tmp_path: Path) -> None:
    url = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/logs"
    with pytest.raises(TracklightError, match=f"{url}.*does not exist.*create it"):
        _ = CSVLogger(url).log_dir
    with pytest.raises(TracklightError, match=f"{url}/lightning_logs/named.*does not exist"):
        _ = TensorBoardLogger(url, version="named").version
    assert no_url_folders(tmp_path)


def test_a_store_that_refuses_writes_fails_at_once_with_the_url(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:  # the fault: S3 answering 403 AccessDenied, as s3fs raises it
        raise PermissionError("Access Denied")

    monkeypatch.setattr(fsspec.filesystem("s3"), "pipe_file", refuse)  # the instance the logger gets
    with pytest.raises(TracklightError, match=f"{bucket}/logs.*Access Denied.*refuses writes"):
        CSVLogger(f"{bucket}/logs").log_metrics({"loss": 1.0}, step=0)


def test_a_store_down_mid_run_costs_no_value(s3: Any, bucket: str) -> None:
    logger = CSVLogger(f"{bucket}/logs")
    for step in range(50):
        logger.log_metrics({"loss": float(step)}, step=step)
    mirror = logger._remote_run.mirror  # type: ignore[union-attr]
    assert mirror.sync(timeout=30) == []
    with s3.down(), pytest.warns(UserWarning, match=f"Could not upload to {bucket}.*kept in"):
        for step in range(50, 100):
            logger.log_metrics({"loss": float(step)}, step=step)
        deadline = time.monotonic() + 60
        while mirror.last_error is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mirror.last_error is not None  # an upload failed while the store was down
    logger.finalize("success")  # the store is back: everything goes up
    assert read_csv(f"{logger.log_dir}/metrics.csv")["loss"].tolist() == [float(step) for step in range(100)]


def test_a_run_started_after_the_endpoint_changed_goes_to_the_new_endpoint(
    s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One process, two S3 endpoints in turn (a test suite with a moto server per test does this; so does switching
    # from a local store to another). The first logger is still alive when the second claims the same version.
    import s3fs

    from _s3_server import S3Server

    first = CSVLogger(f"{bucket}/logs")
    first.log_metrics({"loss": 1.0}, step=0)
    first.finalize("success")
    other = S3Server()  # moto keeps buckets per process: the same bucket, reached at another address
    try:
        with s3.down():
            monkeypatch.setenv("AWS_ENDPOINT_URL", other.endpoint)
            s3fs.S3FileSystem.clear_instance_cache()  # fsspec's own cache, as for any fsspec use after the change
            other.filesystem().rm(f"{bucket}/logs", recursive=True)
            second = CSVLogger(f"{bucket}/logs")
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # an upload to the first endpoint (down now) would warn
                second.log_metrics({"loss": 2.0}, step=0)
                second.finalize("success")
            assert second.log_dir == first.log_dir
            assert other.filesystem().cat_file(f"{second.log_dir}/metrics.csv") == b"loss,step\r\n2.0,0\r\n"
    finally:
        other.stop()
        s3fs.S3FileSystem.clear_instance_cache()


def test_finalize_says_what_is_left_and_push_uploads_it(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tracklight.remote._run.FINALIZE_TIMEOUT", 1.0)
    logger = CSVLogger(f"{bucket}/logs")
    _ = logger.version
    run = logger._remote_run
    assert run is not None
    with s3.down():
        for step in range(20):
            logger.log_metrics({"loss": float(step)}, step=step)
        with pytest.warns(UserWarning) as warned:
            logger.finalize("success")
        message = " ".join(str(warning.message) for warning in warned)
        assert f"of {logger.log_dir} could not be uploaded yet" in message
        assert f"kept in {run.staging_dir}" in message
        assert f"python -m tracklight.remote push {run.staging_dir}" in message
        assert "metrics.csv" in message
    result = subprocess.run(
        [sys.executable, "-m", "tracklight.remote", "push", run.staging_dir],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert read_csv(f"{logger.log_dir}/metrics.csv")["loss"].tolist() == [float(step) for step in range(20)]


def test_sigkill_loses_at_most_the_upload_window_and_push_sends_the_rest(bucket: str, staging: Path) -> None:
    url = f"{bucket}/logs"
    child = start_child(LOGGING_LOOP, url, "no-save", "0.005")
    try:
        assert child.stdout is not None
        first = child.stdout.readline()  # the child is up and logging: its run is open in the store
        assert first, child.stderr.read() if child.stderr else ""
        logged = {int(first.split()[0]): float(first.split()[1])}
        logged.update(read_logged(child, until=time.time() + 8.0))
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL

    in_store = read_csv(f"{url}/run/metrics.csv")
    stored = dict(zip(in_store["i"].astype(int), in_store["t"], strict=True))
    must_have = {index: stamp for index, stamp in logged.items() if stamp < killed_at - REMOTE_LOSS_S}
    assert len(must_have) > 50
    missing = sorted(set(must_have) - set(stored))
    assert not missing, f"{len(missing)} rows logged over {REMOTE_LOSS_S} s before SIGKILL are not in the store"
    assert all(stored[index] == stamp for index, stamp in must_have.items())

    # What reached the local disk but not the store is in the staging folder; push sends it.
    (folder,) = staging.iterdir()
    result = subprocess.run(
        [sys.executable, "-m", "tracklight.remote", "push", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    pushed = set(read_csv(f"{url}/run/metrics.csv")["i"].astype(int))
    assert set(stored) <= pushed
    assert {index for index, stamp in logged.items() if stamp < killed_at - LOCAL_LOSS_S} <= pushed


def test_sigterm_and_a_plain_exit_upload_every_value(bucket: str, staging: Path) -> None:
    child = start_child(LOGGING_LOOP, f"{bucket}/sigterm", "no-save", "0.005")
    try:
        logged = read_logged(child, until=time.time() + 2.0)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGTERM, err
    indices = set(read_csv(f"{bucket}/sigterm/run/metrics.csv")["i"].astype(int))
    assert set(logged) <= indices

    exiting = start_child(
        """
        import sys
        from tracklight.loggers import CSVLogger, TensorBoardLogger
        for cls in (CSVLogger, TensorBoardLogger):
            logger = cls(sys.argv[1])
            for step in range(500):
                logger.log_metrics({"loss": float(step)}, step=step)
        """,  # no finalize: the exit uploads
        f"{bucket}/exit",
    )
    _, err = exiting.communicate(timeout=120)
    assert exiting.returncode == 0, err
    assert read_csv(f"{bucket}/exit/lightning_logs/version_0/metrics.csv")["loss"].tolist() == list(range(500))
    assert [step for step, _ in scalars(f"{bucket}/exit/lightning_logs/version_1", "loss")] == list(range(500))
    leftovers = [path.name for path in staging.iterdir() if "exit" in path.name]
    assert leftovers == []  # fully uploaded staging folders are removed at exit


RACER = """
    import os, sys, time
    from tracklight.loggers import CSVLogger
    logger = CSVLogger(sys.argv[1])
    open(sys.argv[2] + f".ready.{os.getpid()}", "w").close()
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.001)
    print(logger.version, flush=True)
    logger.log_metrics({"pid": os.getpid()}, step=0)
    logger.finalize("success")
"""


def test_processes_starting_together_in_one_remote_folder_get_distinct_versions(bucket: str, tmp_path: Path) -> None:
    start, processes = tmp_path / "start", 4
    racers = [start_child(RACER, f"{bucket}/logs", str(start)) for _ in range(processes)]
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("start.ready.*"))) < processes and time.monotonic() < deadline:
            assert all(racer.poll() is None for racer in racers), "a process died before the start"
            time.sleep(0.01)
        start.touch()
        outputs = [racer.communicate(timeout=120) for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
    versions = sorted(int(out.strip()) for out, _ in outputs)
    assert versions == list(range(processes)), [err for _, err in outputs]
    pids = {int(read_csv(f"{bucket}/logs/lightning_logs/version_{v}/metrics.csv")["pid"][0]) for v in versions}
    assert len(pids) == processes  # each folder holds the rows of one process only
