"""MLFlowLogger against a real ``mlflow server`` subprocess on 127.0.0.1 (SQLite backend, local artifacts).

The session's one server (conftest's ``mlflow_server``), on one port: the first test runs training
before it is started, a later one kills it (SIGKILL) in the middle of training and starts it again.
Everything is read back with ``MlflowClient`` from the server itself.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tracklight import TracklightWarning
from tracklight.loggers.mlflow import MLFlowLogger

sys.path.insert(0, str(Path(__file__).parent))
from _mlflow_server import MlflowServer

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(600)]


@pytest.fixture
def server(mlflow_server: MlflowServer) -> MlflowServer:
    """The session's server, as it is: tests call ``running(server)`` unless they need it down."""
    return mlflow_server


def running(server: MlflowServer) -> MlflowServer:
    return server.running()


def client(server: MlflowServer) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(server.url)


def steps_of(server: MlflowServer, run_id: str, key: str) -> dict[int, float]:
    return {metric.step: metric.value for metric in client(server).get_metric_history(run_id, key)}


def one_run(server: MlflowServer, experiment: str, run_name: str | None = None) -> Any:
    found = client(server).get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} on the server"
    runs = client(server).search_runs([found.experiment_id])
    runs = [run for run in runs if run_name is None or run.info.run_name == run_name]
    assert len(runs) == 1, [run.info.run_name for run in runs]
    return runs[0]


@pytest.fixture
def step_model(tiny_model: type) -> type:
    """Logs a per-step and per-epoch loss, and the global step as a value that says which step it came from."""

    class StepModel(tiny_model):  # type: ignore[misc, valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = self.layer(x).sub(y).pow(2).mean()
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            self.log("global_step_value", float(self.global_step))
            return loss

    return StepModel


# ---- the server is not up at the start ------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:MLflow at .* is not answering")
def test_server_not_up_at_the_start(server: MlflowServer, tmp_path: Path, step_model: type, make_trainer: Any) -> None:
    if server.answers():  # run out of order: take it down so this test starts without one
        server.stop()

    # A gives up waiting at once: everything is kept on disk, with the one command that sends it later.
    kept = MLFlowLogger("down-at-start", tracking_uri=server.url, run_name="kept", save_dir=str(tmp_path / "a"),
                        delivery_timeout=0.5)  # fmt: skip
    with pytest.warns(TracklightWarning, match="python -m tracklight.delivery replay"):
        make_trainer(logger=kept, max_epochs=1).fit(step_model(lr=0.01))
    report = kept.delivery_report
    assert report is not None and report.kept["metric"] > 0 and report.kept["status"] == 1

    # B starts while the server is down, and the server comes up while it trains: the run is created in the
    # background, during training, and finalize sends the rest.
    from lightning.pytorch.callbacks import Callback

    waited = MLFlowLogger("down-at-start", tracking_uri=server.url, run_name="waited", save_dir=str(tmp_path / "b"),
                          delivery_timeout=300)  # fmt: skip

    class ServerComesUp(Callback):
        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            if trainer.current_epoch == 0:
                server.start()  # a long epoch: the server is up before it ends
                deadline = time.monotonic() + 120
                while not waited._delivery.opened and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert waited._delivery.opened, "the run was not created in the background once the server answered"

    trainer = make_trainer(logger=waited, max_epochs=2, callbacks=[ServerComesUp()])
    trainer.fit(step_model(lr=0.02))
    assert trainer.state.finished and waited.delivery_report is not None and waited.delivery_report.complete
    # Checkpoints of a run started without a server still get a directory of their own.
    assert Path(trainer.checkpoint_callback.dirpath).parts[-3:-1] == ("down-at-start", f"local-{waited._local_id}")
    run = one_run(server, "down-at-start", "waited")
    assert run.info.status == "FINISHED" and run.data.params["lr"] == "0.02"
    assert steps_of(server, run.info.run_id, "global_step_value") == {step: float(step) for step in range(8)}
    assert sorted(steps_of(server, run.info.run_id, "train_loss_epoch")) == [3, 7]

    # Now the command sends what A kept.
    command = report.command.split()
    done = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    run = one_run(server, "down-at-start", "kept")
    assert run.info.status == "FINISHED" and run.data.params["lr"] == "0.01"
    assert steps_of(server, run.info.run_id, "global_step_value") == {step: float(step) for step in range(4)}
    assert not Path(report.spill_path).exists()


# ---- the Lightning docs' usage ----------------------------------------------------------------------------


