"""MLFlowLogger continues its run after a restart (``state_dict``/``load_state_dict``), each step once.

Read back with ``MlflowClient`` (which, having no way to delete points, still holds the superseded ones,
and the ``tracklight.resumed.<ms>`` tag that marks them) and with ``tracklight.runs`` (each step once, the
resumed values winning). The killed process is a real subprocess sent SIGKILL while its store is down (a
database whose directory is a file), with its values in the spill file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from tracklight import TracklightWarning, runs
from tracklight.loggers.mlflow import MLFlowLogger

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating one takes seconds); each test uses its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def client_of(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def one_run(uri: str, experiment: str) -> Any:
    client = client_of(uri)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(found) == 1, [run.info.run_id for run in found]
    return found[0]


def tracklight_points(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    frame = runs.open(f"{uri}#{run_id}").metric(key)
    return list(zip(frame["step"].tolist(), frame["value"].tolist(), strict=True))


def log_steps(logger: MLFlowLogger, steps: range, offset: float = 0.0) -> None:
    for step in steps:
        logger.log_metrics({"loss": offset + step}, step=step)


def test_a_second_logger_continues_the_run_each_step_once(uri: str, tmp_path: Path) -> None:
    options = {"experiment_name": "resume", "tracking_uri": uri, "save_dir": str(tmp_path / "local")}
    first = MLFlowLogger(**options)
    assert first.version  # Lightning reads it at setup: the run exists from then on
    log_steps(first, range(5))
    state = first.state_dict()  # as a checkpoint at step 4 takes it
    log_steps(first, range(5, 10))
    first.finalize("success")
    assert state["logger"] == "MLFlowLogger" and state["last_step"] == 4 and state["run_id"] == first.run_id
    assert json.loads(json.dumps(state)) == state  # plain data

    second = MLFlowLogger(**options)
    second.load_state_dict(state)
    log_steps(second, range(5, 13), offset=100.0)
    second.finalize("success")

    assert second.run_id == first.run_id
    run = one_run(uri, "resume")
    assert run.info.status == "FINISHED"
    marks = {key: value for key, value in run.data.tags.items() if key.startswith("tracklight.resumed.")}
    assert list(marks.values()) == ["4"]
    # MLflow keeps every point: the first process's steps 5..9 are still there, under the mark.
    history = client_of(uri).get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == sorted([*range(10), *range(5, 13)])
    expected = [(step, float(step)) for step in range(5)] + [(step, 100.0 + step) for step in range(5, 13)]
    assert tracklight_points(uri, run.info.run_id, "loss") == expected


def test_resume_twice_and_a_state_taken_before_anything_was_logged(uri: str, tmp_path: Path) -> None:
    options = {"experiment_name": "twice", "tracking_uri": uri, "save_dir": str(tmp_path / "local")}
    first = MLFlowLogger(**options)
    first.log_hyperparams({"lr": 0.1})
    empty = first.state_dict()
    log_steps(first, range(3))
    first.finalize("success")
    assert empty["last_step"] is None

    second = MLFlowLogger(**options)
    second.load_state_dict(empty)  # nothing was logged at the checkpoint: all of the first process's steps go
    log_steps(second, range(6), offset=10.0)
    state = second.state_dict()
    log_steps(second, range(6, 8), offset=10.0)
    second.finalize("success")

    third = MLFlowLogger(**options)
    third.load_state_dict(state)
    log_steps(third, range(6, 9), offset=20.0)
    third.finalize("success")

    run = one_run(uri, "twice")
    expected = [(step, 10.0 + step) for step in range(6)] + [(step, 20.0 + step) for step in range(6, 9)]
    assert tracklight_points(uri, run.info.run_id, "loss") == expected


def test_explicit_run_id_continue_run_false_and_unusable_states(uri: str, tmp_path: Path) -> None:
    options = {"experiment_name": "rules", "tracking_uri": uri, "save_dir": str(tmp_path / "local")}
    first = MLFlowLogger(**options)
    log_steps(first, range(3))
    first.finalize("success")
    other = MLFlowLogger(**options)
    log_steps(other, range(1))
    other.finalize("success")
    state = first.state_dict()

    explicit = MLFlowLogger(run_id=other.run_id, **options)
    explicit.load_state_dict(state)  # the run_id given wins, silently
    assert explicit.run_id == other.run_id

    fresh = MLFlowLogger(continue_run=False, **options)
    fresh.load_state_dict(state)
    assert fresh.run_id not in (first.run_id, other.run_id)

    for bad, reason in [
        ({"logger": "WandbLogger", "id": "abc", "last_step": 1}, "state of 'WandbLogger'"),
        ({"logger": "MLFlowLogger", "last_step": 1}, "names no run"),
        ({**state, "last_step": "three"}, "not an integer"),
        ({**state, "tracking_uri": "http://elsewhere:5000"}, "same tracking_uri"),
    ]:
        logger = MLFlowLogger(**options)
        with pytest.warns(TracklightWarning, match=reason):
            logger.load_state_dict(bad)
        assert logger.run_id not in (first.run_id, other.run_id)
        logger.finalize("success")

    gone = MLFlowLogger(**options)
    gone.load_state_dict({**state, "run_id": "0" * 32})
    with pytest.warns(TracklightWarning, match="has no run 0000"):
        assert gone.run_id not in (None, first.run_id)

    started = MLFlowLogger(**options)
    log_steps(started, range(1))
    with pytest.warns(TracklightWarning, match="after the run started"):
        started.load_state_dict(state)
    assert started.run_id != first.run_id
    for logger in (explicit, fresh, gone, started):
        logger.finalize("success")


def test_fabric_save_and_load_continue_the_run(uri: str, tmp_path: Path) -> None:
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator="cpu", devices=1)
    options = {"experiment_name": "fabric", "tracking_uri": uri, "save_dir": str(tmp_path / "local")}
    first = MLFlowLogger(**options)
    log_steps(first, range(4))
    fabric.save(tmp_path / "fabric.ckpt", {"logger": first, "step": 3})  # Fabric stores first.state_dict()
    log_steps(first, range(4, 6))
    first.finalize("success")

    second = MLFlowLogger(**options)
    rest = fabric.load(tmp_path / "fabric.ckpt", {"logger": second})  # Fabric calls second.load_state_dict()
    assert rest == {"step": 3}
    log_steps(second, range(4, 7), offset=50.0)
    second.finalize("success")
    run = one_run(uri, "fabric")
    expected = [(step, float(step)) for step in range(4)] + [(step, 50.0 + step) for step in range(4, 7)]
    assert tracklight_points(uri, run.info.run_id, "loss") == expected


_KILLED = """
import time
import json
from tracklight.loggers.mlflow import MLFlowLogger
logger = MLFlowLogger("killed", tracking_uri={uri!r}, save_dir={local!r}, delivery_timeout=0.5)
for step in range(8):
    logger.log_metrics({{"loss": float(step)}}, step=step)
    if step == 4:
        with open({state_path!r}, "w") as handle:
            json.dump(logger.state_dict(), handle)
