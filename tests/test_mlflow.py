"""MLFlowLogger against ``sqlite:///`` stores opened in this process, read back with ``MlflowClient``.

The HTTP path (a real ``mlflow server`` subprocess, killed and restarted) is in test_mlflow_server.py.
The faults here are real too: a store whose database cannot be created (its directory is a file) until
the file is removed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tracklight import TracklightWarning
from tracklight.loggers.mlflow import MLFlowLogger, mlflow_key

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating one costs about a second); each test uses its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture
def make_logger(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """``make_logger(**overrides)``: an MLFlowLogger on the module's store, in an experiment named after the test."""

    def make(**overrides: Any) -> MLFlowLogger:
        options: dict[str, Any] = {
            "experiment_name": request.node.name,
            "tracking_uri": store,
            "save_dir": str(tmp_path / "local"),
        }
        options.update(overrides)
        return MLFlowLogger(**options)

    return make


def history(logger: MLFlowLogger, key: str) -> dict[int, float]:
    return {metric.step: metric.value for metric in logger.experiment.get_metric_history(logger.run_id, key)}


def artifact_paths(client: Any, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for info in client.list_artifacts(run_id, path):
        found.extend(artifact_paths(client, run_id, info.path) if info.is_dir else [info.path])
    return sorted(found)


def wait_until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ---- the one key rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("train/loss", "train/loss"),
        ("val acc-top.5", "val acc-top.5"),
        ("[some_metric]", "some_metric"),  # Lightning's own example
        ("acc@1", "acc1"),
        ("val:acc", "valacc"),
        ("loss(λ=0.1)", "loss0.1"),
        ("a//b", "a/_/b"),
        ("/a/", "_/a/_"),
        ("a/./b/../c", "a/_/b/_/c"),
        ("", "_"),
        ("@@", "_"),
    ],
)
def test_mlflow_key_rule(key: str, expected: str) -> None:
    assert mlflow_key(key) == expected


def test_mlflow_key_rule_keeps_long_keys_apart() -> None:
    first, second = mlflow_key("k" * 300 + "1"), mlflow_key("k" * 300 + "2")
    assert len(first) == len(second) == 250 and first != second and first.startswith("k" * 241 + "_")


