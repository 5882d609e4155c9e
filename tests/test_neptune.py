"""NeptuneLogger with the real neptune client: offline runs read back from their operation log, debug runs
read back with ``fetch``."""

from __future__ import annotations

import csv
import io
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _comet_neptune_readers import (
    HANGING_NETWORK,
    NeptuneRun,
    assert_steps_increase,
    neptune_runs,
    refuse_network,
    stop_started_runs,
)
from tracklight import TracklightWarning
from tracklight.loggers import DummyExperiment
from tracklight.loggers.neptune import NeptuneArgumentError, NeptuneLogger
from tracklight.loggers.neptune.steps import SeriesSteps

QUIET = {"capture_stdout": False, "capture_stderr": False, "capture_hardware_metrics": False}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return refuse_network(monkeypatch)


@pytest.fixture(autouse=True)
def neptune_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline by default, every run under ``tmp_path/.neptune``."""
    monkeypatch.chdir(tmp_path)
    for name in ("NEPTUNE_API_TOKEN", "NEPTUNE_PROJECT", "NEPTUNE_CUSTOM_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEPTUNE_MODE", "offline")
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", str(tmp_path / ".neptune"))
    return tmp_path / ".neptune"


@pytest.fixture(autouse=True)
def stop_runs(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Stop, after each test, the runs it started, as the client does at exit."""
    stop = stop_started_runs(monkeypatch)
    yield
    stop()


def only_run(data_directory: Path) -> NeptuneRun:
    runs = neptune_runs(data_directory)
    assert len(runs) == 1, [run.directory for run in runs]
    return runs[0]


def debug_run(**kwargs: Any) -> Any:
    import neptune

    return neptune.init_run(mode="debug", **QUIET, **kwargs)


# ---- the Lightning docs' usage, through a real Trainer ----------------------------------------------------


@pytest.mark.filterwarnings("ignore:Info \\(NVML\\)")  # Neptune's hardware metrics, on a machine without a GPU
def test_docs_usage_offline_fit_stores_step_and_epoch_metrics_and_hparams(
    neptune_env: Path, tiny_model: type, make_trainer: Any, no_network: list[str]
) -> None:
    neptune_logger = NeptuneLogger(api_key="YOUR_API_KEY", project="username/project-name", name="experiment-1")
    trainer = make_trainer(logger=neptune_logger, max_epochs=2)
    trainer.fit(tiny_model())

    run = only_run(neptune_env)
    atoms = run.atoms()
    assert atoms["sys/name"] == "experiment-1" == neptune_logger.name
    assert atoms["training/hyperparams/lr"] == 0.1
    assert atoms["training/hyperparams/hidden"] == 4
    assert atoms["training/hyperparams/config"] == "None"  # no Neptune type: stored as text, not dropped
    assert atoms["training/status"] == "success"
    train = run.series("training/train_loss")  # per step
    assert len(train) == 8 and all(np.isfinite(value) for _, value in train)
    assert len(run.series("training/val_loss")) == 2  # per epoch
    assert [value for _, value in run.series("training/epoch")] == [0.0] * 4 + [1.0] * 4
    assert assert_steps_increase(run) >= 3
    assert neptune_logger.version and neptune_logger.version in run.directory
    assert no_network == []


def test_debug_mode_read_back_with_fetch(tiny_model: type, make_trainer: Any) -> None:
    run = debug_run(name="debug-run")
    logger = NeptuneLogger(run=run)
    make_trainer(logger=logger, max_epochs=2).fit(tiny_model())

    assert logger.experiment is run and logger.name == "debug-run"
    train = run["training/train_loss"].fetch_values()["value"]
    assert len(train) == 8 and np.isfinite(train).all()
    assert len(run["training/val_loss"].fetch_values()) == 2
    assert run["training/hyperparams"].fetch() == {"lr": 0.1, "hidden": 4, "config": "None"}
    assert run["training/status"].fetch() == "success"
    assert run.get_state() == "started"  # the logger never stops a run it was given
    run.stop()


