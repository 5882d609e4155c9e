"""What survives when a training process dies: SIGKILL, SIGTERM (alone and under a Trainer), an exception.

Each child process prints ``index time`` after every row it logged; the parent compares that record
with what ``metrics.csv`` holds once the child is gone. New keys keep appearing so that a header
rewrite is pending most of the time (the case where rows wait longest in memory).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tracklight.loggers import CSVLogger

#: Rows logged longer ago than this before a SIGKILL must be on disk (the promise is "about a second").
SIGKILL_LOSS_S = 1.5


def metrics_rows(log_dir: Path) -> list[dict[str, str]]:
    with open(log_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def start_child(code: str, *args: str) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "LOCAL_RANK")}
    # Unbuffered pipes: readline() takes one line and no more from the pipe, so communicate(), which reads
    # the pipe itself, gets the rest whole. A buffered reader keeps what it read ahead, and communicate()
    # would then miss those lines and begin in the middle of one.
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        env=env,
    )


def read_logged(child: subprocess.Popen[bytes], until: float, rows: int = 0) -> dict[int, float]:
    """``{index: time}`` of the rows the child reports until ``until`` (a ``time.time()``) has passed and it
    reported at least ``rows`` (a loaded machine slows the child down: the test waits for the rows it needs)."""
    assert child.stdout is not None
    logged: dict[int, float] = {}
    while time.time() < until or len(logged) < rows:
        line = child.stdout.readline()
        if not line:
            pytest.fail(f"the child ended early: {child.wait()} {child.stderr.read() if child.stderr else ''!r}")
        index, stamp = line.split()
        logged[int(index)] = float(stamp)
    return logged


def read_rest(child: subprocess.Popen[bytes], logged: dict[int, float]) -> tuple[int, str]:
    out, err = child.communicate(timeout=60)
    for line in out.splitlines():
        index, stamp = line.split()
        logged[int(index)] = float(stamp)
    return child.returncode, err.decode(errors="replace")


LOGGING_LOOP = """
    import sys, time
    from tracklight.loggers import CSVLogger

    logger = CSVLogger(sys.argv[1], name="", version="run")
    save, pause = sys.argv[2] == "save", float(sys.argv[3])
    index = 0
    while True:
        now = time.time()
        metrics = {"t": now, "i": index}
        if index % 20 == 0:
            metrics[f"key_{index}"] = 1.0  # a new column: the file's header must be rewritten
        logger.log_metrics(metrics, step=index)
        if save:
            logger.save()
        print(index, repr(now), flush=True)
        index += 1
        time.sleep(pause)
"""


def indices_on_disk(path: Path) -> set[int]:
    """The ``i`` of every complete row of a file another process is writing (a last line may be half done)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    complete = data[: data.rfind(b"\n") + 1].decode()
    return {int(row["i"]) for row in csv.DictReader(complete.splitlines()) if row.get("i")}


@pytest.mark.parametrize("save", ["save", "no-save"])
def test_sigkill_loses_at_most_about_the_last_second(tmp_path: Path, save: str) -> None:
    child = start_child(LOGGING_LOOP, str(tmp_path), save, "0.01")
    path = tmp_path / "run" / "metrics.csv"
    late: list[int] = []
    try:
        assert child.stdout is not None
        first = child.stdout.readline()  # the child is up and logging
        assert first, child.stderr.read() if child.stderr else ""
        logged: dict[int, float] = {}
        end = time.time() + 3.5
        while time.time() < end or sum(stamp < time.time() - SIGKILL_LOSS_S for stamp in logged.values()) <= 100:
            # While it runs, look at the file now and then: a kill at that moment would leave just this.
            logged.update(read_logged(child, until=time.time() + 0.1))
            looked_at = time.time()
            on_disk = indices_on_disk(path)
            late += [i for i, stamp in logged.items() if stamp < looked_at - SIGKILL_LOSS_S and i not in on_disk]
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
        returncode, _ = read_rest(child, logged)
    finally:
        child.kill()
    assert returncode == -signal.SIGKILL
    assert not late, f"rows were still not on disk {SIGKILL_LOSS_S} s after they were logged: {sorted(set(late))[:5]}"

    rows = metrics_rows(tmp_path / "run")
    times_on_disk = {int(row["i"]): float(row["t"]) for row in rows}
    must_have = {index: stamp for index, stamp in logged.items() if stamp < killed_at - SIGKILL_LOSS_S}
    assert len(must_have) > 100
    missing = sorted(set(must_have) - set(times_on_disk))
    assert not missing, f"{len(missing)} rows logged over {SIGKILL_LOSS_S} s before SIGKILL are lost: {missing[:5]}"
    assert all(times_on_disk[index] == stamp for index, stamp in must_have.items())
    assert all(f"key_{index}" in rows[0] for index in must_have if index % 20 == 0)


