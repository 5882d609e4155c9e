"""Object-store races met the way a user meets them (issue 17), on a real S3 API (moto's server, s3fs): ``push``
of a killed run's staging folder after the version was resumed, two processes given the same version, a
bucket deleted and made again while a run writes to it. ``docs/reliability.md`` lists them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest

from test_durability import start_child
from tracklight import TracklightWarning
from tracklight.loggers import CSVLogger


@pytest.fixture(autouse=True)
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRACKLIGHT_STAGING_DIR", str(tmp_path / "staging"))
    return tmp_path / "staging"


def read_csv(url: str) -> pd.DataFrame:
    fsspec.filesystem("s3").invalidate_cache()
    return pd.read_csv(url)


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def rows_in(path: Path) -> int:
    try:
        return max(0, path.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


# ---- item 2: push never replaces newer data ---------------------------------------------------------------------

KILLED_RUN = """
    import os, sys, time
    from tracklight.loggers import CSVLogger
    logger = CSVLogger(sys.argv[1], name="", version="run")
    for step in range(100):
        logger.log_metrics({"i": step}, step=step)
    assert logger._remote_run.mirror.sync(60) == []
    print(logger._remote_run.staging_dir, flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.01)
    for step in range(100, 300):  # the store is down now: these stay in the staging folder
        logger.log_metrics({"i": step}, step=step)
    logger.save()
    time.sleep(600)
"""


def test_push_of_a_killed_run_never_replaces_the_rows_of_the_run_that_resumed_it(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    url = f"{bucket}/logs"
    go = tmp_path / "go"
    child = start_child(KILLED_RUN, url, str(go))
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode().strip()
        assert line, child.stderr.read() if child.stderr else ""
        killed_staging = Path(line)
        with s3.down():
            go.touch()
            wait_for(lambda: rows_in(killed_staging / "metrics.csv") == 300)
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=60)
    finally:
        child.kill()
    assert read_csv(f"{url}/run/metrics.csv")["i"].tolist() == list(range(100))

    resumed = CSVLogger(url, name="", version="run")  # the documented resume: the same version
    for step in range(100, 150):
        resumed.log_metrics({"i": 1000 + step}, step=step)
    resumed.finalize("success")
    expected = [*range(100), *range(1100, 1150)]
    assert read_csv(f"{url}/run/metrics.csv")["i"].tolist() == expected

    result = subprocess.run(
        [sys.executable, "-m", "tracklight.remote", "push", str(killed_staging)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    said = " ".join(result.stderr.split())
    assert f"{url}/run/metrics.csv holds data this run does not have" in said
    assert f"kept in {killed_staging / 'metrics.csv'}" in said and "not replaced" in said
    assert read_csv(f"{url}/run/metrics.csv")["i"].tolist() == expected  # the resumed run's rows are there
    assert rows_in(killed_staging / "metrics.csv") == 300  # and the killed run's copy is kept


def test_push_of_a_folder_the_store_already_holds_is_done(bucket: str) -> None:
    logger = CSVLogger(f"{bucket}/logs", name="", version="run")
    for step in range(20):
        logger.log_metrics({"i": step}, step=step)
    logger.finalize("success")
    run = logger._remote_run
    assert run is not None
    result = subprocess.run(
        [sys.executable, "-m", "tracklight.remote", "push", run.staging_dir],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert read_csv(f"{logger.log_dir}/metrics.csv")["i"].tolist() == list(range(20))


# ---- item 5: two writers on one version -------------------------------------------------------------------------

WRITER = """
    import os, sys, time
    from tracklight.loggers import CSVLogger
    logger = CSVLogger(sys.argv[1], name="", version="shared")
    _ = logger.log_dir  # the version is marked in the store now
    print(logger._remote_run.staging_dir, flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.01)
    for step in range(200):
        logger.log_metrics({"writer": int(sys.argv[3]), "i": step}, step=step)
        time.sleep(0.005)
    logger.finalize("success")
"""


def test_two_processes_on_one_version_never_replace_each_others_rows(bucket: str, tmp_path: Path) -> None:
    url = f"{bucket}/logs"
    go = tmp_path / "go"
    writers, stagings = [], []
    try:
        for number in (1, 2):  # one after the other: the second finds the first one's mark
            writer = start_child(WRITER, url, str(go), str(number))
            assert writer.stdout is not None
            line = writer.stdout.readline().decode().strip()
            assert line, writer.stderr.read() if writer.stderr else ""
            writers.append(writer)
            stagings.append(Path(line))
        go.touch()
        errors = [" ".join(writer.communicate(timeout=180)[1].decode().split()) for writer in writers]
    finally:
        for writer in writers:
            writer.kill()
    assert all(writer.returncode == 0 for writer in writers), errors
    assert "is being written by another process" in errors[1]  # the second claim is warned about at once
    stored = read_csv(f"{url}/shared/metrics.csv")
    for number, (staging_dir, err) in enumerate(zip(stagings, errors, strict=True), start=1):
        mine = stored[stored["writer"] == number]
        if len(mine) == 200:
            assert mine["i"].tolist() == list(range(200))
        else:  # not in the store: said, with the folder that keeps every row, which is kept
            assert f"{url}/shared/metrics.csv holds data this run does not have" in err
            kept = pd.read_csv(staging_dir / "metrics.csv")
            assert kept[kept["writer"] == number]["i"].tolist() == list(range(200))
    assert len(stored) >= 200


# ---- item 6: the bucket deleted and made again ------------------------------------------------------------------


def test_a_bucket_deleted_and_made_again_mid_run_gets_every_file_again(s3: Any, bucket: str) -> None:
    logger = CSVLogger(f"{bucket}/logs")
    logger.log_hyperparams({"lr": 0.05})
    for step in range(50):
        logger.log_metrics({"loss": float(step)}, step=step)
    run = logger._remote_run
    assert run is not None and run.mirror.sync(timeout=60) == []
    fs = s3.filesystem()
    name = bucket.removeprefix("s3://")
    for _ in range(20):  # the objects, then the bucket (an upload landing in between: delete again)
        try:
            fs.rm(name, recursive=True)
            break
        except OSError:
            fs.invalidate_cache()
    assert not fs.exists(name)
    with pytest.warns(TracklightWarning, match=f"Could not upload to {bucket}"):
        for step in range(50, 100):
            logger.log_metrics({"loss": float(step)}, step=step)
        wait_for(lambda: run.mirror.last_error is not None)
    fs.mkdir(name)  # made again, empty
    with pytest.warns(TracklightWarning, match=r"no longer in the store .*hparams.yaml.*uploaded again"):
        logger.finalize("success")
    assert read_csv(f"{logger.log_dir}/metrics.csv")["loss"].tolist() == [float(step) for step in range(100)]
    with fsspec.open(f"{logger.log_dir}/hparams.yaml", "r") as handle:
        assert "lr: 0.05" in handle.read()
    assert run.mirror.pending() == []
    assert os.path.isdir(run.staging_dir)  # removed at exit only, once everything is in the store
