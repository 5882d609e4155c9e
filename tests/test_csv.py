"""CSVLogger against Lightning's CSVLogger: same arguments, layout and table; plus what it does better.

Differential tests run the same calls through both loggers and compare what ``csv.DictReader`` and
pandas read back. The rest covers what Lightning does not promise: resuming appends, a torn last
line, disk-write failures, background flushing, and a real ``Trainer`` run.
"""

from __future__ import annotations

import csv
import errno
import inspect
import os
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tracklight._errors import TracklightWarning
from tracklight.formats import csv_table as _csv_table
from tracklight.loggers import CSVLogger


def read_rows(path: str | os.PathLike[str]) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def lightning_csv_logger(*args: Any, **kwargs: Any) -> Any:
    from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "directory exists and is not empty" when a test reuses a version
        return LightningCSVLogger(*args, **kwargs)


def run_both(tmp_path: Path, calls: Callable[[Any], None], **options: Any) -> tuple[str, str]:
    """Run ``calls(logger)`` on Lightning's CSVLogger and on tracklight's; return both metrics.csv paths."""
    theirs = lightning_csv_logger(tmp_path / "lightning", **options)
    ours = CSVLogger(tmp_path / "tracklight", **options)
    for logger in (theirs, ours):
        calls(logger)
        logger.finalize("success")
    return theirs.experiment.metrics_file_path, ours.experiment.metrics_file_path


def assert_same_table(theirs: str, ours: str) -> None:
    assert read_rows(ours) == read_rows(theirs)
    pd.testing.assert_frame_equal(pd.read_csv(ours), pd.read_csv(theirs))


@pytest.fixture
def wait_until() -> Callable[[Callable[[], bool]], None]:
    def wait(condition: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.02)

    return wait


# ---- same arguments, same layout ----------------------------------------------------------------------------


def test_constructor_has_lightnings_arguments_and_defaults() -> None:
    from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger

    def parameters(cls: type) -> list[tuple[str, Any, Any]]:
        signature = inspect.signature(cls)
        return [(p.name, p.kind, p.default) for p in signature.parameters.values()]

    # Lightning's arguments, in order, and tracklight's one more: continue_run (docs/resume.md), keyword-only.
    continue_run = ("continue_run", inspect.Parameter.KEYWORD_ONLY, True)
    assert parameters(CSVLogger) == [*parameters(LightningCSVLogger), continue_run]
    assert CSVLogger.LOGGER_JOIN_CHAR == LightningCSVLogger.LOGGER_JOIN_CHAR == "-"


@pytest.mark.parametrize("name", ["lightning_logs", "my_exp", None, ""])
@pytest.mark.parametrize("version", [None, 3, "custom"])
def test_layout_matches_lightning(tmp_path: Path, name: str | None, version: int | str | None) -> None:
    def files(logger: Any) -> tuple[Any, ...]:
        logger.log_hyperparams({"lr": 0.1})
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.finalize("success")
        base = Path(logger.save_dir)
        found = sorted(str(path.relative_to(base)) for path in base.rglob("*") if path.is_file())
        relative = os.path.relpath(logger.log_dir, logger.save_dir)
        return logger.name, logger.version, os.path.relpath(logger.root_dir, logger.save_dir), relative, found

    theirs = lightning_csv_logger(tmp_path / "a", name=name, version=version)
    ours = CSVLogger(tmp_path / "b", name=name, version=version)
    assert files(ours) == files(theirs)
    assert ours.save_dir == os.fspath(tmp_path / "b")
    assert os.path.basename(ours.experiment.metrics_file_path) == "metrics.csv"


def test_next_version_matches_lightning(tmp_path: Path) -> None:
    for root in ("a", "b"):
        for existing in ("version_0", "version_4", "version_x", "other"):
            (tmp_path / root / "exp" / existing).mkdir(parents=True)
    theirs = lightning_csv_logger(tmp_path / "a", name="exp")
    ours = CSVLogger(tmp_path / "b", name="exp")
    assert ours.version == theirs.version == 5
    assert ours.log_dir == os.path.join(tmp_path, "b", "exp", "version_5")


