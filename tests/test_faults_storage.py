"""Storage faults met the way a user meets them (issue 17): a disk that fills up (a real tmpfs, filled to the
last byte), a logger copied by ``os.fork()``, ``copy.deepcopy`` or pickling into a spawned process.

The object-store races (``push`` over a resumed run, two writers on one version, a bucket deleted and made
again) are in ``test_faults_s3.py``. ``docs/reliability.md`` lists them all.
"""

from __future__ import annotations

import copy
import csv
import multiprocessing
import os
import pickle
import re
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tracklight import TracklightWarning
from tracklight.loggers import CSVLogger

#: Mounting needs root: as root directly, else through passwordless sudo (as on CI runners).
_AS_ROOT = [] if os.geteuid() == 0 else ["sudo", "-n"]


class Disk:
    """A small tmpfs mounted for one test: ``fill()`` takes every free byte, ``free()`` gives them back."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir()
        options = f"size={size},uid={os.getuid()},gid={os.getgid()}"  # the test's user owns it
        subprocess.run([*_AS_ROOT, "mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
        self._filler = path / "filler"

    def fill(self) -> None:
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 16, 1 << 12, 1 << 9, 1):  # down to the last byte
                try:
                    while True:
                        os.write(fd, b"x" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self._filler.unlink()

    def unmount(self) -> None:
        subprocess.run([*_AS_ROOT, "umount", "-l", str(self.path)], check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    mounted = Disk(tmp_path / "disk", "512k")
    try:
        yield mounted
    finally:
        mounted.unmount()


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in {text!r}"
    return int(match.group(1).replace(",", ""))


# ---- item 1: a disk that fills up mid-run ----------------------------------------------------------------------

#: A run that fills its disk after 500 rows and logs 2,500 more (one with a new key), then finalizes and exits.
FILLING_RUN = """
    import os, sys
    import tracklight.formats.csv_table as table
    sys.path.insert(0, sys.argv[3])
    from test_faults_storage import Disk
    from tracklight.loggers import CSVLogger
    table.MAX_ROWS_IN_MEMORY = int(sys.argv[4])
    logger = CSVLogger(sys.argv[1], name="run")
    for step in range(500):
        logger.log_metrics({"loss": step / 1000}, step=step)
    logger.experiment.save(force=True)
    disk = Disk.__new__(Disk)
    disk._filler = os.path.join(sys.argv[2], "filler")
    disk.fill()
    for step in range(500, 3000):
        logger.log_metrics({"loss": step / 1000, **({"lr": 0.1} if step == 2000 else {})}, step=step)
    logger.finalize("success")
    print(logger.log_dir)
