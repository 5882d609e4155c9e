"""Faults of what MLflow holds, met as a user meets them against the session's real ``mlflow server``: a value
it cannot store among good ones (issue 17 item 4), and the run deleted while training goes on (item 11).

Each test checks what reached the server with MLflow's own client, what was kept (the rejected file beside
the spill file), and what was said.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from tracklight import InvalidMetricError, TracklightWarning
from tracklight.loggers.mlflow import MLFlowLogger

sys.path.insert(0, str(Path(__file__).parent))
from _mlflow_server import MlflowServer
from _tcp_gate import Gate

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:MLflow at .* is not answering"),
    pytest.mark.timeout(300),
]

#: A step no backend holds (one past the largest unsigned 64-bit integer), the one the issue used.
HUGE = 2**64


@pytest.fixture
def server(mlflow_server: MlflowServer) -> MlflowServer:
    return mlflow_server.running()


def client(server: MlflowServer) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(server.url)


def only_run(server: MlflowServer, experiment: str) -> Any:
    found = client(server).get_experiment_by_name(experiment)
    (run,) = client(server).search_runs([found.experiment_id], run_view_type=3)  # active and deleted
    return run


def steps_of(server: MlflowServer, run_id: str, key: str) -> list[int]:
    return sorted(metric.step for metric in client(server).get_metric_history(run_id, key))


def rejected_items(path: str | None) -> list[dict[str, Any]]:
    assert path is not None
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# ---- a value MLflow cannot hold (item 4) -------------------------------------------------------------------


def test_a_step_mlflow_cannot_hold_is_refused_at_the_call_and_the_rest_is_delivered(
    server: MlflowServer, tmp_path: Path
) -> None:
    logger = MLFlowLogger("poison-call", tracking_uri=server.url, save_dir=str(tmp_path))
    for step in range(20):
        logger.log_metrics({"loss": float(step)}, step=step)
        if step == 10:
            with pytest.raises(InvalidMetricError, match=rf"'loss' is {HUGE}, beyond .*Fix: "):
                logger.log_metrics({"loss": -1.0}, step=HUGE)
    started = time.monotonic()
    logger.finalize("success")  # no warning: everything logged was delivered
    assert time.monotonic() - started < 10  # it waited 60 s for a batch the server refused again and again
    assert logger.delivery_report is not None and logger.delivery_report.complete
    run = only_run(server, "poison-call")
    assert run.info.status == "FINISHED" and steps_of(server, run.info.run_id, "loss") == list(range(20))


def test_an_item_mlflow_cannot_hold_in_the_queue_is_set_aside_and_the_rest_delivered(
    server: MlflowServer, tmp_path: Path
) -> None:
    # An item no log_metrics makes any more, but a spill file of an older tracklight (or one edited by hand) holds.
    logger = MLFlowLogger("poison-queue", tracking_uri=server.url, save_dir=str(tmp_path))
    for step in range(20):
        logger.log_metrics({"loss": float(step)}, step=step)
        if step == 10:
            poison = {"kind": "metric", "key": "loss", "value": -1.0, "step": HUGE, "timestamp": 0}
            logger._started().put(poison)  # the fault, injected where a replayed spill file would put it
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        logger.finalize("success")
    assert time.monotonic() - started < 10
    messages = [str(warning.message) for warning in said if issubclass(warning.category, TracklightWarning)]
    assert any(f"step={HUGE}" in message and "beyond what MLflow holds" in message for message in messages)
    assert not any("not answering" in message for message in messages)  # the server is not to blame
    run = only_run(server, "poison-queue")
    assert run.info.status == "FINISHED" and steps_of(server, run.info.run_id, "loss") == list(range(20))
    report = logger.delivery_report
    assert report is not None and report.rejected == {"metric": 1} and report.delivered["metric"] == 20
    (kept,) = rejected_items(report.rejected_path)
    assert kept["item"] == poison and "beyond what MLflow holds" in kept["error"]


def test_replay_sets_aside_a_line_mlflow_cannot_hold_and_sends_the_rest(
    server: MlflowServer, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    gate = Gate(mlflow_server.port)  # closed: the server is down while the run logs
    try:
        logger = MLFlowLogger("poison-replay", tracking_uri=gate.url, save_dir=str(tmp_path), delivery_timeout=5)
        for step in range(20):
            logger.log_metrics({"loss": float(step)}, step=step)
        with pytest.warns(TracklightWarning, match="python -m tracklight.delivery replay"):
            logger.finalize("success")
        assert logger.delivery_report is not None and logger.delivery_report.spill_path is not None
        spill = Path(logger.delivery_report.spill_path)
        lines = spill.read_text().splitlines()
        at = next(number for number, line in enumerate(lines) if '"step": 10,' in line)
        poison = {**json.loads(lines[at]), "step": HUGE, "value": -1.0}
        lines.insert(at + 1, json.dumps(poison))  # one bad line among 20 good ones (an older tracklight's file)
        spill.write_text("\n".join(lines) + "\n")
        gate.forward()
        command = [sys.executable, "-m", "tracklight.delivery", "replay", str(spill), "--timeout", "60"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    finally:
        gate.down()
    assert done.returncode == 1, done.stdout + done.stderr  # 1: a line was set aside
    assert f"line {at + 2} of {spill}" in done.stderr and f"step={HUGE}" in done.stderr
    assert "beyond what MLflow holds" in done.stderr and "not answering" not in done.stdout + done.stderr
    assert "1 metric were refused by MLflow" in done.stdout  # the report counts it; nothing else is kept
    run = only_run(server, "poison-replay")
    assert run.info.status == "FINISHED" and steps_of(server, run.info.run_id, "loss") == list(range(20))
    (kept,) = rejected_items(str(spill.with_name(spill.stem + ".rejected.jsonl")))
    assert kept["item"]["step"] == HUGE and kept["line"] == at + 2


# ---- the run deleted while training goes on (item 11) ------------------------------------------------------


def test_a_run_deleted_mid_training_gives_one_warning_with_the_count_and_keeps_the_values(
    server: MlflowServer, tmp_path: Path
) -> None:
    logger = MLFlowLogger("deleted-mid-run", tracking_uri=server.url, save_dir=str(tmp_path))
    for step in range(5):
        logger.log_metrics({"loss": float(step), "acc": 0.5}, step=step)
    assert logger.flush() is not None and logger.run_id is not None
    client(server).delete_run(logger.run_id)  # from the MLflow UI, or a colleague's cleanup script
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        for step in range(5, 105):
            logger.log_metrics({"loss": float(step), "acc": 0.5}, step=step)
            if step % 25 == 0:
                time.sleep(0.3)  # several batches reach the server, each refused
        logger.finalize("success")
    messages = [str(warning.message) for warning in said if issubclass(warning.category, TracklightWarning)]
    assert len(messages) == 2, messages  # one when it starts; finalize's report with the count
    assert "deleted" in messages[0] and logger.run_id in messages[0]
    assert "200 metrics" in messages[1] and "1 status" in messages[1]
    report = logger.delivery_report
    assert report is not None and report.rejected == {"metric": 200, "status": 1}
    kept = rejected_items(report.rejected_path)
    assert sorted(item["item"]["step"] for item in kept if item["item"].get("key") == "loss") == list(range(5, 105))
    assert steps_of(server, logger.run_id, "loss") == list(range(5))  # what came before the deletion stays