def test_finalize_leaves_the_run_open_and_the_user_stops_it() -> None:
    logger = NeptuneLogger(mode="debug", **QUIET)
    logger.log_metrics({"loss": 0.5, "nested": {"acc": 1}}, step=1)
    run = logger.run  # once the queued values reached it
    assert type(run).__name__ == "Run" and logger.experiment is run
    assert run["training/loss"].fetch_last() == 0.5
    assert run["training/nested/acc"].fetch_last() == 1.0
    logger.finalize("failed")
    assert run.get_state() == "started"  # as with Lightning's logger: the client stops it at exit
    assert run["training/status"].fetch() == "failed"
    logger.run.stop()  # how a user stops it earlier
    assert run.get_state() == "stopped"


def test_namespace_handler_as_run() -> None:
    run = debug_run()
    logger = NeptuneLogger(run=run["finetune"], prefix="")
    logger.log_metrics({"loss": 0.5}, step=0)
    logger.log_hyperparams({"lr": 0.01})
    logger.finalize("success")
    assert run["finetune/loss"].fetch_last() == 0.5
    assert run["finetune/hyperparams/lr"].fetch() == 0.01
    assert run["finetune/status"].fetch() == "success"
    run.stop()


def test_no_network_call_at_import_construction_logging_or_stop(tmp_path: Path) -> None:
    """In a fresh interpreter where the network hangs: importing, constructing, logging and stopping finish."""
    calls = tmp_path / "network.log"
    script = HANGING_NETWORK + textwrap.dedent(
        """
        from tracklight.loggers.neptune import NeptuneLogger
        logger = NeptuneLogger(api_key="YOUR_API_KEY", project="username/project-name", name="experiment-1")
        logger.log_hyperparams({"lr": 0.1})
        logger.log_metrics({"loss": 0.5}, step=1)
        logger.finalize("success")
        print("done")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEPTUNE_API")}
    result = subprocess.run(
        [sys.executable, "-c", script, str(calls)], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done" in result.stdout
    assert not calls.exists(), calls.read_text()
    assert only_run(tmp_path / ".neptune").series("training/loss") == [(1, 0.5)]


# ---- steps: Neptune rejects a value whose step does not increase --------------------------------------


def test_steps_increase_per_series_and_no_value_is_lost(neptune_env: Path) -> None:
    logger = NeptuneLogger(**QUIET)
    logger.log_metrics({"loss": 0.5, "epoch": 0}, step=10)
    logger.log_metrics({"val": 0.4, "epoch": 0}, step=10)  # `epoch` again at the same step: the same value
    with pytest.warns(TracklightWarning, match="'training/val' got a value at step 10 again") as caught:
        logger.log_metrics({"val": 0.3}, step=10)  # a new value at the same step
        logger.log_metrics({"val": 0.2}, step=4)  # a step from the past (e.g. a resumed run)
        logger.finalize("success")  # steps are given where values are handed to Neptune, on the worker
    assert len(caught) == 1  # once per series
    logger.log_metrics({"val": 0.1}, step=11)
    logger.log_metrics({"free": 1.0})  # no step: the series continues
    logger.log_metrics({"free": 2.0})
    logger.finalize("success")

    run = only_run(neptune_env)
    assert run.series("training/epoch") == [(10, 0.0)]
    val = run.series("training/val")
    assert [value for _, value in val] == [0.4, 0.3, 0.2, 0.1]
    assert val[0][0] == 10 and val[-1][0] == 11 and 10 < val[1][0] < val[2][0] < 11
    assert run.series("training/free") == [(0, 1.0), (1, 2.0)]
    assert_steps_increase(run)


def test_series_steps_rules() -> None:
    asked: list[str] = []

    def known_last(path: str) -> float | None:
        asked.append(path)
        return 3.0 if path == "resumed" else None

    steps = SeriesSteps()
    assert steps.next("fresh", None, 1.0, known_last) == 0 and steps.next("fresh", None, 1.0, known_last) == 1
    with pytest.warns(TracklightWarning, match="'resumed' got a value at step 2 after step 3"):
        assert 3 < steps.next("resumed", 2, 1.0, known_last) < 3.001
    assert steps.next("resumed", 10, 5.0, known_last) == 10
    assert steps.next("resumed", 10, 5.0, known_last) is None  # the same value at the same step: stored once
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the parts of one call move quietly
        assert steps.next("resumed", 10, None, known_last, quiet=True) > 10
    assert asked == ["fresh", "resumed"]  # the run is asked once per series


def test_resumed_run_continues_after_its_last_step() -> None:
    run = debug_run()
    for step in range(10):
        run["training/loss"].append(1.0, step=step)
    logger = NeptuneLogger(run=run)
    with pytest.warns(TracklightWarning, match=r"step 5 after step 9\. .*logged at step 9\.000001"):
        logger.log_metrics({"loss": 0.5}, step=5)
        logger.finalize("success")
    assert len(run["training/loss"].fetch_values()) == 11
    run.stop()


def test_nan_and_inf_are_kept_as_text(neptune_env: Path) -> None:
    logger = NeptuneLogger(**QUIET)
    with pytest.warns(TracklightWarning, match="'loss' was nan"):
        logger.log_metrics({"loss": float("nan")}, step=1)
        logger.finalize("success")
    logger.log_metrics({"loss": 0.5}, step=2)
    logger.log_metrics({"loss": float("inf")}, step=3)
    logger.finalize("success")
    run = only_run(neptune_env)
    assert run.series("training/loss") == [(2, 0.5)]
    assert run.series("training/loss_nonfinite") == [(1, "nan"), (3, "inf")]


def test_a_key_that_is_also_a_namespace_does_not_stop_training(neptune_env: Path) -> None:
    logger = NeptuneLogger(**QUIET)
    logger.log_metrics({"loss": 1.0}, step=0)
    with pytest.warns(TracklightWarning, match="could not log metric 'loss/val'.*Rename one"):
        logger.log_metrics({"loss/val": 2.0, "acc": 0.5}, step=1)
        logger.finalize("success")
    run = only_run(neptune_env)
    assert run.series("training/loss") == [(0, 1.0)]
    assert run.series("training/acc") == [(1, 0.5)]


# ---- hyperparameters ----------------------------------------------------------------------------------


def test_hyperparameters_unsupported_types_are_stringified(neptune_env: Path) -> None:
    from argparse import Namespace

    logger = NeptuneLogger(**QUIET)
    with pytest.warns(TracklightWarning, match="converted"):
        logger.log_hyperparams(
            Namespace(
                lr=0.1,
                layers=[64, 32],
                shape=(3, 4),
                optimizer={"name": "adam", "betas": (0.9, 0.99), "eps": None},
                flag=True,
                activation=np.tanh,
                nan=float("nan"),
            )
        )
    logger.finalize("success")
    atoms = only_run(neptune_env).atoms()
    assert atoms["training/hyperparams/lr"] == 0.1
    assert atoms["training/hyperparams/flag"] is True
    assert atoms["training/hyperparams/layers"] == "[64, 32]"
    assert atoms["training/hyperparams/shape"] == "[3, 4]"
    assert atoms["training/hyperparams/optimizer/name"] == "adam"
    assert atoms["training/hyperparams/optimizer/betas"] == "[0.9, 0.99]"
    assert atoms["training/hyperparams/optimizer/eps"] == "None"
    assert atoms["training/hyperparams/activation"] == "tanh"
    assert atoms["training/hyperparams/nan"] == "nan"


# ---- checkpoints --------------------------------------------------------------------------------------


def test_checkpoints_uploaded_as_saved_and_stale_ones_removed(
    neptune_env: Path, tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    class Improving(tiny_model):  # type: ignore[misc, valid-type]
        def on_validation_epoch_end(self) -> None:
            self.log("score", float(self.current_epoch))  # every epoch is the new best

    checkpoint = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", monitor="score", mode="max", save_top_k=1, save_last=True, filename="{epoch}"
    )
    logger = NeptuneLogger(**QUIET)
    make_trainer(logger=logger, max_epochs=3, callbacks=[checkpoint]).fit(Improving())

    run = only_run(neptune_env)
    uploads = [op["path"] for op in run.operations if op["type"] == "UploadFile" and op["path"][1] == "model"]
    assert [path[-1] for path in uploads] == ["epoch=0", "last", "epoch=1", "last", "epoch=2", "last"]
    deleted = ["/".join(op["path"]) for op in run.operations if op["type"] == "DeleteAttribute"]
    assert deleted == ["training/model/checkpoints/epoch=0", "training/model/checkpoints/epoch=1"]
    files = run.files()
    assert {path for path in files if path.startswith("training/")} == {
        "training/model/checkpoints/epoch=2",
        "training/model/checkpoints/last",
    }
    with open(checkpoint.best_model_path, "rb") as handle:  # the content as it was when saved
        assert files["training/model/checkpoints/epoch=2"] == handle.read()
    atoms = run.atoms()
    assert atoms["training/model/best_model_path"] == checkpoint.best_model_path
    assert atoms["training/model/best_model_score"] == 2.0


def test_log_model_checkpoints_false_uploads_nothing(
    neptune_env: Path, tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    logger = NeptuneLogger(log_model_checkpoints=False, **QUIET)
    make_trainer(logger=logger).fit(tiny_model())
    assert not any(
        op["type"] == "UploadFile" and op["path"][0] == "training" for op in only_run(neptune_env).operations
    )


def test_checkpoints_a_previous_session_uploaded_are_removed_when_stale(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from neptune.types import File

    run = debug_run()
    run["training/model/checkpoints/epoch=7"] = File.from_content(b"old", extension="ckpt")
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=1, monitor="val_loss", filename="{epoch}")
    make_trainer(logger=NeptuneLogger(run=run), callbacks=[checkpoint]).fit(tiny_model())
    assert set(run.get_structure()["training"]["model"]["checkpoints"]) == {"epoch=0"}
    run.stop()


def test_log_model_summary(neptune_env: Path, tiny_model: type) -> None:
    logger = NeptuneLogger(**QUIET)
    logger.log_model_summary(tiny_model())
    logger.finalize("success")
    summary = only_run(neptune_env).files()["training/model/summary"].decode()
    assert "layer" in summary and "Linear" in summary


# ---- media through neptune's File types ----------------------------------------------------------------


def test_media_go_through_neptune_file_types(neptune_env: Path) -> None:
    import base64

    import matplotlib.pyplot as plt
    from PIL import Image

    logger = NeptuneLogger(**QUIET)
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    logger.log_image("samples", [pixels, pixels], step=1, caption=["first", "second"])
    logger.log_histogram("weights", np.array([0.0, 0.1, 0.9, 1.0]), step=1, bins=2)
    long_text = "".join(str(i % 10) for i in range(2500))
    with pytest.warns(TracklightWarning, match="'notes' is longer than the 1000 characters .* split over"):
        logger.log_text("notes", long_text, step=1)
    logger.log_audio("beep", np.zeros(800), step=1, sample_rate=8000)
    logger.log_audio("beep", np.zeros(400), step=1, sample_rate=8000)  # the same step again: a second file
    figure = plt.figure()
    plt.plot([1, 2, 3])
    logger.log_figure("curve", figure, step=2)
    logger.log_table("scores", columns=["name", "score"], data=[["a", 1]], step=1)
    logger.finalize("success")

    run = only_run(neptune_env)
    images = [v for op in run.of_path("training/samples") for v in op["values"]]
    assert [(v["step"] >= 1, v["value"]["name"]) for v in images] == [(True, "first"), (True, "second")]
    decoded = Image.open(io.BytesIO(base64.b64decode(images[0]["value"]["data"])))
    assert np.array_equal(np.asarray(decoded), pixels)
    files = run.files()
    rows = list(csv.reader(io.StringIO(files["training/weights/step_1"].decode())))
    assert rows == [["left", "right", "count"], ["0.0", "0.5", "2"], ["0.5", "1.0", "2"]]
    assert "".join(value for _, value in run.series("training/notes")) == long_text
    for path, frames in (("training/beep/step_1", 800), ("training/beep/step_1_1", 400)):
        with wave.open(io.BytesIO(files[path])) as clip:
            assert clip.getnframes() == frames
    assert len(run.of_path("training/curve")) == 1
    assert files["training/scores/step_1"].decode().splitlines() == ["name,score", "a,1"]
    assert_steps_increase(run)


# ---- lifecycle, ranks, arguments ----------------------------------------------------------------------


def test_fit_then_test_is_one_run(neptune_env: Path, tiny_model: type, make_trainer: Any) -> None:
    class WithTest(tiny_model):  # type: ignore[misc, valid-type]
        def test_step(self, batch: Any, batch_idx: int) -> None:
            self.log("test_loss", float(batch_idx))

        def test_dataloader(self) -> Any:
            return self.val_dataloader()

    logger = NeptuneLogger(**QUIET)
    trainer = make_trainer(logger=logger)
    model = WithTest()
    trainer.fit(model)
    trainer.validate(model, verbose=False)
    trainer.test(model, verbose=False)
    run = only_run(neptune_env)  # one run, as with Lightning's logger (a second one had a new id)
    assert logger.version in run.directory
    assert len(run.series("training/train_loss")) == 4 and len(run.series("training/test_loss")) == 1
    assert len(run.series("training/val_loss")) == 2  # fit's, then validate's
    assert_steps_increase(run)


def test_an_offline_run_the_user_stopped_goes_on_in_a_new_run(neptune_env: Path) -> None:
    logger = NeptuneLogger(name="n", **QUIET)
    logger.log_metrics({"loss": 1.0}, step=0)
    first = logger.version
    logger.finalize("success")
    logger.run.stop()
    with pytest.warns(TracklightWarning, match="cannot be reopened"):
        logger.log_metrics({"test_loss": 2.0}, step=1)
    logger.finalize("success")
    fit_run, test_run = neptune_runs(neptune_env)
    assert first in fit_run.directory and logger.version in test_run.directory
    assert fit_run.series("training/loss") and test_run.series("training/test_loss") == [(1, 2.0)]
    assert test_run.atoms()["sys/name"] == "n"


def test_other_ranks_write_nothing(neptune_env: Path, set_rank: Any) -> None:
    set_rank(1)
    logger = NeptuneLogger(**QUIET)
    assert isinstance(logger.experiment, DummyExperiment) and isinstance(logger.run, DummyExperiment)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_hyperparams({"lr": 1})
    logger.finalize("success")
    assert logger.version is None
    assert neptune_runs(neptune_env) == []


def test_arguments_that_do_not_go_together() -> None:
    run = debug_run()
    with pytest.raises(NeptuneArgumentError, match="together with name"):
        NeptuneLogger(run=run, name="x")
    with pytest.raises(ValueError, match=r"takes a neptune\.Run"):
        NeptuneLogger(run="PROJ-1")
    run.stop()


def test_save_dir_and_pickling(neptune_env: Path) -> None:
    logger = NeptuneLogger(**QUIET)
    assert logger.save_dir == str(neptune_env)
    logger.log_metrics({"loss": 1.0}, step=0)
    copy = pickle.loads(pickle.dumps(logger))
    assert copy._run_instance is None and copy.version == logger.version
    logger.finalize("success")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a run that is never used is never started
        NeptuneLogger(**QUIET).finalize("success")
    assert len(neptune_runs(neptune_env)) == 1