def test_sigterm_writes_every_row_then_dies_of_sigterm(tmp_path: Path) -> None:
    child = start_child(LOGGING_LOOP, str(tmp_path), "save", "0.0005")
    try:
        logged = read_logged(child, until=time.time() + 1.5, rows=200)
        child.send_signal(signal.SIGTERM)
        returncode, err = read_rest(child, logged)
    finally:
        child.kill()
    assert returncode == -signal.SIGTERM, err
    on_disk = {int(row["i"]): float(row["t"]) for row in metrics_rows(tmp_path / "run")}
    assert len(logged) > 100
    assert {index: on_disk.get(index) for index in logged} == logged  # every row it reported, none lost


def test_sigterm_while_the_main_thread_is_writing_waits_for_the_write(tmp_path: Path) -> None:
    """The handler runs between two bytecodes: in the middle of a write it must wait, not deadlock."""
    child = start_child(
        """
        import os, signal, sys, time
        from tracklight.formats.csv_table import CSVTable

        table = CSVTable(os.path.join(sys.argv[1], "metrics.csv"))
        table.append({"a": 1, "step": 0})
        with table._io_lock:  # as if a save() were writing when SIGTERM comes
            table.append({"b": 2, "step": 1})
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            print("still writing", flush=True)
        print("not reached", flush=True)
        """,
        str(tmp_path),
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM, err
    assert out.split(b"\n")[0] == b"still writing" and b"not reached" not in out
    assert metrics_rows(tmp_path) == [{"a": "1", "b": "", "step": "0"}, {"a": "", "b": "2", "step": "1"}]


TRAINER = """
    import sys, time
    import torch
    from lightning.pytorch import LightningModule, Trainer
    from torch.utils.data import DataLoader, TensorDataset
    from tracklight.loggers import CSVLogger

    class Slow(LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            now = time.time()
            self.log("t", now)
            self.log(f"key_{batch_idx // 5}", 1.0)  # new columns keep coming
            print(batch_idx, repr(now), flush=True)
            time.sleep(0.02)
            return self.layer(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

        def train_dataloader(self):
            return DataLoader(TensorDataset(torch.randn(100000, 2)), batch_size=1)

    logger = CSVLogger(sys.argv[1], name="", version="run")
    trainer = Trainer(
        logger=logger, max_epochs=1, log_every_n_steps=1, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu", devices=1,
    )
    trainer.fit(Slow())
"""


def test_sigterm_inside_a_trainer_leaves_every_row_on_disk(tmp_path: Path) -> None:
    child = start_child(TRAINER, str(tmp_path))
    try:
        assert child.stdout is not None
        first = child.stdout.readline()  # Lightning is imported and training runs
        assert first, child.stderr.read() if child.stderr else ""
        logged = read_logged(child, until=time.time() + 1.0, rows=20)
        child.send_signal(signal.SIGTERM)
        returncode, err = read_rest(child, logged)
    finally:
        child.kill()
    # Lightning's handler turns SIGTERM into SIGTERMException (a SystemExit) after finalize("failed").
    assert returncode == 0 and "Received SIGTERM" in err, err
    on_disk = {int(row["step"]): float(row["t"]) for row in metrics_rows(tmp_path / "run") if row["t"]}
    # Step i's row is logged after training_step i printed; all but the last printed step are certainly logged.
    complete = {index: stamp for index, stamp in logged.items() if index < max(logged)}
    assert len(complete) > 10
    assert set(complete) <= set(on_disk)
    # self.log keeps values as float32 tensors: the time comes back to within float32's resolution.
    assert all(abs(on_disk[index] - stamp) < 256 for index, stamp in complete.items())


def test_exception_in_training_leaves_every_row_on_disk(tmp_path: Path, tiny_model: type, make_trainer: Any) -> None:
    class Failing(tiny_model):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if batch_idx == 3:
                raise RuntimeError("boom")
            self.log(f"key_{batch_idx}", float(batch_idx))  # a header rewrite is pending at the crash
            return super().training_step(batch, batch_idx)

    logger = CSVLogger(tmp_path / "logs")
    logger.experiment.table.rewrite_interval = 3600.0  # only a forced flush may rewrite the header now
    with pytest.raises(RuntimeError, match="boom"):
        make_trainer(logger=logger, limit_val_batches=0).fit(Failing())
    rows = metrics_rows(Path(logger.log_dir))  # read at once: finalize("failed") wrote everything
    assert [row["step"] for row in rows] == ["0", "1", "2"]
    assert [row[f"key_{index}"] for index, row in enumerate(rows)] == ["0.0", "1.0", "2.0"]
    assert all(row["train_loss"] for row in rows)
