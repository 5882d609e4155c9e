"""An SDK replaced by a stub in ``sys.modules`` counts as installed: users test training scripts this way.

Lightning's own logger tests and many user suites put a ``MagicMock`` (or a bare ``ModuleType``) in
``sys.modules`` for ``wandb``, ``mlflow``, ``comet_ml`` or ``neptune``, then build the logger and check
what it called. Such a stub has no ``__spec__``, which made ``importlib.util.find_spec`` raise; here each
logger is built and used with its SDK stubbed, with no private flag to flip. A stub holds only what the suite
needed (no ``comet_ml.get_config``, no ``mlflow.get_tracking_uri``, a run without ``define_metric``), receives
the calls Lightning's loggers make (keywords included), and is called on the calling thread: no worker starts.
"""

from __future__ import annotations

import pickle
import re
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest.mock import MagicMock, Mock, call

import numpy as np
import pytest

from tracklight._imports import is_available, require
from tracklight._install import install_command
from tracklight.loggers import CometLogger, MLFlowLogger, NeptuneLogger, WandbLogger

IMAGE = np.zeros((4, 4, 3), dtype=np.uint8)


def _stub(monkeypatch: pytest.MonkeyPatch, name: str) -> MagicMock:
    module = MagicMock(name=name)
    monkeypatch.setitem(sys.modules, name, module)
    return module


@pytest.mark.parametrize("kind", ["MagicMock", "ModuleType"])
def test_a_stub_in_sys_modules_is_available_and_importable(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    stub = MagicMock(name="wandb") if kind == "MagicMock" else ModuleType("wandb")
    if isinstance(stub, ModuleType):
        stub.types = ModuleType("wandb.types")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", stub)
    assert is_available("wandb")
    assert require("wandb", "wandb") is stub
    # A submodule of a stub is the stub's attribute, as a user's `stub.types = ...` intends.
    assert require("wandb.types", "wandb") is stub.types


def test_a_module_hidden_with_none_is_missing_and_named_with_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    assert not is_available("wandb")
    with pytest.raises(ImportError, match=re.escape(install_command("wandb"))):
        WandbLogger(project="p")


def test_wandb_logger_with_a_magicmock_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wandb = _stub(monkeypatch, "wandb")
    wandb.run = None  # no run in progress, as users set it
    # finalize waits (up to 10 s) for W&B's internal log to close when the run names one; a stub's does not.
    wandb.init.return_value.settings.log_internal = None
    logger = WandbLogger(project="proj", name="run-1", save_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the stub's run is used without "run already in progress" noise
        logger.log_hyperparams({"lr": 0.1})
        logger.log_metrics({"loss": 0.5}, step=3)
        logger.log_image("samples", [IMAGE], step=3)
        logger.finalize("success")

    wandb.init.assert_called_once()
    arguments = wandb.init.call_args.kwargs
    assert (arguments["project"], arguments["name"], arguments["dir"]) == ("proj", "run-1", str(tmp_path))
    run = wandb.init.return_value
    run.config.update.assert_called_once_with({"lr": 0.1}, allow_val_change=True)
    run.log.assert_any_call({"loss": 0.5, "trainer/global_step": 3})
    assert wandb.Image.call_count == 1
    assert logger.experiment is run


def test_comet_logger_with_a_magicmock_comet_ml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    comet_ml = _stub(monkeypatch, "comet_ml")
    logger = CometLogger(project="proj", online=False, offline_directory=str(tmp_path))
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 0.5, "epoch": 2}, step=3)
    logger.log_image("samples", [IMAGE], step=3)
    logger.finalize("success")

    comet_ml.start.assert_called_once()
    assert comet_ml.start.call_args.kwargs["project"] == "proj"
    assert comet_ml.start.call_args.kwargs["online"] is False
    experiment = comet_ml.start.return_value
    (values,), options = experiment.log_metrics.call_args
    assert (values, options["step"], options["epoch"]) == ({"loss": 0.5}, 3, 2)
    assert experiment.log_parameters.call_args.args[0] == {"lr": 0.1}
    assert experiment.log_image.called


def test_neptune_logger_with_a_magicmock_neptune(monkeypatch: pytest.MonkeyPatch) -> None:
    import neptune.types  # the real submodule stays in sys.modules: the stub must still win

    neptune = _stub(monkeypatch, "neptune")
    logger = NeptuneLogger(mode="offline", prefix="training")
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 0.5}, step=3)
    logger.log_image("samples", [IMAGE], step=3)
    logger.finalize("success")

    neptune.init_run.assert_called_once()
    assert neptune.init_run.call_args.kwargs["mode"] == "offline"
    run = neptune.init_run.return_value
    assert call("training/loss") in run.__getitem__.call_args_list
    run.__getitem__.return_value.append.assert_any_call(0.5, step=3)
    assert neptune.types.File.from_content.called  # the image, as the stub's neptune.types.File


