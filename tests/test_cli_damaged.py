"""Damaged and odd inputs to the ``tracklight`` command (issue 18): one clear line per problem, a non-zero exit
where something asked for cannot be done, the rest of the work still done, never a traceback."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _runs_written import written
from tracklight import runs
from tracklight.cli import main

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(600)]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


def errors_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_a_metrics_csv_cut_by_a_kill_reads_its_whole_rows(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("step,loss,acc\n0,1.0,0.1\n1,0.9,0.2\n2,0.8,0.")  # cut in a value
    status, _out, err = run_cli(capsys, "show", tmp_path / "run")
    assert status == 0 and err == ""
    run = runs.open(tmp_path / "run")
    assert run.metric("acc").value.tolist() == [0.1, 0.2] and run.metric("loss").step.tolist() == [0, 1]


def test_a_header_again_mid_file_starts_new_columns(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("step,loss\n0,1.0\n1,0.9\nstep,loss,acc\n2,0.8,0.5\n3,,0.6\n")
    status, out, err = run_cli(capsys, "show", tmp_path / "run")
    assert status == 0 and err == "" and "acc" in out
    run = runs.open(tmp_path / "run")
    assert run.metric("loss").step.tolist() == [0, 1, 2] and run.metric("acc").value.tolist() == [0.5, 0.6]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.csv").write_text("step,loss\n0,1.0\n1,0.9,7,8\n")
    status, out, err = run_cli(capsys, "compare", tmp_path / "run", tmp_path / "bad")
    assert status == 1 and errors_of(err) == [
        f"error: {tmp_path / 'bad' / 'metrics.csv'}: is damaged: line 3 has 4 cells, its header 2"
    ]
    assert str(tmp_path / "run") in out  # the readable run is still shown


def test_an_event_file_with_a_corrupted_record_is_named_and_the_rest_listed(
    capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    source = written(tmp_path_factory, "tracklight")
    shutil.copytree(source / "tb", tmp_path / "tb")
    shutil.copytree(source / "csv", tmp_path / "csv")
    event = max((tmp_path / "tb" / "version_0").glob("events.out.tfevents.*"), key=lambda p: p.stat().st_size)
    data = bytearray(event.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = b"\xff" * 8
    event.write_bytes(bytes(data))
    for argv, shown in (
        (["ls", tmp_path], str(tmp_path / "csv" / "version_0")),
        (["plot", tmp_path / "tb" / "version_0", tmp_path / "csv" / "version_0"], "train_loss"),  # the CSV run's
    ):
        status, out, err = run_cli(capsys, *argv)
        assert status == 1 and shown in out, argv
        (line,) = errors_of(err)
        assert line.startswith(f"error: {event}: "), line


def test_an_mlflow_store_being_written_by_a_training_is_read(
    capsys: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = tmp_path / "mlflow.db"
    shutil.copy(written(tmp_path_factory, "tracklight") / "mlflow" / "mlflow.db", database)
    (run_id,) = [row[0] for row in sqlite3.connect(database).execute("SELECT run_uuid FROM runs")]
    stop, started = threading.Event(), threading.Event()

    def training() -> None:  # what MLflow's store does per log_batch: a short write transaction
        db = sqlite3.connect(database, timeout=30)
        step = 1000
        while not stop.is_set():
            with db:
                db.execute(
                    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, 0)",
                    ("live", 0.5, int(time.time() * 1000), run_id, step),
                )
                time.sleep(0.01)  # inside the transaction: the file is locked meanwhile
            started.set()
            step += 1
        db.close()

    writer = threading.Thread(target=training)
    writer.start()
    try:
        assert started.wait(30)
        for _ in range(5):
            status, out, err = run_cli(capsys, "ls", f"sqlite:///{database}")
            assert status == 0 and err == "" and run_id in out
            status, out, err = run_cli(capsys, "show", f"sqlite:///{database}#{run_id}", "-m", "live")
            assert status == 0 and err == "" and "live" in out
    finally:
        stop.set()
        writer.join()

    from tracklight.runs import _mlflow

    monkeypatch.setattr(_mlflow, "BUSY_TIMEOUT", 0.2)
    holder = sqlite3.connect(database)
    holder.execute("BEGIN EXCLUSIVE")  # a writer that keeps the lock longer than a read waits
    try:
        status, _out, err = run_cli(capsys, "ls", f"sqlite:///{database}", tmp_path_factory.getbasetemp())
        assert status == 1
        assert f"error: {database}: is locked by a process writing to it for more than 0.2 s; try again" in err
    finally:
        holder.rollback()
        holder.close()


def test_a_folder_that_cannot_be_read_is_named_and_the_rest_listed(
    capsys: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shutil.copytree(written(tmp_path_factory, "tracklight") / "csv", tmp_path / "csv")
    (tmp_path / "private" / "version_0").mkdir(parents=True)
    (tmp_path / "private" / "version_0" / "metrics.csv").write_text("step,loss\n0,1\n")
    real = os.scandir

    def scandir(path: Any = ".") -> Any:  # tests run as root here, where chmod 000 does not stop a read
        if os.fspath(path) == str(tmp_path / "private"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    status, out, err = run_cli(capsys, "ls", tmp_path)
    assert status == 1 and str(tmp_path / "csv" / "version_0") in out
    assert errors_of(err) == [f"error: {tmp_path / 'private'}: cannot be read (Permission denied)"]
