"""Runs on object storage, the fast cases: fsspec's ``memory://`` store, in this process.

What the loggers write there must read back with the usual tools (pandas through fsspec, TensorBoard's
``EventAccumulator`` over the URL) and keep the local layout and promises; no local folder is ever
made from a URL. The S3 API itself and its faults are in ``test_remote_s3.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pytest
import yaml

from tracklight import TracklightError
from tracklight.loggers import CSVLogger, TensorBoardLogger
from tracklight.remote import is_url
from tracklight.remote._mirror import Mirror
from tracklight.remote._store import Store
from tracklight.remote._versions import claim, has_atomic_create


@pytest.fixture
def memory_url() -> str:
    """A fresh folder of fsspec's in-memory store."""
    return f"memory://t-{uuid.uuid4().hex[:10]}/logs"


@pytest.fixture(autouse=True)
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Staging folders under this test's tmp_path; the working directory there too, to see what appears."""
    monkeypatch.setenv("TRACKLIGHT_STAGING_DIR", str(tmp_path / "staging"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "staging"


def memory() -> Any:
    return fsspec.filesystem("memory")


def events(url: str, **size_guidance: int) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(url, size_guidance={"scalars": 0, **size_guidance})
    accumulator.Reload()
    return accumulator


def folders_named_like_urls(root: Path) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.name.endswith(":") or ":" in path.name]


@pytest.mark.parametrize(
    ("path", "remote"),
    [
        ("s3://bucket/logs", True),
        ("gs://bucket", True),
        ("memory://logs", True),
        ("simplecache::s3://bucket/logs", True),
        ("file:///tmp/logs", False),
        ("logs", False),
        ("/abs/logs", False),
        ("C:\\logs", False),
    ],
)
def test_urls_are_told_from_local_paths(path: str, remote: bool) -> None:
    assert is_url(path) is remote


def test_csv_run_reads_back_with_pandas_and_yaml(memory_url: str, tmp_path: Path) -> None:
    logger = CSVLogger(memory_url, name="exp")
    logger.log_hyperparams({"lr": 0.1, "layers": [1, 2]})
    for step in range(20):
        metrics = {"loss": 1.0 / (step + 1)}
        if step >= 10:
            metrics["acc"] = step / 20  # a new column half way: the header is rewritten
        logger.log_metrics(metrics, step=step)
    logger.finalize("success")

    assert logger.log_dir == f"{memory_url}/exp/version_0"
    frame = pd.read_csv(f"{logger.log_dir}/metrics.csv")
    assert list(frame.columns) == ["acc", "loss", "step"]
    assert frame["step"].tolist() == list(range(20))
    assert frame["loss"].tolist() == pytest.approx([1.0 / (step + 1) for step in range(20)])
    assert frame["acc"].isna().sum() == 10
    with fsspec.open(f"{logger.log_dir}/hparams.yaml", "r") as handle:
        assert yaml.safe_load(handle) == {"lr": 0.1, "layers": [1, 2]}
    assert folders_named_like_urls(tmp_path) == []


def test_tensorboard_run_reads_back_with_event_accumulator(memory_url: str, tmp_path: Path) -> None:
    logger = TensorBoardLogger(memory_url, name="tb", sub_dir="fit")
    logger.log_hyperparams({"lr": 0.1})
    for step in range(30):
        logger.log_metrics({"loss": step / 10, "group": {"a": step, "b": -step}}, step=step)
    logger.log_image("picture", np.full((4, 4, 3), 7, dtype=np.uint8), step=3)
    logger.log_text("note", "hello", step=3)
    logger.finalize("success")

    assert logger.log_dir == f"{memory_url}/tb/version_0/fit"
    accumulator = events(logger.log_dir, images=0)
    assert [event.value for event in accumulator.Scalars("loss")] == pytest.approx([s / 10 for s in range(30)])
    assert [event.step for event in accumulator.Scalars("loss")] == list(range(30))
    assert accumulator.Scalars("hp_metric")[0].value == -1
    assert [image.step for image in accumulator.Images("picture")] == [3]
    sub_run = events(f"{logger.log_dir}/group_a")
    assert [event.value for event in sub_run.Scalars("group")] == list(range(30))
    with fsspec.open(f"{logger.log_dir}/hparams.yaml", "r") as handle:
        assert yaml.safe_load(handle) == {"lr": 0.1}
    assert folders_named_like_urls(tmp_path) == []


def test_versions_are_listed_and_claimed_in_the_store(memory_url: str) -> None:
    memory().pipe_file(f"{memory_url}/exp/version_5/other-tool.txt", b"")  # a folder some other tool made
    first, second = CSVLogger(memory_url, name="exp"), TensorBoardLogger(memory_url, name="exp")
    assert (first.version, second.version) == (6, 7)
    named = CSVLogger(memory_url, name="exp", version="baseline")
    assert named.log_dir == f"{memory_url}/exp/baseline"
    assert memory().exists(f"{memory_url}/exp/baseline/.tracklight-run")  # named: marked at once


def test_rank_other_than_zero_writes_nothing_to_the_store(memory_url: str, set_rank: Any) -> None:
    memory().pipe_file(f"{memory_url}/lightning_logs/version_2/.tracklight-run", b"")
    set_rank(1)
    logger = CSVLogger(memory_url)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert logger.version == 3
    assert memory().find(f"{memory_url}") == [
        f"/{memory_url[len('memory://') :]}/lightning_logs/version_2/.tracklight-run"
    ]


def test_a_resumed_version_appends_merges_and_replaces_no_file(memory_url: str) -> None:
    first = CSVLogger(memory_url, version=0)
    first.log_hyperparams({"lr": 0.1})
    first.log_metrics({"loss": 1.0}, step=0)
    with pytest.warns(UserWarning, match="cannot display image media"):
        first.log_image("picture", np.zeros((2, 2, 3), dtype=np.uint8), step=1)  # kept as media/.../1_0.png
    first.finalize("success")
    picture = f"{first.log_dir}/media/image/picture/1_0.png"
    before = memory().cat_file(picture)

    resumed = CSVLogger(memory_url, version=0)
    resumed.log_hyperparams({"batch_size": 4})
    resumed.log_metrics({"loss": 0.5}, step=1)
    with pytest.warns(UserWarning, match="cannot display image media"):
        resumed.log_image("picture", np.full((2, 2, 3), 255, dtype=np.uint8), step=1)
    resumed.finalize("success")

    assert pd.read_csv(f"{resumed.log_dir}/metrics.csv")["loss"].tolist() == [1.0, 0.5]
    with fsspec.open(f"{resumed.log_dir}/hparams.yaml", "r") as handle:
        assert yaml.safe_load(handle) == {"lr": 0.1, "batch_size": 4}
    assert memory().cat_file(picture) == before
    assert memory().exists(f"{resumed.log_dir}/media/image/picture/1_1.png")
    with fsspec.open(f"{resumed.log_dir}/media/index.jsonl", "r") as handle:
        assert len(handle.read().splitlines()) == 2


def test_large_runs_go_up_in_bounded_event_files(memory_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scalars and the SummaryWriter's media are cut into segments, so no upload grows with the run."""
    monkeypatch.setattr("tracklight.remote._mirror.SEGMENT_BYTES", 2_000)
    logger = TensorBoardLogger(memory_url)
    noise = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)  # PNG cannot shrink it
    for step in range(400):
        logger.log_metrics({"loss": float(step)}, step=step)
        if step % 100 == 0:
            logger.log_image("picture", noise, step=step)
            logger.save()
            logger._last_writer_flush = 0.0  # let the next save() look at the writer's file again
        if step % 50 == 0:
            logger._event_file("").flush()
    logger.finalize("success")

    names = [path.rpartition("/")[2] for path in memory().find(logger.log_dir) if "tfevents" in path]
    assert len([name for name in names if ".tracklight" in name]) > 2
    assert len([name for name in names if ".tracklight" not in name]) > 1
    accumulator = events(logger.log_dir, images=0)
    assert [event.value for event in accumulator.Scalars("loss")] == list(range(400))
    assert [image.step for image in accumulator.Images("picture")] == [0, 100, 200, 300]


@pytest.mark.filterwarnings("ignore:CSVLogger cannot display text media")
def test_no_local_folder_is_made_from_a_url(memory_url: str, tmp_path: Path, staging: Path) -> None:
    for logger in (CSVLogger(memory_url), TensorBoardLogger(memory_url)):
        logger.log_hyperparams({"lr": 0.1})
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.log_text("note", "hello", step=0)  # CSV keeps it as a file under media/
        logger.finalize("success")
    assert not Path("memory:").exists()
    assert folders_named_like_urls(tmp_path) == []
    assert staging.is_dir()  # where the local writes went


def test_file_urls_are_local_paths(tmp_path: Path) -> None:
    logger = CSVLogger(f"file://{tmp_path}/logs")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert logger.log_dir == f"{tmp_path}/logs/lightning_logs/version_0"
    assert (tmp_path / "logs" / "lightning_logs" / "version_0" / "metrics.csv").is_file()


def test_missing_filesystem_packages_are_named(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["s3fs"] = sys.modules["gcsfs"] = None  # as if they were not installed
        from tracklight.loggers import CSVLogger, TensorBoardLogger
        for cls, url in ((CSVLogger, "s3://bucket/logs"), (TensorBoardLogger, "gs://bucket/logs")):
            try:
                cls(url)
            except ImportError as err:
                print(type(err).__name__, err)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("MissingDependencyError") and "s3://bucket/logs" in lines[0]
    assert "pip install s3fs" in lines[0] and "[remote]'" in lines[0]  # the extra, as this install takes it
    assert "gs://bucket/logs" in lines[1] and "pip install gcsfs" in lines[1]
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_protocol_is_an_error_naming_it() -> None:
    with pytest.raises(TracklightError, match="no 'nosuch' protocol"):
        CSVLogger("nosuch://bucket/logs")


def test_the_mirror_uploads_only_whole_records(tmp_path: Path) -> None:
    from tracklight.formats.tfevents import encode_scalars, frame

    staging = tmp_path / "run"
    staging.mkdir()
    record = frame(encode_scalars(1, 0.0, [("loss", 0.5)]))
    (staging / "events.out.tfevents.1.host.1.tracklight").write_bytes(record * 3 + record[:10])
    (staging / "index.jsonl").write_text('{"a": 1}\n{"a": ')
    (staging / "picture.png").write_bytes(b"\x89PNG")
    (staging / ".metrics.csv.1.0.tmp").write_text("a temporary file")
    store = Store(f"memory://t-{uuid.uuid4().hex[:10]}/run")
    assert Mirror(store, str(staging)).sync(timeout=60) == []
    fs = store.fs
    assert fs.cat_file(store.child("events.out.tfevents.1.host.1.tracklight")) == record * 3
    assert fs.cat_file(store.child("index.jsonl")) == b'{"a": 1}\n'
    assert fs.cat_file(store.child("picture.png")) == b"\x89PNG"
    assert not fs.exists(store.child(".metrics.csv.1.0.tmp"))


def test_a_file_that_was_in_the_store_is_never_replaced(tmp_path: Path) -> None:
    store = Store(f"memory://t-{uuid.uuid4().hex[:10]}/run")
    store.fs.pipe_file(store.child("notes.txt"), b"theirs")
    (tmp_path / "notes.txt").write_text("ours")
    mirror = Mirror(store, str(tmp_path), foreign=["notes.txt"])
    with pytest.warns(UserWarning, match="existed before this run started, so it is not replaced"):
        assert mirror.sync(timeout=60) == []
    assert store.fs.cat_file(store.child("notes.txt")) == b"theirs"


def test_conditional_create_where_the_store_has_one_and_a_checked_write_elsewhere() -> None:
    from fsspec.implementations.memory import MemoryFileSystem
    from fsspec.spec import AbstractFileSystem

    class CheckThenWrite(MemoryFileSystem):
        """A store without a conditional create: fsspec's generic check-then-write."""

        protocol = "checkthenwrite"
        pipe_file = AbstractFileSystem.pipe_file

    url = f"t-{uuid.uuid4().hex[:10]}"
    for fs in (MemoryFileSystem(), CheckThenWrite()):
        store = Store(f"memory://{url}/{type(fs).__name__}")
        store._opened = (os.getpid(), fs, store.path)
        assert has_atomic_create(fs) is (type(fs) is MemoryFileSystem)
        assert claim(store, "version_0") is True
        assert claim(store, "version_0") is False


def test_a_pickled_logger_writes_to_the_same_remote_version(memory_url: str) -> None:
    import pickle

    logger = CSVLogger(memory_url)
    logger.log_metrics({"loss": 1.0}, step=0)
    copy = pickle.loads(pickle.dumps(logger))  # as ddp_spawn hands it to the process of rank zero
    assert copy._remote_run is None and copy.log_dir == logger.log_dir == f"{memory_url}/lightning_logs/version_0"
    logger.finalize("success")
    copy.log_metrics({"loss": 0.5}, step=1)
    copy.finalize("success")
    assert pd.read_csv(f"{logger.log_dir}/metrics.csv")["loss"].tolist() == [1.0, 0.5]
    assert CSVLogger(memory_url).version == 1


def test_a_version_claimed_again_after_its_folder_was_deleted_is_a_new_run(memory_url: str) -> None:
    # The first logger is still alive (a notebook holds it) when its folder is deleted from the store and the
    # same version is claimed again: the new logger must not inherit its staging folder, rows or filesystem.
    first = CSVLogger(memory_url)
    first.log_metrics({"loss": 1.0}, step=0)
    first.finalize("success")
    memory().rm(first.log_dir.removeprefix("memory://"), recursive=True)
    second = CSVLogger(memory_url)
    assert second.log_dir == first.log_dir  # version_0 again
    second.log_metrics({"loss": 2.0}, step=0)
    second.finalize("success")
    assert pd.read_csv(f"{second.log_dir}/metrics.csv")["loss"].tolist() == [2.0]
    assert second._local_dir() != first._local_dir()


_FIT_THEN_TEST = """
import threading, time
import fsspec
from tracklight.loggers import {cls}
logger = {cls}({url!r}, name="exp")
logger.log_metrics({{"loss": 1.0}}, step=0)
logger.finalize("success")  # end of fit: everything is in the store
print("threads:", sorted(t.name for t in threading.enumerate() if t.name.startswith("tracklight")))
logger.log_metrics({{"test/loss": 2.0}}, step=1)  # trainer.test() after fit: the same run
time.sleep(3)  # no finalize: the background upload takes it
fs = fsspec.filesystem("memory")
if {cls!r} == "CSVLogger":
    print("rows:", fs.cat_file({folder!r} + "/metrics.csv").decode().split())
else:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator({url!r} + "/exp/version_0")
    events.Reload()
    print("scalars:", [(tag, event.step) for tag in events.Tags()["scalars"] for event in events.Scalars(tag)])
"""


@pytest.mark.parametrize("cls", ["CSVLogger", "TensorBoardLogger"])
def test_finalize_leaves_no_thread_and_a_later_stage_still_reaches_the_store(
    cls: str, memory_url: str, tmp_path: Path
) -> None:
    # memory:// lives in one process: the whole run is one child, which checks the store itself.
    code = _FIT_THEN_TEST.format(cls=cls, url=memory_url, folder=memory_url[len("memory://") - 1 :] + "/exp/version_0")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert lines["threads"] == "[]"
    if cls == "CSVLogger":
        assert lines["rows"] == str(["loss,step,test/loss", "1.0,0,", ",1,2.0"])
    else:
        assert lines["scalars"] == str([("loss", 0), ("test/loss", 1)])