"""


def test_a_local_disk_that_stays_full_holds_rows_up_to_the_bound_and_counts_them_at_finalize_and_exit(
    disk: Disk,
) -> None:
    result = run_child(FILLING_RUN, str(disk.path), str(disk.path), str(Path(__file__).parent), "1000")
    assert result.returncode == 0, result.stderr
    log_dir = result.stdout.strip()
    written = Path(log_dir, "metrics.csv").read_bytes().count(b"\n") - 1  # whole rows (the last may be cut short)
    assert 0 < written < 3000
    err = " ".join(result.stderr.split())
    assert "Could not write" in err and "kept in memory (at most 1,000;" in err  # the first warning is true
    held = number(r"\(at finalize\): ([\d,]+) rows are held in memory", err)
    dropped = number(r"([\d,]+) rows logged while 1,000 were held were dropped", err)
    assert held == 1000
    assert written + held + dropped == 3000  # every row is written, held or counted as dropped
    assert number(r"\(at exit\): ([\d,]+) rows held in memory are lost with the process", err) == held


def test_rows_held_while_the_disk_is_full_are_written_once_it_has_room(disk: Disk) -> None:
    logger = CSVLogger(disk.path, name="run")
    for step in range(100):
        logger.log_metrics({"loss": step / 1000}, step=step)
    logger.experiment.save(force=True)
    disk.fill()
    with pytest.warns(TracklightWarning, match=r"(kept|held) in memory") as caught:
        for step in range(100, 600):
            logger.log_metrics({"loss": step / 1000, **({"lr": 0.1} if step == 300 else {})}, step=step)
        logger.finalize("success")
    assert any(re.search(r"\(at finalize\): [\d,]+ rows are held in memory", str(w.message)) for w in caught)
    disk.free()  # the background flusher goes on trying after finalize, while the process runs
    metrics = Path(logger.log_dir, "metrics.csv")
    wait_for(lambda: len(read_csv(metrics)) == 600)
    assert [int(row["step"]) for row in read_csv(metrics)] == list(range(600))


def test_an_object_store_run_whose_staging_disk_fills_up_stores_every_row(bucket: str, disk: Disk) -> None:
    # The staging disk fills after 500 rows; the store answers: every row goes up, from memory.
    result = run_child(
        FILLING_RUN,
        f"{bucket}/logs",
        str(disk.path),
        str(Path(__file__).parent),
        "100000",
        env={"TRACKLIGHT_STAGING_DIR": str(disk.path / "staging")},
    )
    assert result.returncode == 0, result.stderr
    import pandas as pd

    frame = pd.read_csv(f"{result.stdout.strip()}/metrics.csv")
    assert frame["step"].tolist() == list(range(3000))
    assert frame["lr"].notna().sum() == 1
    assert "were dropped" not in result.stderr
    assert re.search(r"rows are held in memory and are in s3://", " ".join(result.stderr.split()))
    assert list((disk.path / "staging").iterdir()) == []  # all in the store: nothing is left to push


# ---- item 3: a full staging disk at start ----------------------------------------------------------------------


def test_a_full_staging_disk_at_start_still_reaches_the_store(
    bucket: str, disk: Disk, monkeypatch: pytest.MonkeyPatch, tiny_model: type, make_trainer: Any
) -> None:
    staging = disk.path / "staging"
    staging.mkdir()
    monkeypatch.setenv("TRACKLIGHT_STAGING_DIR", str(staging))
    disk.fill()
    logger = CSVLogger(f"{bucket}/logs")
    with pytest.warns(TracklightWarning) as caught:
        make_trainer(logger=logger, max_epochs=2).fit(tiny_model(lr=0.05))
    said = " ".join(str(warning.message) for warning in caught)
    assert f"staging folder {staging}" in said and logger.log_dir in said and "TRACKLIGHT_STAGING_DIR" in said
    import fsspec
    import pandas as pd

    fsspec.filesystem("s3").invalidate_cache()
    frame = pd.read_csv(f"{logger.log_dir}/metrics.csv")
    assert frame.dropna(subset=["train_loss"])["step"].tolist() == list(range(8))
    with fsspec.open(f"{logger.log_dir}/hparams.yaml", "r") as handle:
        assert "lr: 0.05" in handle.read()


def test_a_staging_folder_that_cannot_be_made_is_a_clear_error(bucket: str, tmp_path: Path, monkeypatch: Any) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("TRACKLIGHT_STAGING_DIR", str(blocker / "staging"))
    from tracklight import TracklightError

    with pytest.raises(TracklightError, match=rf"{bucket}/logs.*{blocker}.*TRACKLIGHT_STAGING_DIR"):
        CSVLogger(f"{bucket}/logs").log_metrics({"loss": 1.0}, step=0)


# ---- item 7: a logger copied while rows are queued -------------------------------------------------------------


def steps(log_dir: str) -> list[int]:
    return sorted(int(row["step"]) for row in read_csv(Path(log_dir, "metrics.csv")))


def test_a_forked_child_writes_its_own_rows_once_and_never_the_parents(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    for step in range(100):
        logger.log_metrics({"loss": float(step)}, step=step)  # queued, not yet written, at the fork
    pid = os.fork()
    if pid == 0:  # a DataLoader worker: logs with a key of its own, then ends with os._exit (no exit hook)
        code = 1
        try:
            for step in range(100, 200):
                logger.log_metrics({"worker": float(step)}, step=step)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is set aside: the child's rewrite is continued
        for step in range(200, 300):
            logger.log_metrics({"loss": float(step)}, step=step)
        logger.finalize("success")
    assert steps(logger.log_dir) == list(range(300))
    assert os.listdir(logger.log_dir) == ["metrics.csv"]


def test_a_dataloader_worker_that_logs_writes_each_row_once(tmp_path: Path) -> None:
    import torch
    from torch.utils.data import DataLoader, Dataset

    logger = CSVLogger(tmp_path)
    logger.log_metrics({"loss": 0.0}, step=0)

    class Logging(Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 20

        def __getitem__(self, index: int) -> Any:
            logger.log_metrics({"sample": float(index)}, step=1000 + index)
            return torch.tensor(index)

    loader = DataLoader(Logging(), num_workers=2, multiprocessing_context="fork", batch_size=5)
    assert sorted(int(x) for batch in loader for x in batch) == list(range(20))
    logger.log_metrics({"loss": 1.0}, step=1)
    logger.finalize("success")
    assert steps(logger.log_dir) == [0, 1, *range(1000, 1020)]


def test_a_deep_copy_used_while_rows_are_queued_writes_its_rows_once(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    for step in range(100):
        logger.log_metrics({"loss": float(step)}, step=step)
    twin = copy.deepcopy(logger)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in range(100, 200):
            twin.log_metrics({"twin": float(step)}, step=step)
        for step in range(200, 300):
            logger.log_metrics({"loss": float(step)}, step=step)
        logger.finalize("success")
    assert steps(logger.log_dir) == list(range(300))  # the twin was never finalized: its rows are there too
    assert twin.log_dir == logger.log_dir


def _log_in_spawned_process(blob: bytes) -> None:
    logger = pickle.loads(blob)
    for step in range(100, 200):
        logger.log_metrics({"spawned": float(step)}, step=step)  # no finalize: the process just ends


def test_a_logger_pickled_to_a_spawned_process_writes_its_rows_once(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    for step in range(100):
        logger.log_metrics({"loss": float(step)}, step=step)
    process = multiprocessing.get_context("spawn").Process(target=_log_in_spawned_process, args=(pickle.dumps(logger),))
    process.start()
    process.join(120)
    assert process.exitcode == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in range(200, 300):
            logger.log_metrics({"loss": float(step)}, step=step)
        logger.finalize("success")
    assert steps(logger.log_dir) == list(range(300))
    assert os.listdir(logger.log_dir) == ["metrics.csv"]