def test_a_stubbed_sdk_has_each_value_when_the_logging_call_returns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Lightning's tests, and suites written like them, check the stub right after the call, with no finalize and
    # no `experiment` in between: a mock gets each item on the calling thread, and W&B media paths as given.
    wandb, comet_ml, neptune = (_stub(monkeypatch, name) for name in ("wandb", "comet_ml", "neptune"))
    wandb.run = None
    run = wandb.init.return_value
    wandb_logger = WandbLogger(save_dir=tmp_path)
    wandb_logger.log_metrics({"loss": 0.5}, step=3)
    run.log.assert_called_once_with({"loss": 0.5, "trainer/global_step": 3})
    wandb_logger.log_image("samples", ["missing.png"])  # a mocked wandb.Image reads no file: nothing is copied
    wandb.Image.assert_called_once_with("missing.png")
    run.log.assert_called_with({"samples": [wandb.Image.return_value]})

    CometLogger(online=False, offline_directory=str(tmp_path)).log_metrics({"loss": 0.5, "epoch": 1}, step=3)
    comet_ml.start.return_value.log_metrics.assert_called_once_with({"loss": 0.5}, prefix=None, step=3, epoch=1)

    NeptuneLogger(mode="offline").log_metrics({"loss": 0.5}, step=3)
    neptune.init_run.return_value.__getitem__.return_value.append.assert_called_once_with(0.5, step=3)