# ---- same table ---------------------------------------------------------------------------------------------


def log_growing_keys(logger: Any) -> None:
    """New keys keep appearing, some rows miss old keys, save after every call as the Trainer does."""
    for step in range(40):
        metrics: dict[str, Any] = {"loss": 1.0 / (step + 1)}
        if step % 3 == 0:
            metrics[f"extra_{step // 9}"] = step * 0.5
        if step >= 20:
            metrics["val/acc"] = step / 40
        logger.log_metrics(metrics, step=step)
        logger.save()


def log_tensors_and_ints(logger: Any) -> None:
    import numpy as np
    import torch

    for step in range(12):
        logger.log_metrics(
            {
                "t": torch.tensor(step / 7),
                "i": torch.tensor(step),
                "n": np.float64(step) / 3,
                "epoch": step // 4,
                "big": 1e20 * step,
            },
            step=step,
        )
        if step % 5 == 4:
            logger.save()


def log_without_save(logger: Any) -> None:
    for step in range(250):  # crosses Lightning's flush_logs_every_n_steps=100 twice
        logger.log_metrics({"a": step, **({"b": -step} if step % 50 == 0 else {})}, step=step)


def log_without_step(logger: Any) -> None:
    for index in range(8):  # step None: the row count, as long as nothing was saved in between
        logger.log_metrics({"x": index * 1.5, **({"late": 1} if index > 4 else {})})


@pytest.mark.parametrize(
    ("calls", "options"),
    [
        (log_growing_keys, {}),
        (log_growing_keys, {"prefix": "train"}),
        (log_tensors_and_ints, {}),
        (log_without_save, {}),
        (log_without_save, {"flush_logs_every_n_steps": 7}),
        (log_without_step, {}),
    ],
    ids=["growing-keys", "prefix", "tensors-numpy-ints", "no-save", "flush-every-7", "step-none"],
)
def test_same_table_as_lightning(tmp_path: Path, calls: Callable[[Any], None], options: dict[str, Any]) -> None:
    theirs, ours = run_both(tmp_path, calls, **options)
    assert_same_table(theirs, ours)
    columns, _ = read_rows(ours)
    assert columns == sorted(columns) and "step" in columns
    if options.get("prefix"):
        assert "train-loss" in columns and "train-val/acc" in columns


def test_experiment_metrics_keys_and_paths(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"b": 1, "a": 2}, step=0)
    assert logger.experiment.metrics_keys == ["a", "b", "step"]
    assert logger.experiment.metrics_file_path == os.path.join(logger.log_dir, "metrics.csv")
    assert logger.experiment.log_dir == logger.log_dir


def test_step_none_keeps_counting_across_saves(tmp_path: Path) -> None:
    """Lightning numbers rows from 0 again after each save(); tracklight's default step is the row index."""
    logger = CSVLogger(tmp_path)
    for index in range(5):
        logger.log_metrics({"x": index})
        logger.save()
    logger.finalize("success")
    _, rows = read_rows(logger.experiment.metrics_file_path)
    assert [row["step"] for row in rows] == ["0", "1", "2", "3", "4"]


def test_logging_goes_on_after_finalize(tmp_path: Path) -> None:
    """fit, then test with the same logger: both parts land in one file."""
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"train": 1.0}, step=0)
    logger.finalize("success")
    logger.log_metrics({"test": 2.0}, step=1)
    logger.finalize("success")
    assert read_rows(logger.experiment.metrics_file_path) == (
        ["step", "test", "train"],
        [{"step": "0", "test": "", "train": "1.0"}, {"step": "1", "test": "2.0", "train": ""}],
    )


