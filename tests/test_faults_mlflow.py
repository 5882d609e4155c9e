"""The faults MLFlowLogger and background delivery survive, one section per fault, each met as a user meets it.

The MLflow server is the session's real ``mlflow server`` on 127.0.0.1. Between it and the logger sits a
``Gate`` (tests/_tcp_gate.py), a real TCP port that is closed (connecting is refused: a server that is
down), stalls (accepts and never answers: a hung server) or forwards. Folders that cannot be written are
read-only bind mounts and small tmpfs mounts where the machine allows it (tests/_unwritable.py). Signals
are real signals sent to real training processes.

Faults, in order: the server down with the spill folder read-only, full, or with no disk at all; a
spill file with damaged lines; replay to another server or experiment; replay of a copy of a replayed
file; SIGTERM and SIGKILL with the server down; a server that accepts and never answers; the embedded
store in a read-only folder; finalize with a server unreachable all run, or reachable and slow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracklight import TracklightError, TracklightWarning
from tracklight.loggers.mlflow import MLFlowLogger

sys.path.insert(0, str(Path(__file__).parent))
from _mlflow_server import MlflowServer
from _tcp_gate import Gate
from _unwritable import read_only_folder, small_filesystem

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:MLflow at .* is not answering"),
    pytest.mark.timeout(600),
]


@pytest.fixture
def server(mlflow_server: MlflowServer) -> MlflowServer:
    return mlflow_server.running()


@pytest.fixture
def gate(mlflow_server: MlflowServer) -> Iterator[Gate]:
    """A closed port in front of the session's server: ``gate.forward()`` (with the server running) opens it."""
    gate = Gate(mlflow_server.port)
    yield gate
    gate.down()


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    with read_only_folder(tmp_path) as folder:
        yield folder


@pytest.fixture
def fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory, so the fallback spill folder, moved into the test's own directory."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions that ended a thread (a delivery worker that died) during the test."""
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def client(server: MlflowServer) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(server.url)


def runs_in(server: MlflowServer, experiment: str) -> list[Any]:
    found = client(server).get_experiment_by_name(experiment)
    return [] if found is None else list(client(server).search_runs([found.experiment_id]))


def steps_of(server: MlflowServer, run_id: str, key: str) -> list[int]:
    return sorted(metric.step for metric in client(server).get_metric_history(run_id, key))


def items_in(spill: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in spill.read_text().splitlines() if line.strip()]
    return [line for line in lines[1:] if not line["kind"].startswith("_")]


def replay(spill: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tracklight.delivery", "replay", str(spill), "--timeout", "120", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def spill_from_an_outage(gate: Gate, save_dir: Path, experiment: str, steps: int = 20) -> Path:
    """Train-like logging against a server that is down all along: the spill file ``finalize`` leaves."""
    gate.down()
    logger = MLFlowLogger(
        experiment, tracking_uri=gate.url, run_name=f"{experiment}-run", save_dir=str(save_dir), delivery_timeout=5
    )
    logger.log_hyperparams({"lr": 0.1})
    for step in range(steps):
        logger.log_metrics({"loss": float(step)}, step=step)
    logger.log_text("notes", "kept with the values", step=0)
    with pytest.warns(TracklightWarning, match="python -m tracklight.delivery replay"):
        logger.finalize("success")
    assert logger.delivery_report is not None
    return Path(logger.delivery_report.spill_path)


@pytest.fixture
def run_script() -> Iterator[Any]:
    """``run_script(code)``: a Python process running ``code``; killed at the end of the test if still running."""
    children: list[subprocess.Popen[str]] = []

    def run(code: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning"),
        )
        children.append(child)
        return child

    yield run
    for child in children:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=60)


def logging_forever(gate: Gate, save_dir: Path, body: str) -> str:
    """A script that logs to the gate (down) from ``save_dir``, running ``body`` for step 0, 1, 2... until killed."""
    loop = textwrap.indent(textwrap.dedent(body).strip(), "    ")
    return (
        "import time\n"
        "from tracklight.loggers.mlflow import MLFlowLogger\n"
        f"logger = MLFlowLogger('forever', tracking_uri={gate.url!r}, save_dir={str(save_dir)!r})\n"
        "assert logger.run_id is None  # the server is down\n"
        "step = 0\n"
        f"while True:\n{loop}\n    step += 1\n"
    )