def test_mlflow_logger_with_a_magicmock_mlflow_builds_logs_and_finalizes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Real mlflow submodules that earlier tests imported stay cached under the stub, as in a user's suite:
    # the logger must still reach the stub, not them.
    mlflow = _stub(monkeypatch, "mlflow")
    logger = MLFlowLogger("exp", save_dir=str(tmp_path), delivery_timeout=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing kept aside, nothing spilled: the stub takes every value
        logger.log_hyperparams({"lr": 0.1})
        logger.log_metrics({"loss": 0.5}, step=3)
        logger.finalize("success")
    client = mlflow.tracking.MlflowClient.return_value
    assert logger.name == str(client.get_experiment_by_name.return_value.experiment_id)  # the id, as in Lightning
    (metric,) = [m for call in client.log_batch.call_args_list for m in call.kwargs.get("metrics", [])]
    metric_arguments = mlflow.entities.Metric.call_args.kwargs
    assert (metric_arguments["value"], metric_arguments["step"]) == (0.5, 3)
    assert metric is mlflow.entities.Metric.return_value
    client.set_terminated.assert_called_once()
    assert client.set_terminated.call_args.args[1] == "FINISHED"


# ---- stubs as Lightning's own suite writes them: bare modules holding only what the test needs -----------------


def _module(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: Any) -> ModuleType:
    module = ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def _bare_mlflow(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``mlflow`` with ``set_tracking_uri``, ``tracking.MlflowClient`` and ``entities.Metric``/``Param`` only:
    no ``get_tracking_uri``, no ``exceptions``, no ``utils``."""
    tracking = _module(monkeypatch, "mlflow.tracking", MlflowClient=Mock())
    entities = _module(monkeypatch, "mlflow.entities", Metric=Mock(), Param=Mock())
    return _module(monkeypatch, "mlflow", set_tracking_uri=Mock(), tracking=tracking, entities=entities)


@pytest.mark.parametrize("synchronous", [None, False, True])
def test_a_mocked_mlflow_client_gets_lightnings_calls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, synchronous: bool | None
) -> None:
    mlflow = _bare_mlflow(monkeypatch)
    client = mlflow.tracking.MlflowClient.return_value
    client.get_experiment_by_name.return_value = None  # a new experiment
    logger = MLFlowLogger(
        "test", save_dir=str(tmp_path), artifact_location="my_artifact_location", synchronous=synchronous
    )
    # Only what the user asked for is passed on: synchronous=False reaches MLflow (its own asynchronous logging).
    asked = {} if synchronous is None else {"synchronous": synchronous}
    Param, Metric = mlflow.entities.Param, mlflow.entities.Metric

    logger.log_hyperparams({"test": "test_param"})  # checked right after the call, as Lightning's suite does
    client.log_batch.assert_called_once_with(run_id=logger.run_id, params=[Param.return_value], **asked)
    Param.assert_called_once_with(key="test", value="test_param")

    logger.log_metrics({"some_metric": 10})
    client.log_batch.assert_called_with(run_id=logger.run_id, metrics=[Metric.return_value], **asked)
    arguments = Metric.call_args.kwargs
    assert (arguments["key"], arguments["value"], arguments["step"]) == ("some_metric", 10, 0)
    assert isinstance(arguments["timestamp"], int)

    client.create_experiment.assert_called_once_with(name="test", artifact_location="my_artifact_location")
    assert logger.experiment is client
    # The stub has no get_tracking_uri: the store is made MLflow's default all the same, as Lightning does.
    mlflow.set_tracking_uri.assert_called_with(f"sqlite:///{tmp_path / 'mlflow.db'}")
    logger.finalize("success")
    client.set_terminated.assert_called_once()


def test_a_comet_ml_stub_without_its_config_leaves_online_to_comet(monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = MagicMock(name="Experiment")
    comet_ml = _module(monkeypatch, "comet_ml", start=Mock(return_value=experiment), ExperimentConfig=Mock())
    assert not hasattr(comet_ml, "get_config") and not hasattr(comet_ml, "config")
    logger = CometLogger(api_key="key", project="general")
    logger.log_metrics({"loss": 0.5}, step=3)
    options = comet_ml.start.call_args.kwargs
    assert (options["api_key"], options["project"], options["online"]) == ("key", "general", None)
    experiment.log_metrics.assert_called_once_with({"loss": 0.5}, prefix=None, step=3, epoch=None)
    assert logger.online is None  # Comet decides, as with Lightning's CometLogger


def test_a_wandb_run_without_define_metric_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class Run:  # what a hand-made stub run may hold: no define_metric, no project
        id, name = "run_id", "run-name"

        def __init__(self) -> None:
            self.log, self.config = Mock(), Mock()

    run = Run()
    _module(monkeypatch, "wandb", init=Mock(return_value=run), run=None)
    logger = WandbLogger(save_dir=tmp_path)
    logger.log_metrics({"loss": 0.5}, step=3)
    run.log.assert_called_once_with({"loss": 0.5, "trainer/global_step": 3})
    assert logger.experiment is run
    clone = pickle.loads(pickle.dumps(logger))  # a Trainer pickled with it (ddp_spawn): the run has no `project`
    assert clone.name == logger.name


def test_a_bare_module_wandb_gets_media_paths_and_tables_as_lightning_passes_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = Mock(id="run_id")
    wandb = _module(
        monkeypatch,
        "wandb",
        init=Mock(return_value=run),
        run=None,
        Image=Mock(),
        Audio=Mock(),
        Video=Mock(),
        Table=Mock(),
    )
    logger = WandbLogger(save_dir=tmp_path)
    # Made-up paths: the stub reads no file, so nothing is copied (and nothing is missing).
    logger.log_image("samples", ["made/up/1.png", "made/up/2.png"], step=1, caption=["a", "b"])
    assert [call.args for call in wandb.Image.call_args_list] == [("made/up/1.png",), ("made/up/2.png",)]
    run.log.assert_called_with({"samples": [wandb.Image.return_value] * 2, "trainer/global_step": 1})
    logger.log_video("clips", ["made/up.mp4"])
    wandb.Video.assert_called_once_with("made/up.mp4")
    logger.log_audio("sounds", ["made/up.mp3"])  # the stub needs no soundfile, and gets only the options given
    wandb.Audio.assert_called_once_with("made/up.mp3")

    logger.log_table("table", columns=["a", "b"], data=[[1, 2]])
    wandb.Table.assert_called_with(columns=["a", "b"], data=[[1, 2]], dataframe=None)
    logger.log_text("text", columns=["input"], data=[["cheese"]])
    wandb.Table.assert_called_with(columns=["input"], data=[["cheese"]], dataframe=None)
    frame = object()
    logger.log_table("frame", dataframe=frame)
    wandb.Table.assert_called_with(columns=None, data=None, dataframe=frame)


# ---- a mocked SDK gets no worker thread ---------------------------------------------------------------------


def _delivery_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "tracklight-delivery"]


def test_a_mocked_sdk_is_called_on_the_calling_thread_and_no_worker_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert _delivery_threads() == []  # earlier tests' workers ended (an idle worker ends within a second)
    callers: list[str] = []

    def record(*args: Any, **kwargs: Any) -> None:
        callers.append(threading.current_thread().name)

    wandb, comet_ml, neptune = (_stub(monkeypatch, name) for name in ("wandb", "comet_ml", "neptune"))
    wandb.run = None
    wandb.init.return_value.log.side_effect = record
    comet_ml.start.return_value.log_metrics.side_effect = record
    neptune.init_run.return_value.__getitem__.return_value.append.side_effect = record
    mlflow = _bare_mlflow(monkeypatch)
    mlflow.tracking.MlflowClient.return_value.log_batch.side_effect = record

    WandbLogger(save_dir=tmp_path).log_metrics({"loss": 0.5}, step=3)
    CometLogger(online=False, offline_directory=str(tmp_path)).log_metrics({"loss": 0.5}, step=3)
    NeptuneLogger(mode="offline").log_metrics({"loss": 0.5}, step=3)
    MLFlowLogger(save_dir=str(tmp_path)).log_metrics({"loss": 0.5}, step=3)

    assert callers == [threading.current_thread().name] * 4  # each before its logging call returned
    assert _delivery_threads() == []  # and no finalize was needed for that