while logger.flush(1.0).kept["metric"] < 8:  # the store is down: the values go to the spill file
    pass
print("spilled", flush=True)
time.sleep(60)
"""


def test_values_spilled_by_a_killed_process_go_to_the_continued_run(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("not a directory")  # the store cannot be opened until this file is removed
    uri = f"sqlite:///{blocker / 'mlflow.db'}"
    local, state_path = str(tmp_path / "local"), str(tmp_path / "state.json")
    script = textwrap.dedent(_KILLED.format(uri=uri, local=local, state_path=state_path))
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "spilled"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    with open(state_path) as handle:
        state = json.load(handle)
    assert state["run_id"] is None and state["last_step"] == 4  # the run was never created
    spills = list((tmp_path / "local" / "tracklight-spill").glob("mlflow-*.jsonl"))
    assert len(spills) == 1

    blocker.unlink()  # the store is back
    resumed = MLFlowLogger("killed", tracking_uri=uri, save_dir=local)
    resumed.load_state_dict(state)
    with pytest.warns(TracklightWarning, match=r"kept 8 values in .*mlflow-.*\.jsonl.*each once"):
        log_steps(resumed, range(5, 10), offset=100.0)
    resumed.finalize("success")
    assert resumed.delivery_report is not None and resumed.delivery_report.complete
    assert not spills[0].exists()

    run = one_run(uri, "killed")
    history = client_of(uri).get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == sorted([*range(8), *range(5, 10)])  # every value once
    expected = [(step, float(step)) for step in range(5)] + [(step, 100.0 + step) for step in range(5, 10)]
    assert tracklight_points(uri, run.info.run_id, "loss") == expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = runs.open(f"{uri}#{run.info.run_id}").info()
    assert info.steps == 9


def test_state_dict_never_waits_for_the_store(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("not a directory")
    logger = MLFlowLogger("wait", tracking_uri=f"sqlite:///{blocker / 'mlflow.db'}", save_dir=str(tmp_path))
    logger.log_metrics({"loss": 1.0}, step=3)
    started = time.perf_counter()
    state = logger.state_dict()
    assert time.perf_counter() - started < 0.05
    assert state["last_step"] == 3 and state["local_id"]
    blocker.unlink()
    logger.finalize("success")


def test_through_a_tracking_server(mlflow_server: Any, tmp_path: Path) -> None:
    """Over HTTP (MLflow's REST API): the run continued, its points read back through the server, each step once;
    a state whose run the server does not have gives a new run."""
    url = mlflow_server.running().url
    options = {"experiment_name": "resume-http", "tracking_uri": url, "save_dir": str(tmp_path / "local")}
    first = MLFlowLogger(**options)
    assert first.version
    log_steps(first, range(4))
    state = first.state_dict()
    log_steps(first, range(4, 7))
    first.finalize("success")

    second = MLFlowLogger(**options)
    second.load_state_dict(state)
    log_steps(second, range(4, 8), offset=100.0)
    second.finalize("success")
    assert second.run_id == first.run_id
    expected = [(step, float(step)) for step in range(4)] + [(step, 100.0 + step) for step in range(4, 8)]
    assert tracklight_points(url, first.run_id, "loss") == expected

    gone = MLFlowLogger(**options)
    gone.load_state_dict({**state, "run_id": "f" * 32})
    with pytest.warns(TracklightWarning, match="has no run ffff"):
        assert gone.run_id not in (None, first.run_id)
    gone.finalize("success")