def wait_for_line(child: subprocess.Popen[str], wanted: str) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == wanted:
            return
    raise AssertionError(f"the process ended without printing {wanted!r}: {child.communicate()[1][-3000:]}")


# ---- the server is down and the spill folder cannot be written ---------------------------------------------


def test_server_down_and_spill_folder_read_only_values_go_to_the_fallback_folder(
    gate: Gate, server: MlflowServer, read_only: Path, fallback: Path, thread_errors: list[BaseException]
) -> None:
    gate.down()
    logger = MLFlowLogger("fallback", tracking_uri=gate.url, save_dir=str(read_only / "mlruns"), delivery_timeout=5)
    with pytest.warns(TracklightWarning) as said:
        logger.log_hyperparams({"lr": 0.1})
        for step in range(200):
            logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)  # never raises into training
        logger.finalize("success")  # nor here
    report = logger.delivery_report
    assert report is not None and report.kept == Counter(metric=200, param=1, status=1) and not report.lost
    spill = Path(report.spill_path)
    assert spill.parent == fallback / "tracklight-spill" and len(items_in(spill)) == 202
    messages = [str(warning.message) for warning in said]
    moved = [message for message in messages if message.startswith("Could not write the spill file")]
    assert len(moved) == 1 and str(read_only / "mlruns") in moved[0] and str(spill) in moved[0]
    assert any(report.command in message for message in messages)  # the final report names the command
    assert thread_errors == []

    gate.forward()
    done = replay(spill)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = runs_in(server, "fallback")
    assert run.info.status == "FINISHED" and steps_of(server, run.info.run_id, "loss") == list(range(200))