def test_lightning_docs_usage(
    server: MlflowServer, tmp_path: Path, monkeypatch: Any, step_model: type, make_trainer: Any
) -> None:
    running(server)
    monkeypatch.chdir(tmp_path)  # the default save_dir, ./mlruns, must stay unused when all goes well
    mlf_logger = MLFlowLogger(experiment_name="my_experiment", tracking_uri=server.url, run_name="run_1")
    trainer = make_trainer(logger=mlf_logger, max_epochs=2)
    trainer.fit(step_model(lr=0.05))

    run = one_run(server, "my_experiment", "run_1")
    assert (mlf_logger.name, mlf_logger.version) == (run.info.experiment_id, run.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.05", "hidden": "4", "config": "None"}
    assert sorted(steps_of(server, run.info.run_id, "train_loss_step")) == list(range(8))  # per step
    assert sorted(steps_of(server, run.info.run_id, "train_loss_epoch")) == [3, 7]  # per epoch
    assert sorted(steps_of(server, run.info.run_id, "val_loss")) == [3, 7]
    assert not (tmp_path / "mlruns").exists()


def test_checkpoints_and_media_through_the_servers_artifact_store(
    server: MlflowServer, tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    running(server)
    logger = MLFlowLogger("artifacts", tracking_uri=server.url, log_model="all", save_dir=str(tmp_path / "local"))
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1)
    make_trainer(logger=logger, max_epochs=2, callbacks=[checkpoints]).fit(tiny_model())
    logger.log_image("sample", np.zeros((4, 4, 3), dtype=np.uint8), step=0)
    logger.log_text("notes", "over http", step=0)
    logger.finalize("success")

    run_id = logger.run_id
    assert run_id is not None
    names = {info.path for info in client(server).list_artifacts(run_id)}
    assert {"epoch=0-step=4", "epoch=1-step=8", "images", "text"} <= names
    got = client(server).download_artifacts(run_id, "epoch=1-step=8/epoch=1-step=8.ckpt", str(tmp_path / "down"))
    assert Path(got).read_bytes() == (tmp_path / "ckpt" / "epoch=1-step=8.ckpt").read_bytes()
    text = client(server).download_artifacts(run_id, "text/notes/step_0.txt", str(tmp_path / "down"))
    assert Path(text).read_text() == "over http"


# ---- the server is killed in the middle of training -------------------------------------------------------


def test_server_killed_mid_run_and_restarted(
    server: MlflowServer, tmp_path: Path, step_model: type, make_trainer: Any
) -> None:
    from lightning.pytorch.callbacks import Callback

    running(server)
    logger = MLFlowLogger("outage", tracking_uri=server.url, save_dir=str(tmp_path / "local"), delivery_timeout=300)

    class Outage(Callback):
        """Kills the server at step 20, starts it again 10 s later, and trains on until the values kept on disk
        meanwhile were sent: recovery happens during training, not in finalize."""

        def __init__(self) -> None:
            self.spilled = self.back = False
            self.deadline = time.monotonic() + 300

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            time.sleep(0.01)
            step = trainer.global_step
            if step == 20:
                server.kill()
                threading.Timer(10.0, server.start, kwargs={"wait": False}).start()
            spill = Path(logger._delivery.spill_path)
            self.spilled = self.spilled or spill.exists()
            if step > 20 and step % 25 == 0 and not self.back:
                self.back = server.answers()
            if (self.back and self.spilled and not spill.exists()) or time.monotonic() > self.deadline:
                trainer.should_stop = True

    outage = Outage()
    trainer = make_trainer(
        logger=logger, max_steps=100_000, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[outage], enable_checkpointing=False,
    )  # fmt: skip
    with pytest.warns(TracklightWarning, match="is not answering"):
        trainer.fit(step_model())  # training never raises

    assert outage.spilled and outage.back, "the outage should have kept values on disk, and the server come back"
    assert time.monotonic() < outage.deadline, "the kept values were not sent while training went on"
    assert trainer.state.finished and logger.delivery_report is not None and logger.delivery_report.complete
    steps = trainer.global_step
    run = one_run(server, "outage")
    assert run.info.status == "FINISHED"
    assert steps_of(server, run.info.run_id, "global_step_value") == {step: float(step) for step in range(steps)}
    assert sorted(steps_of(server, run.info.run_id, "train_loss_step")) == list(range(steps))
    assert set(range(3, steps, 4)) <= set(steps_of(server, run.info.run_id, "train_loss_epoch"))