def test_rows_from_several_threads_are_each_written_once(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)

    def log(worker: int) -> None:
        for index in range(300):
            logger.log_metrics({f"w{worker}": index, f"k{index % 7}": 1}, step=worker * 1000 + index)
            if index % 10 == 0:
                logger.save()

    threads = [threading.Thread(target=log, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger.finalize("success")
    _, rows = read_rows(logger.experiment.metrics_file_path)
    assert sorted(int(row["step"]) for row in rows) == sorted(w * 1000 + i for w in range(4) for i in range(300))


# ---- a real Trainer -----------------------------------------------------------------------------------------


def test_trainer_fit_writes_lightnings_layout(tmp_path: Path, tiny_model: type, make_trainer: Any) -> None:
    logger = CSVLogger(tmp_path / "logs", name="exp")
    trainer = make_trainer(logger=logger, max_epochs=2)
    trainer.fit(tiny_model(lr=0.05, config={"layers": [4, 1], "act": "relu"}))

    assert trainer.log_dir == logger.log_dir == os.path.join(tmp_path, "logs", "exp", "version_0")
    columns, rows = read_rows(os.path.join(logger.log_dir, "metrics.csv"))
    assert {"epoch", "step", "train_loss", "val_loss"} <= set(columns)
    assert sum(1 for row in rows if row["train_loss"]) == 8  # 4 steps x 2 epochs, log_every_n_steps=1
    assert [row["epoch"] for row in rows if row["val_loss"]] == ["0", "1"]
    with open(os.path.join(logger.log_dir, "hparams.yaml")) as handle:
        assert yaml.safe_load(handle) == {"lr": 0.05, "hidden": 4, "config": {"layers": [4, 1], "act": "relu"}}
    checkpoints = os.listdir(os.path.join(logger.log_dir, "checkpoints"))
    assert checkpoints == ["epoch=1-step=8.ckpt"]


def test_trainer_fit_gives_the_same_table_as_lightning(tmp_path: Path, tiny_model: type, make_trainer: Any) -> None:
    from lightning.pytorch import seed_everything

    paths = []
    for logger in (lightning_csv_logger(tmp_path / "lightning"), CSVLogger(tmp_path / "tracklight")):
        seed_everything(7)
        make_trainer(logger=logger, max_epochs=2).fit(tiny_model())
        paths.append(os.path.join(logger.log_dir, "metrics.csv"))
    assert_same_table(*paths)


# ---- resuming never deletes ---------------------------------------------------------------------------------


def test_resume_appends_and_keeps_old_rows(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path, version=0)
    for step in range(3):
        first.log_metrics({"loss": float(step)}, step=step)
    first.finalize("success")

    second = CSVLogger(tmp_path, version=0)
    second.log_metrics({"loss": 9.0}, step=3)
    second.save()
    second.log_metrics({"acc": 0.5}, step=4)  # a new key: the old rows get an empty cell, nothing else changes
    second.finalize("success")

    columns, rows = read_rows(second.experiment.metrics_file_path)
    assert columns == ["acc", "loss", "step"]
    assert [(row["step"], row["loss"], row["acc"]) for row in rows] == [
        ("0", "0.0", ""),
        ("1", "1.0", ""),
        ("2", "2.0", ""),
        ("3", "9.0", ""),
        ("4", "", "0.5"),
    ]


def test_resume_keeps_a_file_lightning_wrote(tmp_path: Path) -> None:
    theirs = lightning_csv_logger(tmp_path, version=0)
    theirs.log_metrics({"loss": 1.5, "epoch": 0}, step=0)
    theirs.finalize("success")

    ours = CSVLogger(tmp_path, version=0)
    ours.log_metrics({"loss": 0.5, "epoch": 1}, step=1)
    ours.finalize("success")
    assert read_rows(ours.experiment.metrics_file_path) == (
        ["epoch", "loss", "step"],
        [{"epoch": "0", "loss": "1.5", "step": "0"}, {"epoch": "1", "loss": "0.5", "step": "1"}],
    )


@pytest.mark.parametrize("new_key", [False, True], ids=["same-keys", "new-key"])
def test_torn_last_line_does_not_corrupt_appended_rows(tmp_path: Path, new_key: bool) -> None:
    path = tmp_path / "lightning_logs" / "version_0" / "metrics.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"loss,step\r\n0.5,0\r\n0.25,1\r\n0.1")  # a process died in the middle of writing row 2

    logger = CSVLogger(tmp_path, version=0)
    with pytest.warns(TracklightWarning, match="cut short"):
        logger.log_metrics({"loss": 0.05, **({"acc": 1.0} if new_key else {})}, step=3)
        logger.log_metrics({"loss": 0.01}, step=4)
        logger.finalize("success")

    _, rows = read_rows(path)
    assert [(row["loss"], row["step"]) for row in rows] == [
        ("0.5", "0"),
        ("0.25", "1"),
        ("0.1", None if not new_key else ""),  # kept as it was found: a row with its step missing
        ("0.05", "3"),
        ("0.01", "4"),
    ]
    frame = pd.read_csv(path)
    assert list(frame["loss"]) == [0.5, 0.25, 0.1, 0.05, 0.01]
    assert list(frame["step"].dropna()) == [0, 1, 3, 4]


# ---- the disk fails for a while -----------------------------------------------------------------------------


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, int], list[int]]]:
    """``flaky("replace", n)``: the next n calls of ``os.<name>`` inside the CSV table raise an OSError."""

    def arm(name: str, failures: int, err: int = errno.ENOSPC) -> list[int]:
        real = getattr(os, name)
        calls = [0]

        def failing(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] <= failures:
                raise OSError(err, os.strerror(err))
            return real(*args, **kwargs)

        # Only the CSV table sees the failing function: it gets its own view of the os module.
        monkeypatch.setattr(_csv_table, "os", types.SimpleNamespace(**{**vars(os), name: failing}))
        return calls

    yield arm