def test_server_down_and_spill_folder_full_midway_everything_moves_to_the_fallback_folder(
    gate: Gate, server: MlflowServer, tmp_path: Path, fallback: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate.down()
    with small_filesystem(tmp_path, monkeypatch, size_kib=128) as small:
        logger = MLFlowLogger("full", tracking_uri=gate.url, save_dir=str(small), delivery_timeout=5)
        assert logger.run_id is None  # the server is down
        with pytest.warns(TracklightWarning) as said:
            for chunk in range(8):  # ~90 KiB of spill per chunk: the small disk fills up in the second one
                for step in range(chunk * 500, (chunk + 1) * 500):
                    logger.log_metrics({"loss": float(step), "padding": 0.0}, step=step)
                time.sleep(1.0)  # the flusher moves what waits to the spill file within about half a second
            logger.finalize("success")
    report = logger.delivery_report
    assert report is not None and report.kept == Counter(metric=8000, status=1) and not report.lost
    spill = Path(report.spill_path)
    assert spill.parent == fallback / "tracklight-spill"
    moved = [str(warning.message) for warning in said if "Could not write the spill file" in str(warning.message)]
    assert len(moved) == 1 and str(small) in moved[0] and str(spill) in moved[0]
    # What was written before the disk filled moved along: every value is in the fallback file, once.
    assert sorted(item["step"] for item in items_in(spill) if item["kind"] == "metric") == sorted(
        step for step in range(4000) for _ in range(2)
    )

    gate.forward()
    done = replay(spill)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = runs_in(server, "full")
    assert steps_of(server, run.info.run_id, "loss") == list(range(4000))


def test_server_down_and_no_disk_takes_the_values_they_are_counted_and_reported_once(
    gate: Gate, read_only: Path, monkeypatch: pytest.MonkeyPatch, thread_errors: list[BaseException]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(read_only / "tmp"))  # the fallback folder is read-only too
    gate.down()
    logger = MLFlowLogger("nowhere", tracking_uri=gate.url, save_dir=str(read_only / "mlruns"), delivery_timeout=5)
    with pytest.warns(TracklightWarning) as said:
        for step in range(60_000):  # more than the 50,000 values delivery keeps in memory
            logger.log_metrics({"loss": float(step)}, step=step)
        logger.finalize("success")
    report = logger.delivery_report
    assert report is not None and report.lost == Counter(metric=60_000, status=1)
    assert not report.kept and not report.queued and not report.complete
    messages = [str(warning.message) for warning in said]
    assert sum(message.startswith("No disk takes") for message in messages) == 1  # said once, during the run
    (final,) = [message for message in messages if message.startswith("MLFlowLogger: ")]
    assert "60000 metrics, 1 status were lost: no disk would keep them" in final and str(read_only) in final
    assert thread_errors == []


# ---- replay: damaged lines, another server, a copy replayed twice ------------------------------------------


def test_replay_sends_every_good_line_and_sets_aside_each_bad_one_with_its_line_number(
    gate: Gate, server: MlflowServer, tmp_path: Path
) -> None:
    spill = spill_from_an_outage(gate, tmp_path / "local", "damaged")
    lines = spill.read_text().splitlines()
    numbers = {json.loads(line).get("step"): at for at, line in enumerate(lines, 1) if '"metric"' in line}
    no_value = json.loads(lines[numbers[5] - 1])
    del no_value["value"]
    lines[numbers[5] - 1] = json.dumps(no_value)  # a line missing a field
    lines.insert(numbers[10], "this is not JSON")  # a line edited by hand, after step 10
    cut = '{"kind": "metric", "key": "loss", "value": 99.0, "st'  # a crash in the middle of a write
    spill.write_text("\n".join(lines) + "\n" + cut)
    bad = {numbers[5]: "needs 'value'", numbers[10] + 1: "not JSON", len(lines) + 1: "cut short"}

    gate.forward()
    done = replay(spill)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Delivered everything" not in done.stdout
    for number, reason in bad.items():
        assert f"line {number} of {spill}" in done.stderr and reason in done.stderr
    rejected = [json.loads(line) for line in spill.with_name(spill.stem + ".rejected.jsonl").read_text().splitlines()]
    assert sorted(record["line"] for record in rejected) == sorted(bad)
    assert "1 metric were refused by MLflow" in done.stdout and "2 unreadable lines of the spill file" in done.stdout

    (run,) = runs_in(server, "damaged")  # every good line arrived
    assert steps_of(server, run.info.run_id, "loss") == [step for step in range(20) if step != 5]
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"}


def test_replay_to_another_server_and_experiment(gate: Gate, server: MlflowServer, tmp_path: Path) -> None:
    spill = spill_from_an_outage(gate, tmp_path / "local", "first-choice")  # the gate's address is in the file
    done = replay(spill, "--tracking-uri", server.url, "--experiment", "second-choice")
    assert done.returncode == 0, done.stdout + done.stderr
    assert runs_in(server, "first-choice") == []
    (run,) = runs_in(server, "second-choice")
    assert run.info.run_name == "first-choice-run" and run.info.status == "FINISHED"
    assert steps_of(server, run.info.run_id, "loss") == list(range(20)) and run.data.params == {"lr": "0.1"}
    assert [info.path for info in client(server).list_artifacts(run.info.run_id, "text/notes")] == [
        "text/notes/step_0.txt"
    ]


def test_replaying_a_copy_of_a_replayed_spill_file_sends_into_the_same_run(
    gate: Gate, server: MlflowServer, tmp_path: Path
) -> None:
    spill = spill_from_an_outage(gate, tmp_path / "local", "twice")
    copy = tmp_path / "backup" / spill.name
    copy.parent.mkdir()
    shutil.copy(spill, copy)
    gate.forward()
    first = replay(spill)
    assert first.returncode == 0, first.stdout + first.stderr
    assert not spill.exists()

    second = replay(copy)
    assert second.returncode == 0, second.stdout + second.stderr
    (run,) = runs_in(server, "twice")  # one run, not two
    points = client(server).get_metric_history(run.info.run_id, "loss")
    assert sorted(metric.step for metric in points) == list(range(20))  # nothing doubled
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"}


# ---- signals while the server is down ---------------------------------------------------------------------


def test_sigterm_with_the_server_down_prints_the_spill_path_and_the_replay_command(
    gate: Gate, tmp_path: Path, run_script: Any
) -> None:
    gate.down()
    # Logging as fast as it can: the signal lands in the middle of a log_metrics, sooner or later.
    child = run_script(
        logging_forever(
            gate,
            tmp_path,
            """
            logger.log_metrics({"loss": float(step), "acc": 0.5}, step=step)
            if step == 1000:
                print("logging", flush=True)
            """,
        )
    )
    wait_for_line(child, "logging")
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=120)  # it ends (a signal inside log_metrics deadlocked before)
    assert child.returncode == -signal.SIGTERM
    (spill,) = (tmp_path / "tracklight-spill").glob("mlflow-*.jsonl")
    assert f"python -m tracklight.delivery replay {spill}" in stderr
    steps = [item["step"] for item in items_in(spill) if item["key"] == "loss"]
    assert len(steps) >= 1000 and steps == list(range(len(steps)))  # everything logged, in order
    assert f"{2 * len(steps)} metrics could not be delivered" in stderr


