"""``version_N`` directories: chosen atomically across processes, and never created on ranks other than 0.

Lightning lists the directory and takes the highest N + 1, so processes that start together share a
version. These tests start real processes together (each waits for a start file) on one directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracklight._fs import claim_next_version
from tracklight.loggers import CSVLogger, TensorBoardLogger

PROCESSES = 8

# Imports first, then waits for the start file, so every process reaches the claim at the same moment.
RACER = """
import os, sys, time
from tracklight.loggers import {cls}
logger = {cls}(sys.argv[1], name="race")
open(sys.argv[2] + ".ready." + str(os.getpid()), "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.0005)
print(logger.version, flush=True)
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "LOCAL_RANK", "SLURM_PROCID")}
    env.update(extra)
    return env


@pytest.mark.parametrize("cls", ["CSVLogger", "TensorBoardLogger"])
def test_processes_started_together_get_distinct_versions(tmp_path: Path, cls: str) -> None:
    start = tmp_path / "start"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER.format(cls=cls), str(tmp_path / "logs"), str(start)],
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        for _ in range(PROCESSES)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("start.ready.*"))) < PROCESSES:
            assert time.monotonic() < deadline, "the processes did not get ready"
            assert all(racer.poll() is None for racer in racers), "a process died before the start"
            time.sleep(0.01)
        start.touch()
        versions = [int(racer.communicate(timeout=60)[0]) for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
    assert sorted(versions) == list(range(PROCESSES))
    assert sorted(os.listdir(tmp_path / "logs" / "race")) == sorted(f"version_{n}" for n in range(PROCESSES))


def test_claim_skips_taken_names_and_files(tmp_path: Path) -> None:
    (tmp_path / "version_0").mkdir()
    (tmp_path / "version_1").touch()  # a file of that name blocks the directory too
    assert claim_next_version(tmp_path) == 2
    assert claim_next_version(tmp_path) == 3
    assert (tmp_path / "version_3").is_dir()


OTHER_RANK = """
import os, sys
from tracklight.loggers import CSVLogger
logger = CSVLogger(sys.argv[1])
logger.log_hyperparams({"lr": 0.1})
logger.log_metrics({"loss": 1.0}, step=0)
logger.experiment.log_metrics({"loss": 2.0})
logger.save()
logger.finalize("success")
print(logger.version, logger.log_dir, type(logger.experiment).__name__, sep="\\n")
"""


@pytest.mark.parametrize("existing", [0, 2])
def test_rank_other_than_zero_creates_nothing(tmp_path: Path, existing: int) -> None:
    root = tmp_path / "logs"
    for version in range(existing):
        (root / "lightning_logs" / f"version_{version}").mkdir(parents=True)
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    result = subprocess.run(
        [sys.executable, "-c", OTHER_RANK, str(root)],
        capture_output=True,
        text=True,
        env=clean_env(RANK="1"),
        timeout=120,
        check=True,
    )
    claimed, log_dir, experiment = result.stdout.split()
    assert claimed == str(existing)  # the version rank zero is about to claim
    assert log_dir == str(root / "lightning_logs" / f"version_{existing}")
    assert experiment == "DummyExperiment"
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before


def test_explicit_versions_are_used_as_given(tmp_path: Path) -> None:
    assert CSVLogger(tmp_path, version=7).log_dir == os.path.join(tmp_path, "lightning_logs", "version_7")
    assert CSVLogger(tmp_path, version="run-a").log_dir == os.path.join(tmp_path, "lightning_logs", "run-a")
    assert CSVLogger(tmp_path, name=None, version=1).log_dir == os.path.join(tmp_path, "version_1")
    first, second = CSVLogger(tmp_path, name="x"), CSVLogger(tmp_path, name="x")
    assert (first.version, second.version) == (0, 1)  # a logger claims its version: the next one moves on
    assert TensorBoardLogger(tmp_path, name="x").version == 2