def expected_rows(count: int) -> list[tuple[str, str, str]]:
    return [(str(step), str(step * 0.5), "1" if step >= 3 else "") for step in range(count)]


def log_rows(logger: CSVLogger, steps: range) -> None:
    for step in steps:
        logger.log_metrics({"v": step * 0.5, **({"late": 1} if step >= 3 else {})}, step=step)
        logger.save()


@pytest.mark.parametrize(
    ("name", "err"),
    [("replace", errno.EACCES), ("write", errno.ENOSPC), ("open", errno.EROFS)],
    ids=["header-rewrite", "append", "create"],
)
def test_write_failure_warns_once_and_writes_later(
    tmp_path: Path, flaky: Callable[..., list[int]], name: str, err: int
) -> None:
    logger = CSVLogger(tmp_path)
    path = os.path.join(logger.log_dir, "metrics.csv")
    # save() skips while the background flusher holds the table, and a forced flush that finds rows with a
    # new key writes them all in one header rewrite (no os.write). So the rows that fit the header are
    # written at once with save(force=True): the call each case breaks (append, create, rewrite) does run.
    if name != "open":
        log_rows(logger, range(2))
        logger.experiment.save(force=True)  # the file and its header exist before the disk starts failing
    calls = flaky(name, 3, err)
    with pytest.warns(TracklightWarning, match="(kept|held) in memory") as caught:
        log_rows(logger, range(2 if name != "open" else 0, 3))
        logger.experiment.save(force=True)
        log_rows(logger, range(3, 6))  # a new key: the header is rewritten
        for _ in range(4):
            logger.finalize("success")  # must not raise while the disk fails
    failures = [str(warning.message) for warning in caught if "Could not write" in str(warning.message)]
    assert len(failures) == 1
    # finalize says, with the number, what is still held in memory (when the disk had not taken it yet)
    assert all("rows are held in memory" in str(w.message) for w in caught if "(at finalize)" in str(w.message))
    assert calls[0] > 3  # it failed, then went through
    _, rows = read_rows(path)
    assert [(row["step"], row["v"], row["late"]) for row in rows] == expected_rows(6)