def test_sigterm_to_a_lightning_training_with_the_server_down_prints_the_replay_command(
    gate: Gate, tmp_path: Path, run_script: Any
) -> None:
    gate.down()
    child = run_script(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import _tiny_module_class
        from lightning.pytorch import Trainer
        from lightning.pytorch.callbacks import Callback
        from tracklight.loggers.mlflow import MLFlowLogger

        class Announce(Callback):
            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step == 20:
                    print("training", flush=True)
                time.sleep(0.05)

        logger = MLFlowLogger("sigterm-fit", tracking_uri={gate.url!r}, save_dir={str(tmp_path)!r})
        Trainer(logger=logger, max_epochs=-1, max_steps=100_000, limit_val_batches=0, log_every_n_steps=1,
                callbacks=[Announce()], enable_progress_bar=False, enable_checkpointing=False,
                enable_model_summary=False, default_root_dir={str(tmp_path)!r}).fit(_tiny_module_class()())
        """
    )
    wait_for_line(child, "training")
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=180)
    (spill,) = (tmp_path / "tracklight-spill").glob("mlflow-*.jsonl")
    assert f"python -m tracklight.delivery replay {spill}" in stderr
    kept = items_in(spill)
    assert {item["step"] for item in kept if item.get("key") == "train_loss"} >= set(range(19))
    assert kept[-1] == {**kept[-1], "kind": "status", "status": "FAILED"}  # Lightning finalizes with "failed"


def test_sigkill_with_the_server_down_loses_at_most_the_last_second(
    gate: Gate, tmp_path: Path, run_script: Any
) -> None:
    gate.down()
    child = run_script(
        logging_forever(
            gate,
            tmp_path,
            """
            logger.log_metrics({"loss": float(step)}, step=step)
            print(step, time.time(), flush=True)
            time.sleep(0.01)
            """,
        )
    )
    assert child.stdout is not None
    logged: dict[int, float] = {}
    while len(logged) < 300:  # about three seconds of logging
        step, at = child.stdout.readline().split()
        logged[int(step)] = float(at)
    killed_at = time.time()
    child.kill()
    child.wait(timeout=60)
    (spill,) = (tmp_path / "tracklight-spill").glob("mlflow-*.jsonl")
    kept = {item["step"] for item in items_in(spill)}
    older = {step for step, at in logged.items() if at < killed_at - 1.0}
    assert older and older <= kept, f"lost: {sorted(older - kept)}"


# ---- a server that accepts connections and never answers ---------------------------------------------------


def test_a_server_that_never_answers_does_not_hold_trainer_setup(
    gate: Gate, server: MlflowServer, tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    from lightning.pytorch.callbacks import Callback

    gate.stall()
    logger = MLFlowLogger("stalled", tracking_uri=gate.url, save_dir=str(tmp_path / "local"), delivery_timeout=120)
    at_setup: dict[str, Any] = {}

    class AtSetup(Callback):
        def setup(self, trainer: Any, module: Any, stage: str) -> None:
            failures = [warning for warning in seen if "is not answering" in str(warning.message)]
            at_setup.update(version=logger.version, name=logger.name, failures=len(failures), held=gate.held)

        def on_train_start(self, trainer: Any, module: Any) -> None:
            gate.forward()  # the server answers now, the held request included

    trainer = make_trainer(logger=logger, max_epochs=2, callbacks=[AtSetup()])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        trainer.fit(tiny_model(lr=0.03))
    # Setup went on with a local version while the first request was still unanswered (not after its timeout:
    # it would have said the server is not answering).
    assert at_setup["version"] == f"local-{logger._local_id}" and at_setup["name"] == "stalled"
    assert at_setup["failures"] == 0 and at_setup["held"] >= 1
    assert Path(trainer.checkpoint_callback.dirpath).parts[-3:-1] == ("stalled", f"local-{logger._local_id}")
    # The run was created in the background once the server answered, and has everything.
    assert logger.delivery_report is not None and logger.delivery_report.complete
    (run,) = runs_in(server, "stalled")
    assert run.info.run_id == logger.run_id and run.info.status == "FINISHED"
    assert steps_of(server, run.info.run_id, "train_loss") == list(range(8)) and run.data.params["lr"] == "0.03"


def test_name_and_version_with_a_server_that_never_answers_take_at_most_two_seconds(gate: Gate, tmp_path: Path) -> None:
    gate.stall()
    logger = MLFlowLogger("stalled", tracking_uri=gate.url, save_dir=str(tmp_path), delivery_timeout=1)
    started = time.monotonic()
    assert logger.name == "stalled"  # what Lightning's setup reads, then the checkpoint directory
    assert logger.version == f"local-{logger._local_id}"
    waited = time.monotonic() - started
    assert waited <= 2.0, f"name and version waited {waited:.2f} s"
    assert gate.held >= 1  # the request is under way, unanswered
    with pytest.warns(TracklightWarning, match="python -m tracklight.delivery replay"):
        logger.finalize("success")


# ---- the embedded store in a folder that cannot be written ------------------------------------------------


def test_embedded_store_in_a_read_only_folder_is_a_clear_error_at_once(read_only: Path) -> None:
    started = time.monotonic()
    with pytest.raises(TracklightError, match=f"cannot write its embedded MLflow store in {read_only / 'mlruns'}"):
        MLFlowLogger("read-only", save_dir=str(read_only / "mlruns"))
    assert time.monotonic() - started < 30  # at once: not after MLflow's minutes of retrying (164 s)


# ---- finalize: a server unreachable all run, or reachable and slow ----------------------------------------


def test_finalize_with_the_server_unreachable_all_run_returns_within_seconds(gate: Gate, tmp_path: Path) -> None:
    gate.down()
    logger = MLFlowLogger("unreachable", tracking_uri=gate.url, save_dir=str(tmp_path))  # delivery_timeout 60 s
    assert logger.run_id is None  # the first attempt failed
    for step in range(1000):
        logger.log_metrics({"loss": float(step)}, step=step)
    started = time.monotonic()
    with pytest.warns(TracklightWarning, match="python -m tracklight.delivery replay"):
        logger.finalize("success")
    waited = time.monotonic() - started
    # A behaviour, not a speed claim: finalize does not wait out delivery_timeout for a server never reached.
    assert waited < 20, f"finalize waited {waited:.1f} s"
    report = logger.delivery_report
    assert report is not None and report.kept == Counter(metric=1000, status=1)
    assert not [thread for thread in threading.enumerate() if thread.name == "tracklight-delivery"]


def test_finalize_with_a_slow_server_waits_up_to_the_timeout_with_progress(
    gate: Gate, server: MlflowServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    gate.forward()
    logger = MLFlowLogger("slow", tracking_uri=gate.url, save_dir=str(tmp_path), delivery_timeout=6)
    assert logger.run_id is not None  # reachable: the run exists
    gate.stall()  # from now on it accepts and does not answer
    for step in range(100):
        logger.log_metrics({"loss": float(step)}, step=step)
    started = time.monotonic()
    with pytest.warns(TracklightWarning, match="python -m tracklight.delivery replay"):
        logger.finalize("success")
    assert time.monotonic() - started >= 6  # it waited for delivery_timeout, as asked
    assert "items still to deliver to MLflow at " in capfd.readouterr().err  # and said so while waiting
    report = logger.delivery_report
    assert report is not None and report.kept["metric"] == 100