def test_refused_metric_keys_are_cleaned_as_lightning_does_and_collisions_reported(make_logger: Any) -> None:
    logger = make_logger(prefix="train")
    # Lightning's category and words: RuntimeWarning, "special characters in metric name".
    renamed = "special characters in metric name.*'train-\\[top1\\]' is logged as 'train-top1'"
    with pytest.warns(RuntimeWarning, match=renamed):
        logger.log_metrics({"[top1]": 0.5}, step=0)
    with pytest.warns(TracklightWarning, match="'train-\\[top1\\]' and 'train-top@1' both become 'train-top1'"):
        logger.log_metrics({"top@1": 0.25}, step=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a key seen before is mapped silently
        logger.log_metrics({"[top1]": 0.75, "top@1": 0.125, "loss": 2.0}, step=1)
    logger.finalize("success")
    assert history(logger, "train-top1") == {0: 0.5, 1: 0.75}
    assert history(logger, "train-top1_2") == {0: 0.25, 1: 0.125}
    assert history(logger, "train-loss") == {1: 2.0}


# ---- a real Trainer, the embedded store --------------------------------------------------------------


def test_trainer_run_in_the_embedded_store(
    tmp_path: Path, monkeypatch: Any, tiny_model: type, make_trainer: Any
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    save_dir = tmp_path / "mlruns"
    logger = MLFlowLogger(experiment_name="lightning_logs", run_name="embedded", save_dir=str(save_dir))
    trainer = make_trainer(logger=logger, max_epochs=2)
    trainer.fit(tiny_model(lr=0.05, config={"optimizer": {"name": "sgd"}}))

    assert (save_dir / "mlflow.db").is_file() and logger.save_dir == str(save_dir)
    client = logger.experiment
    run = client.get_run(logger.version)
    assert logger.name == run.info.experiment_id == client.get_experiment_by_name("lightning_logs").experiment_id
    assert run.info.status == "FINISHED" and run.info.run_name == "embedded"
    assert run.data.params == {"lr": "0.05", "hidden": "4", "config/optimizer/name": "sgd"}
    assert sorted(history(logger, "train_loss")) == list(range(8))  # every step
    assert sorted(history(logger, "val_loss")) == [3, 7]  # every epoch
    assert history(logger, "epoch")[0] == 0.0 and history(logger, "epoch")[7] == 1.0
    assert run.info.artifact_uri.startswith((save_dir / "artifacts").as_uri())
    # Checkpoints go where Lightning puts them for a local store: <save_dir>/<experiment id>/<run id>/checkpoints
    checkpoint = Path(trainer.checkpoint_callback.best_model_path)
    assert checkpoint.parent == save_dir / logger.name / logger.version / "checkpoints"
    assert not (save_dir / "tracklight-spill").exists()


def test_tracking_uri_defaults_to_the_environment(tmp_path: Path, monkeypatch: Any, store: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    logger = MLFlowLogger("from-env", save_dir=str(tmp_path / "unused"))
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert logger.save_dir is None and history(logger, "loss") == {0: 1.0}
    assert not (tmp_path / "unused").exists()


# ---- no process-wide surprises: the environment, MLflow's default URI, threads ----------------------------


def test_building_a_logger_leaves_the_environment_alone(tmp_path: Path, store: str) -> None:
    before = dict(os.environ)
    MLFlowLogger("quiet", save_dir=str(tmp_path / "embedded"))
    MLFlowLogger("quiet", tracking_uri=store, save_dir=str(tmp_path / "local"))
    assert dict(os.environ) == before  # MLflow's telemetry setting included: tracklight leaves it to the user


def test_the_tracking_uri_becomes_mlflows_default_so_user_mlflow_calls_reach_the_run(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    import mlflow

    logger = MLFlowLogger("user-calls", save_dir=str(tmp_path / "embedded"))  # the embedded store
    make_trainer(logger=logger).fit(tiny_model())
    database = tmp_path / "embedded" / "mlflow.db"
    assert mlflow.get_tracking_uri() == f"sqlite:///{database}"  # as Lightning's logger sets it
    report = tmp_path / "report.txt"
    report.write_text("written by the user after training")
    mlflow.log_artifact(str(report), run_id=logger.run_id)  # the user's own call, after fit
    assert artifact_paths(logger.experiment, logger.run_id) == ["report.txt"]
    # The environment stays as it was (MLflow would export the URI): a second logger gets its own embedded store.
    assert "MLFLOW_TRACKING_URI" not in os.environ
    second = MLFlowLogger("user-calls", save_dir=str(tmp_path / "second"))
    assert second._tracking_uri == f"sqlite:///{tmp_path / 'second' / 'mlflow.db'}"


def test_no_tracklight_thread_outlives_finalize_and_fit_then_validate_is_one_run(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys, threading
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import _tiny_module_class
        from lightning.pytorch import Trainer
        from tracklight.loggers.mlflow import MLFlowLogger

        def ours():
            return sorted(thread.name for thread in threading.enumerate() if thread.name.startswith("tracklight-"))

        logger = MLFlowLogger("threads", save_dir={str(tmp_path)!r})
        trainer = Trainer(logger=logger, max_epochs=1, enable_progress_bar=False, enable_model_summary=False,
                          default_root_dir={str(tmp_path)!r}, log_every_n_steps=1)
        model = _tiny_module_class()()
        trainer.fit(model)
        after_fit = (ours(), logger.run_id)
        trainer.validate(model)  # logging again after finalize: the worker starts again, on the same run
        print(json.dumps([after_fit, (ours(), logger.run_id)]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (threads_after_fit, run_id), (threads_after_validate, same_run_id) = json.loads(done.stdout.splitlines()[-1])
    assert threads_after_fit == [] and threads_after_validate == []
    assert run_id is not None and same_run_id == run_id
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("threads").experiment_id])
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert {"train_loss", "val_loss"} <= set(run.data.metrics)
    assert len(client.get_metric_history(run_id, "val_loss")) == 2  # fit's and validate's, in the one run


# ---- hyperparameters ------------------------------------------------------------------------------------


def test_hyperparameters_flattened_long_values_and_logging_again(make_logger: Any) -> None:
    logger = make_logger()
    logger.log_hyperparams({"lr": 0.1, "model": {"layers": [64, 32], "act": None}, "notes": "n" * 3000})
    with pytest.warns(TracklightWarning, match="'prompt' is 7000 characters long; MLflow keeps at most 6000"):
        logger.log_hyperparams({"prompt": "p" * 7000})
        logger.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logger.log_hyperparams({"lr": 0.1})  # the same value again: harmless and silent
        logger.flush()
    with pytest.warns(TracklightWarning, match="'lr' was logged as '0.1' and now as '0.2'.*the first one stays"):
        logger.log_hyperparams({"lr": 0.2, "seed": 7})  # the rest of the call still goes through
        logger.flush()
    logger.finalize("success")
    params = logger.experiment.get_run(logger.run_id).data.params
    assert params == {
        "lr": "0.1",
        "model/layers": "[64, 32]",
        "model/act": "None",
        "notes": "n" * 3000,  # Lightning cuts at 250
        "prompt": "p" * 6000,
        "seed": "7",
    }


# ---- run lifecycle --------------------------------------------------------------------------------------


def test_finalize_status_follows_lightning(make_logger: Any) -> None:
    for given, expected in [
        ("success", "FINISHED"),
        ("failed", "FAILED"),
        ("aborted", "KILLED"),
        ("finished", "FINISHED"),
    ]:
        logger = make_logger()
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.finalize(given)
        assert logger.experiment.get_run(logger.run_id).info.status == expected, given


def test_a_seeded_random_sequence_is_left_alone(make_logger: Any) -> None:
    # MLflow's store names an unnamed run with the global `random`: on the worker, that would move a seeded
    # script's sequence at an unpredictable moment. The run still gets a name in MLflow's style.
    import random

    random.seed(0)
    state = random.getstate()
    logger = make_logger()
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert random.getstate() == state
    name = logger.experiment.get_run(logger.run_id).info.run_name
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d+", name), name


def test_a_failing_training_run_is_marked_failed(make_logger: Any, tiny_model: type, make_trainer: Any) -> None:
    class Exploding(tiny_model):  # type: ignore[misc, valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if batch_idx == 2:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    logger = make_logger()
    with pytest.raises(RuntimeError, match="boom"):
        make_trainer(logger=logger).fit(Exploding())
    assert logger.experiment.get_run(logger.run_id).info.status == "FAILED"
    assert sorted(history(logger, "train_loss")) == [0, 1]


def test_resuming_by_run_id_appends_to_the_run(make_logger: Any) -> None:
    first = make_logger()
    first.log_hyperparams({"lr": 0.1})
    first.log_metrics({"loss": 3.0}, step=0)
    first.finalize("success")

    resumed = make_logger(run_id=first.run_id)
    assert (resumed.name, resumed.version) == (first.name, first.version)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed.log_hyperparams({"lr": 0.1, "batch_size": 8})  # the params it has already: harmless
        resumed.log_metrics({"loss": 2.0}, step=1)
        resumed.flush()
    assert resumed.experiment.get_run(first.run_id).info.status == "RUNNING"
    resumed.finalize("success")
    run = resumed.experiment.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1", "batch_size": "8"}
    assert history(resumed, "loss") == {0: 3.0, 1: 2.0}
    assert len(resumed.experiment.search_runs([first.name])) == 1


def test_synchronous_delivers_before_returning(make_logger: Any) -> None:
    logger = make_logger(synchronous=True)
    logger.log_metrics({"loss": 1.0}, step=0)
    assert history(logger, "loss") == {0: 1.0}  # no flush, no finalize
    logger.finalize("success")


def test_rank_above_zero_creates_nothing(tmp_path: Path, set_rank: Any) -> None:
    from tracklight.loggers import DummyExperiment

    set_rank(1)
    logger = MLFlowLogger(save_dir=str(tmp_path / "mlruns"))
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert isinstance(logger.experiment, DummyExperiment)
    assert (logger.name, logger.version) == (None, None)
    assert not (tmp_path / "mlruns").exists()


# ---- checkpoints and media ------------------------------------------------------------------------------


def _fit_with_checkpoints(
    logger: MLFlowLogger, tmp_path: Path, tiny_model: type, make_trainer: Any, **checkpoint: Any
) -> list[str]:
    """Three epochs scored 0, 1, 2 (so epoch 0 is best), checkpointed; what the run held when epoch 2 began."""
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint

    seen: list[str] = []

    class WatchUploads(Callback):
        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            if trainer.current_epoch == 2:
                logger.flush()  # whatever was queued by now is on the run
                seen.extend(artifact_paths(logger.experiment, logger.run_id))

    class Scored(tiny_model):  # type: ignore[misc, valid-type]
        def on_train_epoch_end(self) -> None:
            self.log("score", float(self.current_epoch))

    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, **checkpoint)
    make_trainer(logger=logger, max_epochs=3, callbacks=[checkpoints, WatchUploads()]).fit(Scored())
    return seen


def _check_uploaded(logger: MLFlowLogger, tmp_path: Path, folders: set[str]) -> list[str]:
    paths = artifact_paths(logger.experiment, logger.run_id)
    assert {path.split("/")[0] for path in paths} == folders
    for folder in folders:
        assert {f"{folder}/metadata.yaml", f"{folder}/aliases.txt", f"{folder}/{folder}.ckpt"} <= set(paths)
    downloaded = logger.experiment.download_artifacts(logger.run_id, "last/last.ckpt", str(tmp_path / "down"))
    assert Path(downloaded).read_bytes() == (tmp_path / "ckpt" / "last.ckpt").read_bytes()
    aliases = logger.experiment.download_artifacts(logger.run_id, "last/aliases.txt", str(tmp_path))
    assert Path(aliases).read_text() == "['latest']"
    assert not list((Path(logger._local_dir) / "tracklight-staging").rglob("*.ckpt"))  # copies removed
    return paths


def test_log_model_all_uploads_checkpoints_as_they_are_saved(
    make_logger: Any, tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    logger = make_logger(log_model="all")
    seen = _fit_with_checkpoints(logger, tmp_path, tiny_model, make_trainer, save_top_k=-1)
    assert "epoch=0-step=4/epoch=0-step=4.ckpt" in seen and "epoch=1-step=8/epoch=1-step=8.ckpt" in seen
    _check_uploaded(logger, tmp_path, {"epoch=0-step=4", "epoch=1-step=8", "epoch=2-step=12", "last"})


def test_log_model_true_uploads_once_at_the_end_as_lightning_does(
    make_logger: Any, tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    import yaml

    logger = make_logger(log_model=True)
    seen = _fit_with_checkpoints(logger, tmp_path, tiny_model, make_trainer, monitor="score", mode="min")
    assert not [path for path in seen if path.endswith(".ckpt")]  # nothing during training
    # At the end: the best (epoch 0, lowest score, also the top-1) and the last one, each once.
    _check_uploaded(logger, tmp_path, {"epoch=0-step=4", "last"})
    assert logger.delivery_report is not None and logger.delivery_report.delivered["artifact"] == 6
    metadata = logger.experiment.download_artifacts(logger.run_id, "epoch=0-step=4/metadata.yaml", str(tmp_path))
    recorded = yaml.safe_load(Path(metadata).read_text())
    assert recorded["score"] == 0.0 and type(recorded["score"]) is float  # the tensor's value, as logged
    assert recorded["Checkpoint"]["monitor"] == "score" and recorded["original_filename"] == "epoch=0-step=4.ckpt"
    logger.finalize("success")  # finalize again (trainer.test after fit): nothing uploaded twice
    assert logger.delivery_report is not None and logger.delivery_report.delivered["artifact"] == 6


def test_a_checkpoints_score_keeps_its_type(tmp_path: Path) -> None:
    import torch
    import yaml

    from tracklight.loggers.mlflow.artifacts import ArtifactStager

    class Callback:  # what ModelCheckpoint exposes, with an integer score
        best_model_path = last_model_path = str(tmp_path / "epoch=0.ckpt")
        best_model_score = current_score = torch.tensor(3)
        best_k_models = {best_model_path: best_model_score}
        monitor, save_top_k = "count", 1

    Path(Callback.best_model_path).write_bytes(b"weights")
    items = ArtifactStager(str(tmp_path / "staging")).checkpoints(Callback())
    metadata = yaml.safe_load(Path(next(item["path"] for item in items if item["path"].endswith(".yaml"))).read_text())
    assert metadata["score"] == 3 and type(metadata["score"]) is int  # an integer stays one, as with Lightning
    assert metadata["Checkpoint"] == {"monitor": "count", "save_top_k": 1}


@pytest.mark.filterwarnings("ignore:MLFlowLogger. MLflow images have no captions")
def test_media_become_run_artifacts(make_logger: Any, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    from PIL import Image as PILImage

    logger = make_logger()
    pixels = (np.arange(4 * 6 * 3) % 256).astype(np.uint8).reshape(4, 6, 3)
    logger.log_image("samples/input", pixels, step=3, caption="first")
    figure = plt.figure(figsize=(1, 1), dpi=20)
    logger.log_figure("curve", figure, step=1)
    logger.log_text("notes", "**hello**", step=0)
    logger.log_text("notes", "again", step=0)
    logger.log_table("predictions", columns=["x", "y"], data=[[1, "a"], [2, "b"]], step=5)
    logger.log_histogram("weights", np.arange(100.0), step=2, bins=4)
    logger.log_audio("clip", np.zeros(800), step=0, sample_rate=8000)
    logger.finalize("success")

    client, run_id = logger.experiment, logger.run_id
    paths = artifact_paths(client, run_id)

    def read(path: str) -> bytes:
        return Path(client.download_artifacts(run_id, path, str(tmp_path / "down"))).read_bytes()

    images = [path for path in paths if path.startswith("images/samples~input+step+3+")]
    assert len(images) == 2 and {Path(path).suffix for path in images} == {".png", ".webp"}
    png = next(path for path in images if path.endswith(".png"))
    with PILImage.open(client.download_artifacts(run_id, png, str(tmp_path))) as image:
        assert np.array_equal(np.asarray(image), pixels)
    assert any(path.startswith("images/curve+step+1+") and path.endswith(".png") for path in paths)
    assert client.get_run(run_id).data.tags["mlflow.loggedImages"] == "True"
    assert read("text/notes/step_0.txt") == b"**hello**" and read("text/notes/step_0_1.txt") == b"again"
    assert json.loads(read("tables/predictions/step_5.json")) == {"columns": ["x", "y"], "data": [[1, "a"], [2, "b"]]}
    histogram = json.loads(read("histograms/weights/step_2.json"))
    assert [row[2] for row in histogram["data"]] == [25, 25, 25, 25] and histogram["num"] == 100
    assert read("audio/clip/step_0.wav")[:4] == b"RIFF"


# ---- faults: a store that cannot be opened ----------------------------------------------------------------


def blocked_store(tmp_path: Path) -> tuple[str, Path]:
    """A store whose database directory is a file, so MLflow cannot open it until the file is removed."""
    blocker = tmp_path / "blocked"
    blocker.write_text("not a directory")
    return f"sqlite:///{blocker / 'mlflow.db'}", blocker


def test_store_down_keeps_everything_and_the_replay_command_sends_it(tmp_path: Path) -> None:
    uri, blocker = blocked_store(tmp_path)
    logger = MLFlowLogger("kept", tracking_uri=uri, save_dir=str(tmp_path / "local"), delivery_timeout=0.5)
    with pytest.warns(TracklightWarning, match="is not answering"):
        assert logger.run_id is None  # the store cannot be reached: nothing waits for it
    assert logger.version.startswith("local-") and logger.name == "kept"
    logger.log_hyperparams({"lr": 0.1})
    for step in range(50):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    logger.log_text("notes", "kept too", step=0)
    with pytest.warns(TracklightWarning, match="python -m tracklight.delivery replay"):
        logger.finalize("success")
    report = logger.delivery_report
    assert report is not None and report.kept == Counter(metric=50, param=1, artifact=1, status=1)
    spill = Path(report.spill_path)
    assert spill.is_file() and spill.is_relative_to(tmp_path / "local" / "tracklight-spill")

    blocker.unlink()  # the store can be opened now
    command = report.command.split()
    assert command[:4] == ["python", "-m", "tracklight.delivery", "replay"]
    done = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Delivered everything" in done.stdout and not spill.exists()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("kept").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"}
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 50
    assert artifact_paths(client, run.info.run_id) == ["text/notes/step_0.txt"]


def test_store_back_before_finalize_gets_everything(tmp_path: Path) -> None:
    uri, blocker = blocked_store(tmp_path)
    logger = MLFlowLogger("back", tracking_uri=uri, save_dir=str(tmp_path / "local"))
    with pytest.warns(TracklightWarning, match="is not answering"):
        assert logger.run_id is None
    for step in range(20):
        logger.log_metrics({"loss": float(step)}, step=step)
    blocker.unlink()
    logger.finalize("success")
    assert logger.delivery_report is not None and logger.delivery_report.complete
    assert logger.run_id is not None and history(logger, "loss") == {step: float(step) for step in range(20)}


def test_values_logged_without_finalize_are_delivered_at_exit(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = textwrap.dedent(
        f"""
        from tracklight.loggers.mlflow import MLFlowLogger
        logger = MLFlowLogger("exit", tracking_uri={uri!r}, save_dir={str(tmp_path)!r})
        for step in range(10):
            logger.log_metrics({{"loss": float(step)}}, step=step)
        print(logger.version)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    assert done.returncode == 0, done.stderr
    from mlflow.tracking import MlflowClient

    points = MlflowClient(uri).get_metric_history(done.stdout.split()[-1], "loss")
    assert sorted(metric.step for metric in points) == list(range(10))