def test_append_cut_short_by_a_full_disk_is_finished_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = CSVLogger(tmp_path)
    log_rows(logger, range(4))
    logger.finalize("success")  # the header is complete: what follows is appended
    real_write = os.write
    calls = [0]

    def half_then_enospc(fd: int, data: Any) -> int:
        calls[0] += 1
        if calls[0] == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])
        if calls[0] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(_csv_table, "os", types.SimpleNamespace(**{**vars(os), "write": half_then_enospc}))
    with pytest.warns(TracklightWarning, match="kept in memory"):  # from this thread or the flusher's
        for step in range(4, 8):
            logger.log_metrics({"v": step * 0.5, "late": 1}, step=step)
        logger.experiment.save(force=True)  # not save(), which skips while the flusher holds the table
    logger.finalize("success")
    assert calls[0] >= 3
    _, rows = read_rows(logger.experiment.metrics_file_path)
    assert [(row["step"], row["v"], row["late"]) for row in rows] == expected_rows(8)


def test_rows_never_written_are_reported_at_close(tmp_path: Path, flaky: Callable[..., list[int]]) -> None:
    logger = CSVLogger(tmp_path)
    flaky("open", 10**6, errno.EROFS)
    with pytest.warns(TracklightWarning) as caught:
        logger.log_metrics({"v": 1.0}, step=0)
        logger.finalize("failed")
        logger.experiment.close()
    assert any("are lost" in str(warning.message) for warning in caught)


# ---- when rows reach the disk -------------------------------------------------------------------------------


def test_new_keys_do_not_rewrite_the_file_on_every_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replaced: list[tuple[Any, ...]] = []
    real_replace = os.replace

    def replace(*args: Any) -> None:
        replaced.append(args)
        real_replace(*args)

    counting = types.SimpleNamespace(**{**vars(os), "replace": replace})
    monkeypatch.setattr(_csv_table, "os", counting)
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"k0": 0}, step=0)
    logger.save()  # creating the file is one rewrite
    logger.experiment.table.rewrite_interval = 3600.0  # no rewrite is due while the loop runs
    for step in range(1, 300):
        logger.log_metrics({f"k{step // 10}": step}, step=step)
        logger.save()
    assert len(replaced) == 1
    logger.finalize("success")  # all 29 new keys in one rewrite
    assert len(replaced) == 2
    columns, rows = read_rows(logger.experiment.metrics_file_path)
    assert len(columns) == 31 and len(rows) == 300


def test_rows_reach_the_disk_without_save_or_finalize(
    tmp_path: Path, wait_until: Callable[[Callable[[], bool]], None]
) -> None:
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=10**6)
    path = os.path.join(logger.log_dir, "metrics.csv")
    logger.log_metrics({"a": 1}, step=0)
    wait_until(lambda: os.path.exists(path) and len(read_rows(path)[1]) == 1)
    logger.log_metrics({"a": 2}, step=1)
    logger.log_metrics({"b": 3}, step=2)  # needs a header rewrite: the background flusher does it too
    wait_until(lambda: len(read_rows(path)[1]) == 3)
    assert read_rows(path)[0] == ["a", "b", "step"]


def test_nothing_is_written_on_other_ranks(tmp_path: Path, set_rank: Callable[[int], None]) -> None:
    set_rank(1)
    logger = CSVLogger(tmp_path / "logs")
    logger.log_hyperparams({"lr": 1})
    logger.log_metrics({"a": 1.0}, step=0)
    logger.save()
    logger.finalize("success")
    assert logger.log_dir == os.path.join(tmp_path, "logs", "lightning_logs", "version_0")
    assert not (tmp_path / "logs").exists()
