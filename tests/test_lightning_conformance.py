"""What Lightning's own logger tests check (``tests/tests_pytorch/loggers/`` at 2.6.5), checked on tracklight.

Lightning's tests are the best record of what its users rely on. Each of them is accounted for in ``LEDGER``
below: the tracklight test here that checks the same user-visible behaviour (``MATCH``), the deliberate
difference ``docs/differences.md`` names (``DIFFERENCE``), a behaviour another branch brings (``PENDING``:
a strict ``xfail`` here, which fails once that branch lands, so the mark is removed then), or why it does
not apply (``NOT_APPLICABLE``). Where Lightning pokes a private (``_mlflow_client``,
``__internal_api__...``), the visible behaviour behind it is checked instead: what lands in the run, read
back with the backend's own reader, or, for "what each SDK is called with", what a stubbed SDK received
(the way user suites check it). The tests are written for tracklight; none is copied from Lightning.
"""

from __future__ import annotations

import csv
import os
import pickle
import re
import subprocess
import sys
import warnings
from argparse import Namespace
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringDataModule, BoringModel

from _comet_neptune_readers import comet_archives, neptune_runs
from _contract_readers import mlflow_store
from _offline import COMET_QUIET, NEPTUNE_QUIET, offline_backends, runs_left_open
from _wandb_reader import read_runs
from tracklight import InvalidMetricError, TracklightWarning
from tracklight.loggers import (
    CometLogger,
    CSVLogger,
    DummyExperiment,
    Logger,
    MLFlowLogger,
    NeptuneLogger,
    TensorBoardLogger,
    WandbLogger,
    rank_zero_only,
)

MATCH, DIFFERENCE, PENDING, NOT_APPLICABLE = "match", "difference", "pending", "not applicable"

#: Lightning test (file::function) -> (its parametrized cases, verdict, where).
#: ``where`` is a test of this module or ``<module>.py::<test>`` of another (MATCH, PENDING), a phrase of
#: docs/differences.md (DIFFERENCE), or why the test does not apply (NOT_APPLICABLE).
#: ``test_the_ledger_accounts_for_lightnings_tests`` checks each.
LEDGER: dict[str, tuple[int, str, str]] = {
    # ---- test_all.py
    "test_all.py::test_loggers_fit_test_all": (5, MATCH, "test_fit_then_test_sends_lightnings_log_metrics_calls"),
    "test_all.py::test_loggers_pickle_all": (5, MATCH, "test_a_trainer_with_a_used_logger_pickles_and_logs_on"),
    "test_all.py::test_logger_reset_correctly": (2, MATCH, "test_tuners_keep_the_logger"),
    "test_all.py::test_logger_initialization": (6, MATCH, "test_other_ranks_get_a_dummy_experiment"),
    "test_all.py::test_logger_with_prefix_all": (1, MATCH, "test_prefix_is_joined_to_every_key"),
    "test_all.py::test_logger_default_name": (1, MATCH, "test_default_names_are_lightning_logs"),
    # ---- test_csv.py
    "test_csv.py::test_automatic_versioning": (1, MATCH, "test_next_version_skips_taken_numbers_only"),
    "test_csv.py::test_manual_versioning": (1, MATCH, "test_explicit_and_named_versions"),
    "test_csv.py::test_manual_versioning_file_exists": (1, DIFFERENCE, "An existing `metrics.csv` is never deleted"),
    "test_csv.py::test_named_version": (1, MATCH, "test_explicit_and_named_versions"),
    "test_csv.py::test_no_name": (2, MATCH, "test_no_name_puts_versions_in_save_dir"),
    "test_csv.py::test_log_metrics": (2, MATCH, "test_csv_log_metrics_numbers_and_tensors"),
    "test_csv.py::test_log_hyperparams": (1, MATCH, "test_csv_hparams_yaml_holds_every_key"),
    "test_csv.py::test_fit_csv_logger": (1, MATCH, "test_fit_writes_metrics_csv_into_log_dir"),
    "test_csv.py::test_csv_logger_remotefs": (
        1,
        DIFFERENCE,
        "A URL `save_dir` is written locally and uploaded in the background",
    ),
    "test_csv.py::test_flush_n_steps": (1, MATCH, "test_save_is_called_every_flush_logs_every_n_steps"),
    "test_csv.py::test_metrics_reset_after_save": (1, MATCH, "test_experiment_is_an_experiment_writer"),
    "test_csv.py::test_append_metrics_file": (1, MATCH, "test_a_second_logger_on_a_version_appends"),
    "test_csv.py::test_append_columns": (1, DIFFERENCE, "A new metric key does not rewrite the file on every flush"),
    # ---- test_tensorboard.py
    "test_tensorboard.py::test_tensorboard_hparams_reload": (
        1,
        MATCH,
        "test_fit_writes_hparams_yaml_and_one_checkpoint",
    ),
    "test_tensorboard.py::test_tensorboard_automatic_versioning": (
        1,
        MATCH,
        "test_next_version_skips_taken_numbers_only",
    ),
    "test_tensorboard.py::test_tensorboard_manual_versioning": (1, MATCH, "test_explicit_and_named_versions"),
    "test_tensorboard.py::test_tensorboard_named_version": (1, MATCH, "test_explicit_and_named_versions"),
    "test_tensorboard.py::test_tensorboard_no_name": (2, MATCH, "test_no_name_puts_versions_in_save_dir"),
    "test_tensorboard.py::test_tensorboard_log_sub_dir": (1, MATCH, "test_overridden_name_and_version_move_log_dir"),
    "test_tensorboard.py::test_tensorboard_log_metrics": (2, MATCH, "test_tensorboard_log_metrics_and_hparams"),
    "test_tensorboard.py::test_tensorboard_log_hyperparams": (1, MATCH, "test_tensorboard_log_metrics_and_hparams"),
    "test_tensorboard.py::test_tensorboard_log_hparams_and_metrics": (
        1,
        MATCH,
        "test_tensorboard_log_metrics_and_hparams",
    ),
    "test_tensorboard.py::test_tensorboard_log_omegaconf_hparams_and_metrics": (
        1,
        MATCH,
        "test_omegaconf_hyperparameters",
    ),
    "test_tensorboard.py::test_tensorboard_log_graph": (2, MATCH, "test_log_graph_with_the_example_or_a_given_input"),
    "test_tensorboard.py::test_tensorboard_log_graph_warning_no_example_input_array": (
        1,
        MATCH,
        "test_log_graph_warns_when_there_is_nothing_to_trace",
    ),
    "test_tensorboard.py::test_tensorboard_with_accumulated_gradients": (
        1,
        MATCH,
        "test_steps_with_accumulated_gradients",
    ),
    # Without a logged value no SummaryWriter is made (as in Lightning); a logged scalar does not make one either.
    "test_tensorboard.py::test_tensorboard_finalize": (1, DIFFERENCE, "Scalars go to their own event file"),
    "test_tensorboard.py::test_tensorboard_save_hparams_to_yaml_once": (
        1,
        MATCH,
        "test_fit_writes_hparams_yaml_and_one_checkpoint",
    ),
    "test_tensorboard.py::test_tensorboard_with_symlink": (1, MATCH, "test_symlinked_relative_save_dir"),
    # ---- test_logger.py
    "test_logger.py::test_custom_logger": (1, MATCH, "test_custom_logger_in_a_trainer"),
    "test_logger.py::test_multiple_loggers": (1, MATCH, "test_custom_logger_in_a_trainer"),
    "test_logger.py::test_multiple_loggers_pickle": (1, MATCH, "test_a_trainer_with_custom_loggers_pickles"),
    "test_logger.py::test_adding_step_key": (1, MATCH, "test_a_logged_step_key_is_the_step"),
    "test_logger.py::test_dummylogger_noop_method_calls": (1, MATCH, "test_dummy_logger_takes_any_call"),
    "test_logger.py::test_dummlogger_arbitrary_method_calls": (1, MATCH, "test_dummy_logger_takes_any_call"),
    "test_logger.py::test_dummyexperiment_support_item_assignment": (
        1,
        MATCH,
        "test_dummy_experiment_takes_any_call_and_item",
    ),
    "test_logger.py::test_np_sanitization": (1, MATCH, "test_numpy_hyperparameters_become_python_values"),
    "test_logger.py::test_log_hyperparams_being_called": (2, MATCH, "test_save_hyperparameters_logger_flag"),
    "test_logger.py::test_log_hyperparams_key_collision": (1, MATCH, "test_model_and_datamodule_hparams_must_agree"),
    "test_logger.py::test_scan_checkpoints": (
        4,
        NOT_APPLICABLE,
        "a private helper; which checkpoints are uploaded is checked by test_wandb_log_model_all_and_false",
    ),
    # ---- test_utilities.py
    "test_utilities.py::test_version": (
        1,
        NOT_APPLICABLE,
        "a private helper (`_version`) that nothing in Lightning 2.6 calls any more; checkpoints use the first logger",
    ),
    # ---- test_wandb.py
    "test_wandb.py::test_wandb_project_name": (1, MATCH, "test_wandb_name_is_the_project"),
    "test_wandb.py::test_wandb_logger_init": (
        1,
        DIFFERENCE,
        "`anonymous` is not passed to `wandb.init` unless set",
    ),
    "test_wandb.py::test_wandb_logger_sync_tensorboard": (1, MATCH, "test_wandb_sync_tensorboard_steps"),
    "test_wandb.py::test_wandb_logger_sync_tensorboard_log_metrics": (1, MATCH, "test_wandb_sync_tensorboard_steps"),
    "test_wandb.py::test_wandb_logger_init_before_spawn": (1, MATCH, "test_wandb_pickled_before_use_keeps_one_run"),
    "test_wandb.py::test_wandb_logger_experiment_called_first": (1, MATCH, "test_wandb_experiment_is_created_first"),
    "test_wandb.py::test_wandb_pickle": (1, DIFFERENCE, 'Offline is passed to `wandb.init` as `mode="offline"`'),
    "test_wandb.py::test_wandb_logger_dirs_creation": (1, MATCH, "test_wandb_checkpoints_go_under_project_and_run"),
    "test_wandb.py::test_wandb_log_model": (1, MATCH, "test_wandb_log_model_true_uploads_once_at_the_end"),
    "test_wandb.py::test_wandb_log_model_with_score": (1, MATCH, "test_wandb_checkpoint_score_keeps_its_type"),
    "test_wandb.py::test_wandb_log_media": (
        1,
        MATCH,
        "test_stubbed_sdks.py::test_a_bare_module_wandb_gets_media_paths_and_tables_as_lightning_passes_them",
    ),
    "test_wandb.py::test_wandb_logger_offline_log_model": (1, DIFFERENCE, "`log_model` also works offline"),
    "test_wandb.py::test_wandb_logger_download_artifact": (1, MATCH, "test_wandb_download_artifact"),
    "test_wandb.py::test_wandb_logger_cli_integration": (3, MATCH, "test_lightning_cli_parses_wandb_log_model"),
    # ---- test_mlflow.py
    "test_mlflow.py::test_mlflow_logger_exists": (1, MATCH, "test_mlflow_experiments_and_runs_by_name"),
    "test_mlflow.py::test_mlflow_run_name_setting": (1, MATCH, "test_mlflow_run_name_tag"),
    "test_mlflow.py::test_mlflow_run_id_setting": (1, MATCH, "test_mlflow_experiments_and_runs_by_name"),
    "test_mlflow.py::test_mlflow_log_dir": (1, MATCH, "test_mlflow_checkpoints_go_under_experiment_and_run"),
    "test_mlflow.py::test_mlflow_logger_dirs_creation": (
        1,
        DIFFERENCE,
        "Without a tracking URI, runs go to an SQLite file",
    ),
    "test_mlflow.py::test_mlflow_experiment_id_retrieved_once": (1, MATCH, "test_mlflow_experiments_and_runs_by_name"),
    "test_mlflow.py::test_mlflow_logger_with_unexpected_characters": (
        1,
        MATCH,
        "test_mlflow_cleans_keys_as_lightning",
    ),
    "test_mlflow.py::test_mlflow_logger_experiment_calls": (
        1,
        MATCH,
        "test_stubbed_sdks.py::test_a_mocked_mlflow_client_gets_lightnings_calls",
    ),
    "test_mlflow.py::test_mlflow_logger_experiment_calls_with_synchronous": (
        2,
        MATCH,
        "test_stubbed_sdks.py::test_a_mocked_mlflow_client_gets_lightnings_calls",
    ),
    "test_mlflow.py::test_mlflow_logger_no_synchronous_support": (
        1,
        NOT_APPLICABLE,
        "needs an MLflow older than the `mlflow>=2.12` the extra requires",
    ),
    "test_mlflow.py::test_mlflow_logger_with_long_param_value": (
        1,
        DIFFERENCE,
        "Hyperparameter values are kept up to MLflow's 6000",
    ),
    "test_mlflow.py::test_mlflow_logger_with_many_params": (1, MATCH, "test_mlflow_values_land_in_the_run"),
    "test_mlflow.py::test_mlflow_logger_finalize": (3, MATCH, "test_mlflow_finalize_status"),
    "test_mlflow.py::test_mlflow_logger_finalize_when_exception": (1, MATCH, "test_mlflow_finalize_status"),
    "test_mlflow.py::test_mlflow_log_model": (3, MATCH, "test_mlflow_log_model_true_uploads_once_at_the_end"),
    "test_mlflow.py::test_set_tracking_uri": (1, MATCH, "test_mlflow_sets_the_tracking_uri"),
    # ---- test_comet.py
    # comet_ml.start gets Lightning's arguments (test_comet_start_arguments), at first use, not in the constructor.
    "test_comet.py::test_comet_logger_online": (1, DIFFERENCE, "The experiment starts on first use"),
    "test_comet.py::test_comet_experiment_is_still_alive_after_training_complete": (
        1,
        MATCH,
        "test_comet_finalize_keeps_the_experiment",
    ),
    "test_comet.py::test_comet_logger_experiment_name": (1, DIFFERENCE, "The experiment starts on first use"),
    "test_comet.py::test_comet_version": (1, DIFFERENCE, "The experiment starts on first use"),
    "test_comet.py::test_comet_epoch_logging": (1, MATCH, "test_comet_metrics_epoch_prefix_and_parameters"),
    "test_comet.py::test_comet_log_hyperparams": (1, MATCH, "test_comet_metrics_epoch_prefix_and_parameters"),
    "test_comet.py::test_comet_log_graph": (1, MATCH, "test_comet_log_graph"),
    "test_comet.py::test_comet_metrics_safe": (1, DIFFERENCE, "a tensor with several elements"),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every backend offline with its files under ``tmp_path``; a network attempt fails the test."""
    attempts = offline_backends(monkeypatch, tmp_path)
    monkeypatch.delenv("COMET_START_ONLINE")  # the tests say online=False where they mean it
    end_runs = runs_left_open(monkeypatch)
    yield
    end_runs()
    assert attempts == [], "the loggers must work offline without trying the network"


def _trainer(root: Path, logger: Any, **options: Any) -> Trainer:
    settings: dict[str, Any] = {
        "default_root_dir": root,
        "accelerator": "cpu",
        "max_epochs": 1,
        "limit_train_batches": 1,
        "limit_val_batches": 1,
        "log_every_n_steps": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    settings.update(options)
    return Trainer(logger=logger, **settings)


class LoggingModel(BoringModel):
    """Lightning's demo model, logging its training loss."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        output = super().training_step(batch, batch_idx)
        self.log("train_loss", output["loss"])
        return output


def _rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _stub(monkeypatch: pytest.MonkeyPatch, name: str) -> MagicMock:
    module = MagicMock(name=name)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def _mlflow(root: Path, **options: Any) -> MLFlowLogger:
    options.setdefault("tracking_uri", mlflow_store(root))
    return MLFlowLogger(save_dir=str(root), **options)


def _mlflow_client(logger: MLFlowLogger) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(logger.experiment.tracking_uri)


# ================================ the ledger ===============================================================


def test_the_ledger_accounts_for_lightnings_tests() -> None:
    # 115 test cases in 85 functions in Lightning 2.6.5's tests/tests_pytorch/loggers/ (test_litlogger.py aside:
    # it tests LitLogger, which tracklight does not offer).
    assert (len(LEDGER), sum(cases for cases, _, _ in LEDGER.values())) == (85, 115)
    differences = (Path(__file__).parent.parent / "docs" / "differences.md").read_text()
    tests = {name for name in globals() if name.startswith("test_")}
    for lightning_test, (_, verdict, where) in LEDGER.items():
        if verdict == MATCH and "::" in where:  # a test of another module
            module, test = where.split("::")
            assert f"\ndef {test}(" in (Path(__file__).parent / module).read_text(), f"{lightning_test}: no {where}"
        elif verdict in (MATCH, PENDING):
            assert where in tests, f"{lightning_test}: no test named {where}"
            # A pending behaviour is a strict xfail until its branch lands; then the mark goes and it is a match.
            xfail = any(mark.name == "xfail" for mark in getattr(globals()[where], "pytestmark", []))
            assert xfail == (verdict == PENDING), f"{lightning_test}: {where} is {verdict}, xfail={xfail}"
        elif verdict == DIFFERENCE:
            assert where in differences, f"{lightning_test}: docs/differences.md does not say {where!r}"
        else:
            assert verdict == NOT_APPLICABLE and where, lightning_test


# ================================ CSV and TensorBoard: directories, versions, names ========================

DIR_LOGGERS = pytest.mark.parametrize("cls", [CSVLogger, TensorBoardLogger], ids=["csv", "tensorboard"])


@DIR_LOGGERS
def test_next_version_skips_taken_numbers_only(cls: type, tmp_path: Path) -> None:
    for name in ("version_0", "version_1", "version_nonumber", "other"):
        (tmp_path / "exp" / name).mkdir(parents=True)
    assert cls(save_dir=tmp_path, name="exp").version == 2


@DIR_LOGGERS
def test_explicit_and_named_versions(cls: type, tmp_path: Path) -> None:
    for number in range(3):
        (tmp_path / "exp" / f"version_{number}").mkdir(parents=True)
    assert cls(save_dir=tmp_path, name="exp", version=1).version == 1

    (tmp_path / "named").mkdir()
    logger = cls(save_dir=tmp_path, name="named", version="2020-02-05-162402")
    logger.log_hyperparams({"a": 1, "b": 2, 123: 3, 3.5: 4, 5j: 5})  # keys that are not strings, too
    logger.finalize("success")
    assert logger.version == "2020-02-05-162402"
    assert os.listdir(tmp_path / "named") == ["2020-02-05-162402"]
    assert os.listdir(tmp_path / "named" / "2020-02-05-162402")


@DIR_LOGGERS
@pytest.mark.parametrize("name", ["", None])
def test_no_name_puts_versions_in_save_dir(cls: type, name: str | None, tmp_path: Path) -> None:
    logger = cls(save_dir=tmp_path, name=name)
    logger.log_hyperparams({"a": 1})
    logger.finalize("success")
    assert os.path.normpath(logger.root_dir) == str(tmp_path)
    assert os.listdir(tmp_path / "version_0")


@DIR_LOGGERS
def test_overridden_name_and_version_move_log_dir(cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Fixed(cls):  # type: ignore[valid-type,misc]
        @property
        def name(self) -> str:
            return "name"

        @property
        def version(self) -> str:
            return "version"

    sub = {"sub_dir": "sub_dir"} if cls is TensorBoardLogger else {}
    logger = Fixed(tmp_path / "logs", **sub)
    assert _trainer(tmp_path, logger).logger.log_dir == os.path.join(
        tmp_path / "logs", "name", "version", *sub.values()
    )
    assert logger.root_dir == os.path.join(tmp_path / "logs", "name")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert os.path.isdir(os.path.join(tmp_path / "logs", "name", "version", *sub.values()))

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # "~" and "$VAR" are expanded in log_dir
    assert Fixed("~/tmp", **sub).log_dir == os.path.join(tmp_path / "home", "tmp", "name", "version", *sub.values())
    monkeypatch.setenv("TEST_ENV_DIR", "some_directory")
    assert Fixed("$TEST_ENV_DIR/tmp", **sub).log_dir == os.path.join(
        "some_directory/tmp", "name", "version", *sub.values()
    )


@DIR_LOGGERS
def test_symlinked_relative_save_dir(cls: type, tmp_path: Path) -> None:
    os.makedirs("lightning_logs")
    os.symlink("lightning_logs", "sym_lightning_logs")
    logger = cls(save_dir=os.path.join(".", "sym_lightning_logs"), name="")
    assert logger.version == 0
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert os.listdir(tmp_path / "lightning_logs") == ["version_0"]


@DIR_LOGGERS
def test_fit_writes_hparams_yaml_and_one_checkpoint(cls: type, tmp_path: Path) -> None:
    class WithHparams(BoringModel):
        def __init__(self, b1: float = 0.5, b2: float = 0.999) -> None:
            super().__init__()
            self.save_hyperparameters()

    trainer = _trainer(tmp_path, cls(tmp_path))
    assert trainer.log_dir == trainer.logger.log_dir
    trainer.fit(WithHparams())
    assert trainer.log_dir == trainer.logger.log_dir
    with open(os.path.join(trainer.log_dir, "hparams.yaml")) as handle:
        assert yaml.safe_load(handle) == {"b1": 0.5, "b2": 0.999}
    assert not os.path.exists(tmp_path / "hparams.yaml")
    assert len(os.listdir(os.path.join(trainer.log_dir, "checkpoints"))) == 1


@DIR_LOGGERS
def test_fit_writes_metrics_csv_into_log_dir(cls: type, tmp_path: Path) -> None:
    logger = cls(save_dir=tmp_path)
    _trainer(tmp_path, logger, max_steps=3, limit_train_batches=3).fit(LoggingModel())
    if cls is CSVLogger:
        assert [row["step"] for row in _rows(os.path.join(logger.log_dir, "metrics.csv")) if row["train_loss"]] == [
            "0",
            "1",
            "2",
        ]
    else:
        assert any(name.startswith("events.out.tfevents") for name in os.listdir(logger.log_dir))


# ================================ CSV =======================================================================


@pytest.mark.parametrize("step", [10, None])
def test_csv_log_metrics_numbers_and_tensors(step: int | None, tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    metrics = {"float": 0.3, "int": 1, "FloatTensor": torch.tensor(0.1), "IntTensor": torch.tensor(1)}
    logger.log_metrics(metrics, step)
    logger.save()
    logger.finalize("success")
    (row,) = _rows(os.path.join(logger.log_dir, "metrics.csv"))
    assert set(row) == {*metrics, "step"}
    assert row["step"] == ("10" if step is not None else "0")


def test_csv_hparams_yaml_holds_every_key(tmp_path: Path) -> None:
    from lightning.pytorch.core.saving import load_hparams_from_yaml

    logger = CSVLogger(tmp_path)
    hparams = {
        "float": 0.3,
        "int": 1,
        "string": "abc",
        "bool": True,
        "dict": {"a": {"b": "c"}},
        "list": [1, 2, 3],
        "layer": torch.nn.BatchNorm1d,
    }
    with pytest.warns(UserWarning, match="'layer'"):  # a class is stored as its name, and the user is told
        logger.log_hyperparams(hparams)
    loaded = load_hparams_from_yaml(os.path.join(logger.log_dir, "hparams.yaml"))
    assert set(loaded) == set(hparams)
    assert loaded["dict"] == {"a": {"b": "c"}} and loaded["layer"] == "BatchNorm1d"


def test_csv_logger_on_a_memory_url() -> None:
    import fsspec

    logger = CSVLogger(save_dir="memory://conformance_csv")
    logger.experiment.log_metrics({"loss": 0.1})
    logger.experiment.save()
    logger.finalize("success")  # uploaded in the background within about a second, and at finalize
    fs, _ = fsspec.core.url_to_fs("memory://conformance_csv")
    assert fs.isfile(os.path.join(logger.log_dir, "metrics.csv"))
    assert not os.path.exists("memory:")  # never a local folder named after the URL


def test_save_is_called_every_flush_logs_every_n_steps(tmp_path: Path) -> None:
    class Counting(CSVLogger):
        saves = 0

        def save(self) -> None:
            self.saves += 1
            super().save()

    logger = Counting(tmp_path, flush_logs_every_n_steps=2)
    logger.log_metrics({"a": 1.0}, step=0)
    assert logger.saves == 0
    logger.log_metrics({"a": 2.0}, step=1)
    assert logger.saves == 1


def test_experiment_is_an_experiment_writer(tmp_path: Path) -> None:
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=2)
    experiment = logger.experiment
    assert isinstance(experiment, ExperimentWriter)
    assert experiment.metrics_file_path == os.path.join(logger.log_dir, ExperimentWriter.NAME_METRICS_FILE)
    logger.log_metrics({"test": 1}, step=0)
    assert all(row["step"] == 0 for row in experiment.metrics)  # what is not on disk yet, with its step
    logger.log_metrics({"test": 1}, step=1)  # the second call saves
    assert experiment.metrics == []
    experiment.log_metrics({"direct": 2.0}, step=5)
    experiment.log_hparams({"lr": 0.1})
    experiment.save()
    logger.finalize("success")
    assert [row["step"] for row in _rows(experiment.metrics_file_path)] == ["0", "1", "5"]
    assert experiment.hparams == {"lr": 0.1} and "direct" in experiment.metrics_keys


def test_a_second_logger_on_a_version_appends(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path, name="test", version=0, flush_logs_every_n_steps=1)
    first.log_metrics({"a": 1, "b": 2})
    first.log_metrics({"a": 3, "b": 4})
    first.finalize("success")
    second = CSVLogger(tmp_path, name="test", version=0, flush_logs_every_n_steps=1)
    second.log_metrics({"a": 100, "b": 200})
    second.finalize("success")
    with open(second.experiment.metrics_file_path) as handle:
        assert len(handle.readlines()) == 4


def test_a_new_key_widens_the_header_and_a_missing_key_keeps_it(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=1)
    logger.log_metrics({"a": 1, "b": 2})
    logger.log_metrics({"a": 1, "b": 2, "c": 3})
    logger.log_metrics({"a": 1, "c": 3})
    logger.finalize("success")  # within a second without finalize: the difference docs/differences.md names
    with open(logger.experiment.metrics_file_path) as handle:
        assert handle.readline().strip().split(",") == ["a", "b", "c", "step"]


# ================================ TensorBoard ===============================================================


@pytest.mark.parametrize("step", [10, None])
def test_tensorboard_log_metrics_and_hparams(step: int | None, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, default_hp_metric=False)
    logger.log_metrics({"float": 0.3, "int": 1, "FloatTensor": torch.tensor(0.1), "IntTensor": torch.tensor(1)}, step)
    hparams = {
        "float": 0.3,
        "string": "abc",
        "dict": {"a": {"b": "c"}},
        "list": [1, 2, 3],
        "namespace": Namespace(foo=Namespace(bar="buzz")),
        "layer": torch.nn.BatchNorm1d,
        "tensor": torch.empty(2, 2, 2),
        "array": np.empty([2, 2, 2]),
    }
    with pytest.warns(UserWarning, match="'layer'"):
        logger.log_hyperparams(hparams, {"abc": torch.tensor([0.54])})
    logger.finalize("success")

    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert {"float", "int", "FloatTensor", "IntTensor", "abc"} <= set(events.Tags()["scalars"])
    assert events.Scalars("float")[0].step == (10 if step is not None else 0)
    with open(os.path.join(logger.log_dir, "hparams.yaml")) as handle:
        stored = yaml.safe_load(handle)
    assert stored["namespace"] == {"foo": {"bar": "buzz"}} and stored["list"] == [1, 2, 3]


def test_omegaconf_hyperparameters(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    config = OmegaConf.create({"float": 0.3, "bool": True, "dict": {"a": {"b": "c"}}, "list": [1, 2, 3]})
    for logger in (TensorBoardLogger(tmp_path, default_hp_metric=False), CSVLogger(tmp_path)):
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(config, {"abc": torch.tensor([0.54])})
        else:
            logger.log_hyperparams(config)
        logger.finalize("success")
        with open(os.path.join(logger.log_dir, "hparams.yaml")) as handle:
            assert yaml.safe_load(handle) == OmegaConf.to_container(config)


@pytest.mark.parametrize("given", [False, True], ids=["example_input_array", "input_array"])
def test_log_graph_with_the_example_or_a_given_input(given: bool, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = BoringModel()
    model.example_input_array = None if given else torch.rand(2, 32)
    logger = TensorBoardLogger(tmp_path, log_graph=True)
    logger.log_graph(model, torch.rand(2, 32) if given else None)
    logger.finalize("success")
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert events.Graph() is not None


def test_log_graph_warns_when_there_is_nothing_to_trace(tmp_path: Path) -> None:
    model = BoringModel()
    model.example_input_array = None
    logger = TensorBoardLogger(tmp_path, log_graph=True)
    # Lightning's phrases, as a suite written for Lightning matches them; tracklight's fix follows them.
    with pytest.warns(
        TracklightWarning,
        match="Could not log computational graph to TensorBoard: The `model.example_input_array` .* was not given",
    ):
        logger.log_graph(model)
    model.example_input_array = {"x": 1, "y": 2}
    with pytest.warns(
        TracklightWarning, match="Could not log computational graph to TensorBoard: .* can't be traced by TensorBoard"
    ):
        logger.log_graph(model)


def test_steps_with_accumulated_gradients(tmp_path: Path) -> None:
    class Recording(TensorBoardLogger):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.calls: list[tuple[int | None, set[str]]] = []

        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            self.calls.append((step, set(metrics)))
            super().log_metrics(metrics, step)

    class Logging(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("foo", 1.0, on_step=True, on_epoch=True)
            return super().training_step(batch, batch_idx)

    logger = Recording(tmp_path, default_hp_metric=False)
    trainer = _trainer(
        tmp_path, logger, limit_train_batches=12, limit_val_batches=0, max_epochs=3, accumulate_grad_batches=2
    )
    trainer.log_every_n_steps = 3
    trainer.fit(Logging())
    assert [step for step, keys in logger.calls if "foo_epoch" in keys] == [5, 11, 17]
    assert [step for step, keys in logger.calls if "foo_step" in keys] == [2, 5, 8, 11, 14, 17]


def test_finalize_without_logging_writes_nothing(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    TensorBoardLogger(save_dir=tmp_path / "tb").finalize("success")
    assert not os.path.exists(tmp_path / "tb")  # no experiment was started, so nothing to flush

    logger = TensorBoardLogger(save_dir=tmp_path / "tb")
    logger.log_metrics({"flush_me": 11.1})
    logger.finalize("success")
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert [round(event.value, 1) for event in events.Scalars("flush_me")] == [11.1]


# ================================ the Logger contract with a Trainer (test_logger.py, test_all.py) ========


class Recorder(Logger):
    """A custom logger as Lightning's docs write one, keeping what it receives."""

    def __init__(self, version: int | str = "1") -> None:
        super().__init__()
        self._version = version
        self.hparams_logged: Any = None
        self.metrics_logged: dict[str, Any] = {}
        self.status: str | None = None
        self.checkpoints_seen = 0

    @property
    def name(self) -> str:
        return "name"

    @property
    def version(self) -> int | str:
        return self._version

    @property
    def experiment(self) -> str:
        return "experiment"

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self.hparams_logged = params

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.metrics_logged = dict(metrics)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.status = status

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self.checkpoints_seen += 1


def test_custom_logger_in_a_trainer(tmp_path: Path) -> None:
    first, second = Recorder(), Recorder()
    trainer = _trainer(tmp_path, [first, second], max_steps=2, limit_train_batches=2)
    trainer.fit(LoggingModel())
    assert trainer.state.finished
    for logger in (first, second):
        assert "train_loss" in logger.metrics_logged
        assert logger.hparams_logged is None  # the model saved no hyperparameters
        assert logger.status == "success"
    assert first.checkpoints_seen >= 1


def test_a_trainer_with_custom_loggers_pickles(tmp_path: Path) -> None:
    trainer = pickle.loads(pickle.dumps(Trainer(logger=[Recorder(), Recorder()], default_root_dir=tmp_path)))
    for logger in trainer.loggers:
        logger.log_metrics({"acc": 1.0}, 0)
    assert [logger.metrics_logged for logger in trainer.loggers] == [{"acc": 1.0}, {"acc": 1.0}]


def test_a_logged_step_key_is_the_step(tmp_path: Path) -> None:
    class Checking(TensorBoardLogger):
        expected = 0
        seen: list[int | None] = []

        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            if "val_acc" in metrics:
                self.seen.append(step)
            super().log_metrics(metrics, step)

    class StepKey(BoringModel):
        def on_validation_epoch_end(self) -> None:
            self.logger.expected += 1
            self.log_dict({"step": float(self.logger.expected), "val_acc": self.logger.expected / 10})

    logger = Checking(save_dir=tmp_path)
    _trainer(tmp_path, logger, max_epochs=3, num_sanity_val_steps=0).fit(StepKey())
    assert logger.seen == [1, 2, 3]


def test_dummy_logger_takes_any_call() -> None:
    from tracklight.loggers.logger import DummyLogger

    logger = DummyLogger()
    assert logger.log_hyperparams("1", 2, three="three") is None and logger.log_metrics("1", 2, three="three") is None
    assert callable(logger.log_text) and logger.log_text("key", "text") is None and logger.not_a_method(1) is None


def test_dummy_experiment_takes_any_call_and_item() -> None:
    experiment = DummyExperiment()
    experiment["variable"] = "value"
    assert experiment["variable"] != "value"  # stateless
    assert experiment.something(foo="bar") is None
    assert experiment.log_text("key", "text") is None


def test_numpy_hyperparameters_become_python_values(tmp_path: Path) -> None:
    values = {
        "np.bool_": np.bool_(1),
        "np.byte": np.byte(2),
        "np.intc": np.intc(3),
        "np.int_": np.int_(4),
        "np.longlong": np.longlong(5),
        "np.single": np.single(6.0),
        "np.double": np.double(8.9),
        "np.csingle": np.csingle(7 + 2j),
        "np.cdouble": np.cdouble(9 + 4j),
    }
    logger = CSVLogger(tmp_path)
    with pytest.warns(UserWarning, match="np.csingle"):  # complex numbers become their str(), as in Lightning
        logger.log_hyperparams(Namespace(**values))
    with open(os.path.join(logger.log_dir, "hparams.yaml")) as handle:
        assert yaml.safe_load(handle) == {
            "np.bool_": True,
            "np.byte": 2,
            "np.intc": 3,
            "np.int_": 4,
            "np.longlong": 5,
            "np.single": 6.0,
            "np.double": 8.9,
            "np.csingle": "(7+2j)",
            "np.cdouble": "(9+4j)",
        }


@pytest.mark.parametrize("to_logger", [True, False])
def test_save_hyperparameters_logger_flag(to_logger: bool, tmp_path: Path) -> None:
    class WithHparams(BoringModel):
        def __init__(self, param_one: str, param_two: str) -> None:
            super().__init__()
            self.save_hyperparameters(logger=to_logger)

    logger = Recorder()
    _trainer(tmp_path, logger).fit(WithHparams("pytorch", "lightning"))
    assert (logger.hparams_logged is not None) == to_logger


def test_model_and_datamodule_hparams_must_agree(tmp_path: Path) -> None:
    class Model(BoringModel):
        def __init__(self, hparams: dict[str, Any]) -> None:
            super().__init__()
            self.save_hyperparameters(hparams)

    class Data(BoringDataModule):
        def __init__(self, hparams: dict[str, Any]) -> None:
            super().__init__()
            self.save_hyperparameters(hparams)

    same = {"1": 1, "three": 3.0, "4": torch.tensor(4)}
    plain = {"1": 1, "three": 3.0}  # the same keys with the same values in both are fine
    _trainer(tmp_path, TensorBoardLogger(tmp_path), enable_checkpointing=False).fit(Model(plain), Data(dict(plain)))
    with pytest.raises(RuntimeError, match="Error while merging hparams"):
        trainer = _trainer(tmp_path, TensorBoardLogger(tmp_path), enable_checkpointing=False)
        trainer.fit(Model(same), Data({**same, "4": torch.tensor(3)}))


@pytest.mark.parametrize("method", ["lr_find", "scale_batch_size"])
def test_tuners_keep_the_logger(method: str, tmp_path: Path) -> None:
    from lightning.pytorch.tuner.tuning import Tuner

    class Tunable(BoringModel):
        def __init__(self, lr: float = 0.1, batch_size: int = 2) -> None:
            super().__init__()
            self.save_hyperparameters()

    model, logger = Tunable(), CSVLogger(tmp_path)
    trainer = _trainer(tmp_path, logger, limit_train_batches=2)
    options = {"num_training": 3} if method == "lr_find" else {"max_trials": 1}
    getattr(Tuner(trainer), method)(model, **options)
    assert trainer.logger is logger and model.logger is logger


def _make(name: str, root: Path, **options: Any) -> Any:
    """Each logger class of tracklight with its Lightning-test arguments, offline, writing under ``root``."""
    if name == "csv":
        return CSVLogger(root, **options)
    if name == "tensorboard":
        return TensorBoardLogger(root, **options)
    if name == "wandb":
        return WandbLogger(save_dir=root, offline=True, **options)
    if name == "mlflow":
        return _mlflow(root, **options)
    if name == "comet":
        return CometLogger(save_dir=str(root), online=False, **COMET_QUIET, **options)
    return NeptuneLogger(mode="offline", **NEPTUNE_QUIET, **options)


ALL_LOGGERS = pytest.mark.parametrize("name", ["csv", "tensorboard", "wandb", "mlflow", "comet", "neptune"])


@ALL_LOGGERS
def test_fit_then_test_sends_lightnings_log_metrics_calls(name: str, tmp_path: Path) -> None:
    class Model(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            output = super().training_step(batch, batch_idx)
            self.log("train_some_val", output["loss"])
            return output

        def on_validation_epoch_end(self) -> None:
            self.log_dict({"early_stop_on": torch.tensor(1.0), "val_loss": torch.tensor(0.5)})

        def on_test_epoch_end(self) -> None:
            self.log("test_loss", torch.tensor(2.0))

    history: list[tuple[int | None, list[str]]] = []
    logger = _make(name, tmp_path / "logs")
    original = logger.log_metrics
    logger.log_metrics = lambda metrics, step=None: (history.append((step, sorted(metrics))), original(metrics, step))
    trainer = _trainer(tmp_path, logger)
    trainer.fit(Model())
    trainer.test(ckpt_path="best", verbose=False)
    logger.finalize("success")
    assert history == [
        (0, ["epoch", "train_some_val"]),
        (0, ["early_stop_on", "epoch", "val_loss"]),
        (1, ["epoch", "test_loss"]),
    ]


@ALL_LOGGERS
@pytest.mark.filterwarnings("ignore:There is a wandb run already in progress")  # the copy reuses the original's run
def test_a_trainer_with_a_used_logger_pickles_and_logs_on(name: str, tmp_path: Path) -> None:
    logger = _make(name, tmp_path / "logs")
    _ = logger.experiment
    logger.log_metrics({"a": 1})
    logger.save()
    pickle.dumps(logger)
    trainer = pickle.loads(pickle.dumps(Trainer(max_epochs=1, logger=logger, default_root_dir=tmp_path)))
    trainer.logger.log_metrics({"acc": 1.0})
    assert (trainer.logger.name, trainer.logger.save_dir) == (logger.name, logger.save_dir)
    trainer.logger.finalize("success")
    logger.finalize("success")


@ALL_LOGGERS
def test_other_ranks_get_a_dummy_experiment(name: str, tmp_path: Path, set_rank: Callable[[int], None]) -> None:
    set_rank(1)
    logger = _make(name, tmp_path / "logs")
    assert isinstance(logger.experiment, DummyExperiment)
    assert logger.experiment.something(foo="bar") is None
    logger.log_metrics({"a": 1.0}, step=0)
    logger.finalize("success")
    set_rank(0)
    assert not isinstance(logger.experiment, DummyExperiment)  # rank zero gets the real one, at first use
    logger.finalize("success")


def test_prefix_is_joined_to_every_key(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from _contract_readers import comet_metrics, mlflow_metrics, wandb_metrics

    loggers = {name: _make(name, tmp_path / name, prefix="tmp") for name in ("csv", "tensorboard", "wandb", "mlflow")}
    loggers["comet"] = _make("comet", tmp_path / "comet", prefix="tmp")
    for logger in loggers.values():
        logger.log_metrics({"test": 1.0}, step=0)
        logger.finalize("success")
    assert list(_rows(os.path.join(loggers["csv"].log_dir, "metrics.csv"))[0]) == ["step", "tmp-test"]
    events = EventAccumulator(loggers["tensorboard"].log_dir)
    events.Reload()
    assert events.Tags()["scalars"] == ["tmp-test"]
    assert set(wandb_metrics(loggers["wandb"])) == {"tmp-test"}
    assert set(mlflow_metrics(loggers["mlflow"])) == {"tmp-test"}
    assert set(comet_metrics(loggers["comet"])) == {"tmp_test"}  # Comet joins its prefix with "_", as in Lightning


def test_default_names_are_lightning_logs(tmp_path: Path) -> None:
    assert CSVLogger(save_dir=tmp_path).name == "lightning_logs"
    assert TensorBoardLogger(save_dir=tmp_path).name == "lightning_logs"
    assert WandbLogger(save_dir=tmp_path, offline=True).name == "lightning_logs"
    logger = _mlflow(tmp_path)
    _ = logger.experiment
    logger.finalize("success")
    experiment = _mlflow_client(logger).get_experiment(logger.experiment_id)
    assert experiment.name == "lightning_logs"
    assert logger.name == logger.experiment_id  # on MLFlowLogger, `name` is the experiment id, as in Lightning


# ================================ Weights & Biases ==========================================================


@pytest.fixture
def wandb_stub(monkeypatch: pytest.MonkeyPatch) -> MagicMock:
    """``wandb`` replaced by a MagicMock, as user suites (and Lightning's own) test without the service."""
    monkeypatch.delenv("WANDB_MODE")  # the stub stands for W&B: no mode from the environment
    wandb = _stub(monkeypatch, "wandb")
    wandb.run = None
    run = wandb.init.return_value
    run.id, run.name, run.project = "run-1", "run_name", "project"
    run.settings.log_internal = None  # a real run names its internal log, which finalize waits on
    return wandb


def test_wandb_name_is_the_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    assert WandbLogger(save_dir=tmp_path).name == "lightning_logs"
    assert WandbLogger(save_dir=tmp_path, project="project").name == "project"
    monkeypatch.setenv("WANDB_PROJECT", "env_project")
    assert WandbLogger(save_dir=tmp_path).name == "env_project"
    assert WandbLogger(save_dir=tmp_path, project="project").name == "project"


def test_wandb_init_and_what_the_run_receives(wandb_stub: MagicMock, tmp_path: Path) -> None:
    logger = WandbLogger(name="test_name", save_dir=tmp_path, version="test_id", project="test_project", resume="never")
    logger.log_metrics({"acc": 1.0})
    assert wandb_stub.init.call_args.kwargs == {
        "name": "test_name",
        "dir": str(tmp_path),
        "id": "test_id",
        "project": "test_project",
        "resume": "never",  # `anonymous` only when set: the difference docs/differences.md names
    }
    run = wandb_stub.init.return_value
    run.log.assert_called_once_with({"acc": 1.0})
    logger.log_metrics({"acc": 1.0}, step=3)
    run.log.assert_called_with({"acc": 1.0, "trainer/global_step": 3})
    logger.log_hyperparams({"none": None, "dict": {"a": 1}, "b": [2, 3, 4], "path": Path("path")})
    run.config.update.assert_called_once_with(
        {"none": None, "dict": {"a": 1}, "b": [2, 3, 4], "path": "path"}, allow_val_change=True
    )
    logger.watch("model", "log", 10, False)
    run.watch.assert_called_once_with("model", log="log", log_freq=10, log_graph=False)
    assert logger.version == "run-1"
    assert WandbLogger(project="p").save_dir is not None


def test_wandb_uses_a_run_in_progress_with_one_warning(wandb_stub: MagicMock) -> None:
    wandb_stub.run = wandb_stub.init.return_value
    logger = WandbLogger()
    with pytest.warns(UserWarning, match="There is a wandb run already in progress"):
        _ = logger.experiment
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert logger.experiment is wandb_stub.run  # no new run, no second warning
        logger.log_metrics({"acc": 1.0}, step=3)
        logger.finalize("success")  # a run the logger did not start stays open
        logger.log_metrics({"acc": 1.0}, step=6)
    wandb_stub.init.assert_not_called()
    wandb_stub.run.finish.assert_not_called()
    wandb_stub.run.log.assert_called_with({"acc": 1.0, "trainer/global_step": 6})


def test_wandb_sync_tensorboard_steps(wandb_stub: MagicMock) -> None:
    logger = WandbLogger(sync_tensorboard=True)
    run = logger.experiment
    run.define_metric.assert_called_once_with("*", step_metric="global_step")
    logger.log_metrics({"loss": 1e-3, "accuracy": 0.99}, step=5)
    run.log.assert_called_once_with({"loss": 1e-3, "accuracy": 0.99})  # TensorBoard's global_step is the x-axis


def test_wandb_pickled_before_use_keeps_one_run(wandb_stub: MagicMock) -> None:
    logger = WandbLogger()
    copy = pickle.loads(pickle.dumps(logger))  # ddp_spawn pickles the logger before any run exists
    assert copy.version is not None and copy.version == logger.version
    _ = copy.experiment
    assert wandb_stub.init.call_args.kwargs["id"] == logger.version


def test_wandb_experiment_is_created_first(wandb_stub: MagicMock, tmp_path: Path) -> None:
    order: list[str] = []

    class Tensorboard(TensorBoardLogger):
        @property
        def experiment(self) -> Any:
            order.append("tensorboard")
            return super().experiment

    class Wandb(WandbLogger):
        @property
        def experiment(self) -> Any:
            order.append("wandb")
            return super().experiment

    loggers = [Tensorboard(tmp_path), Wandb(save_dir=tmp_path)]
    _trainer(tmp_path, loggers, limit_train_batches=0, limit_val_batches=0, max_steps=1).fit(BoringModel())
    assert order and order[0] == "wandb"


def test_wandb_checkpoints_go_under_project_and_run(wandb_stub: MagicMock, tmp_path: Path) -> None:
    root = tmp_path / "w"
    logger = WandbLogger(project="project", save_dir=root, offline=True)
    assert (logger.version, logger.name, logger.save_dir) == (None, "project", str(root))
    _ = logger.experiment
    assert logger.version == "run-1" and not os.listdir(root)
    trainer = _trainer(tmp_path, logger, limit_train_batches=3)
    assert trainer.log_dir == logger.save_dir
    trainer.fit(BoringModel())
    assert trainer.checkpoint_callback.dirpath == str(root / "project" / "run-1" / "checkpoints")
    assert os.listdir(trainer.checkpoint_callback.dirpath) == ["epoch=0-step=3.ckpt"]


def _wandb_fit(wandb_stub: MagicMock, tmp_path: Path, callbacks: Any = None, **options: Any) -> MagicMock:
    logger = WandbLogger(save_dir=tmp_path, **options)
    trainer = _trainer(tmp_path, logger, max_epochs=2, limit_train_batches=3, callbacks=callbacks)
    trainer.fit(BoringModel())
    return wandb_stub.init.return_value


def test_wandb_log_model_all_and_false(wandb_stub: MagicMock, tmp_path: Path) -> None:
    assert _wandb_fit(wandb_stub, tmp_path / "all", log_model="all").log_artifact.call_count == 2
    wandb_stub.reset_mock()
    assert _wandb_fit(wandb_stub, tmp_path / "false", log_model=False).log_artifact.call_count == 0


def test_wandb_log_model_true_uploads_once_at_the_end(wandb_stub: MagicMock, tmp_path: Path) -> None:
    run = _wandb_fit(wandb_stub, tmp_path, log_model=True, checkpoint_name="my-test-model")
    assert run.log_artifact.call_count == 1
    arguments = wandb_stub.Artifact.call_args.kwargs
    assert (arguments["name"], arguments["type"]) == ("my-test-model", "model")
    assert arguments["metadata"]["original_filename"] == "epoch=1-step=6.ckpt"


def test_wandb_checkpoint_score_keeps_its_type(wandb_stub: MagicMock, tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    _wandb_fit(wandb_stub, tmp_path, callbacks=[ModelCheckpoint(monitor="step")], log_model="all", max_epochs=1)
    scores = [call.kwargs["metadata"]["score"] for call in wandb_stub.Artifact.call_args_list]
    assert scores and all(type(score) is int for score in scores), scores


def test_wandb_media_helpers_call_wandb_as_lightning(wandb_stub: MagicMock) -> None:
    logger = WandbLogger()
    run = logger.experiment
    for method, kind, files in (
        ("log_image", "Image", "jpg"),
        ("log_audio", "Audio", "mp3"),
        ("log_video", "Video", "mp4"),
    ):
        paths = [f"1.{files}", f"2.{files}"]
        getattr(logger, method)("samples", paths, step=5, caption=["caption 1", "caption 2"])
        last = getattr(wandb_stub, kind).call_args
        assert (last.args, last.kwargs["caption"]) == ((f"2.{files}",), "caption 2")
        run.log.assert_called_with({"samples": [getattr(wandb_stub, kind)()] * 2, "trainer/global_step": 5})
        with pytest.raises(ValueError, match="Expected 2 items but only found 1 for caption"):
            getattr(logger, method)("samples", paths, caption=["caption 1"])
    logger.log_text(key="samples", columns=["input", "label"], data=[["cheese", "english"]])
    assert wandb_stub.Table.call_args.kwargs["columns"] == ["input", "label"]
    run.log.assert_called_with({"samples": wandb_stub.Table()})
    logger.log_table(key="samples", columns=["a"], data=[[1]], step=5)
    run.log.assert_called_with({"samples": wandb_stub.Table(), "trainer/global_step": 5})


@pytest.mark.parametrize("method", ["log_image", "log_audio", "log_video"])
def test_wandb_media_helpers_refuse_what_is_not_a_list(wandb_stub: MagicMock, method: str) -> None:
    argument = {"log_image": "images", "log_audio": "audios", "log_video": "videos"}[method]
    with pytest.raises(TypeError, match=f'Expected a list as "{argument}"'):
        getattr(WandbLogger(), method)("samples", "1.jpg")


@pytest.mark.filterwarnings("ignore:There is a wandb run already in progress")  # the run the test set up
def test_wandb_download_artifact(wandb_stub: MagicMock, tmp_path: Path) -> None:
    wandb_stub.run = wandb_stub.init.return_value
    WandbLogger().download_artifact("test_artifact", str(tmp_path), "model", True)
    wandb_stub.run.use_artifact.assert_called_once_with("test_artifact")
    wandb_stub.run = None
    WandbLogger.download_artifact("test_artifact", str(tmp_path), "model", True)
    wandb_stub.Api.return_value.artifact.assert_called_once_with("test_artifact", type="model")


@pytest.mark.parametrize(("given", "expected"), [("True", True), ("False", False), ("all", "all")])
def test_lightning_cli_parses_wandb_log_model(
    given: str, expected: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning.pytorch.cli import LightningCLI

    config = tmp_path / "config.yaml"
    logger = {"class_path": "tracklight.loggers.WandbLogger", "init_args": {"log_model": given, "offline": True}}
    config.write_text(yaml.safe_dump({"trainer": {"logger": logger}}))
    for extra in ([], [f"--trainer.logger.init_args.log_model={given}"]):
        monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(config), *extra])
        cli = LightningCLI(BoringModel, run=False, save_config_callback=None, seed_everything_default=0)
        assert cli.config.trainer.logger.init_args.log_model == expected
        assert isinstance(cli.trainer.logger, WandbLogger)


@pytest.mark.parametrize("name", ["wandb", "comet", "neptune"])
def test_fit_then_test_log_into_one_run(name: str, tmp_path: Path) -> None:
    logger = _make(name, tmp_path / "logs")
    trainer = _trainer(tmp_path, logger)
    trainer.fit(LoggingModel())
    trainer.test(ckpt_path="best", verbose=False)
    logger.finalize("success")
    if name == "wandb":
        runs = read_runs(tmp_path / "logs")
    elif name == "comet":
        runs = comet_archives(tmp_path / "logs")
    else:
        runs = neptune_runs(tmp_path / ".neptune")
    assert len(runs) == 1, runs


# ================================ MLflow ====================================================================


def test_mlflow_experiments_and_runs_by_name(tmp_path: Path) -> None:
    uri = mlflow_store(tmp_path)
    first, second, other = (_mlflow(tmp_path, experiment_name=name) for name in ("test", "test", "new"))
    for logger in (first, second, other):
        for _ in range(3):
            _ = logger.experiment  # asking again creates nothing more
        logger.finalize("success")
    assert first.experiment_id == second.experiment_id != other.experiment_id
    assert first.run_id != second.run_id
    resumed = _mlflow(tmp_path, run_id=first.run_id)
    assert (resumed.experiment_id, resumed.run_id) == (first.experiment_id, first.run_id)
    resumed.finalize("success")
    client = _mlflow_client(first)
    assert len(client.search_runs([first.experiment_id])) == 2
    assert uri == first.experiment.tracking_uri


@pytest.mark.filterwarnings("ignore:MLFlowLogger. run_name=.* replaces the mlflow.runName tag")  # as asked here
def test_mlflow_run_name_tag(tmp_path: Path) -> None:
    named = _mlflow(tmp_path, experiment_name="test", run_name="run-name-1")
    overriding = _mlflow(tmp_path, experiment_name="test", run_name="run-name-1", tags={"mlflow.runName": "other"})
    plain = _mlflow(tmp_path, experiment_name="test")
    for logger in (named, overriding, plain):
        _ = logger.experiment
        logger.finalize("success")
    client = _mlflow_client(plain)
    assert client.get_run(named.run_id).data.tags["mlflow.runName"] == "run-name-1"
    assert client.get_run(overriding.run_id).data.tags["mlflow.runName"] == "run-name-1"
    assert "mlflow.user" in client.get_run(plain.run_id).data.tags  # MLflow's context tags, resolved as Lightning does


def test_mlflow_checkpoints_go_under_experiment_and_run(tmp_path: Path) -> None:
    logger = MLFlowLogger("test", save_dir=str(tmp_path))  # the default store, under save_dir
    trainer = _trainer(tmp_path, logger)
    assert logger.save_dir == str(tmp_path) == trainer.log_dir
    trainer.fit(BoringModel())
    assert (logger.name, logger.version) == (logger.experiment_id, logger.run_id)
    expected = tmp_path / logger.experiment_id / logger.run_id / "checkpoints"
    assert trainer.checkpoint_callback.dirpath == str(expected)
    assert os.listdir(expected) == ["epoch=0-step=1.ckpt"]


def test_mlflow_values_land_in_the_run(tmp_path: Path) -> None:
    logger = _mlflow(tmp_path, experiment_name="test", artifact_location=str(tmp_path / "my_artifact_location"))
    logger.log_hyperparams({"test": "test_param", **{f"test_{index}": f"value_{index}" for index in range(150)}})
    logger.log_metrics({"some_metric": 10})
    logger.finalize("success")
    client = _mlflow_client(logger)
    run = client.get_run(logger.run_id)
    assert len(run.data.params) == 151 and run.data.params["test"] == "test_param"
    assert [(metric.step, metric.value) for metric in client.get_metric_history(logger.run_id, "some_metric")] == [
        (0, 10.0)
    ]
    assert client.get_experiment(logger.experiment_id).artifact_location.endswith("my_artifact_location")


@pytest.mark.parametrize("synchronous", [False, True])
def test_mlflow_synchronous(synchronous: bool, tmp_path: Path) -> None:
    logger = _mlflow(tmp_path, synchronous=synchronous)
    logger.log_hyperparams({"test": "test_param"})
    logger.log_metrics({"some_metric": 10})
    if synchronous:  # in the store when the call returns, as Lightning's blocking calls
        run = _mlflow_client(logger).get_run(logger.run_id)
        assert (run.data.params, run.data.metrics) == ({"test": "test_param"}, {"some_metric": 10.0})
    logger.finalize("success")
    run = _mlflow_client(logger).get_run(logger.run_id)
    assert (run.data.params, run.data.metrics) == ({"test": "test_param"}, {"some_metric": 10.0})


@pytest.mark.parametrize(
    ("status", "expected"), [("success", "FINISHED"), ("failed", "FAILED"), ("finished", "FINISHED")]
)
def test_mlflow_finalize_status(status: str, expected: str, tmp_path: Path) -> None:
    unused = _mlflow(tmp_path, experiment_name="unused")
    unused.finalize("failed")  # no run was started, so none is ended (or created)
    logger = _mlflow(tmp_path, experiment_name="used")
    _ = logger.experiment
    logger.finalize(status)
    client = _mlflow_client(logger)
    assert client.get_run(logger.run_id).info.status == expected
    assert [experiment.name for experiment in client.search_experiments()] == ["used", "Default"]


def _mlflow_checkpoints(logger: MLFlowLogger) -> list[str]:
    client = _mlflow_client(logger)

    def walk(path: str | None) -> Iterator[str]:
        for item in client.list_artifacts(logger.run_id, path):
            yield from walk(item.path) if item.is_dir else [item.path]

    return sorted(path for path in walk(None) if path.endswith(".ckpt"))


def _mlflow_fit(tmp_path: Path, log_model: Any) -> MLFlowLogger:
    logger = _mlflow(tmp_path, log_model=log_model)
    _trainer(tmp_path, logger, max_epochs=2, limit_train_batches=3).fit(BoringModel())
    return logger


def test_mlflow_log_model_all_and_false(tmp_path: Path) -> None:
    assert len(_mlflow_checkpoints(_mlflow_fit(tmp_path / "all", "all"))) == 2
    assert _mlflow_checkpoints(_mlflow_fit(tmp_path / "false", False)) == []


def test_mlflow_log_model_true_uploads_once_at_the_end(tmp_path: Path) -> None:
    checkpoints = _mlflow_checkpoints(_mlflow_fit(tmp_path, True))
    assert [os.path.basename(path) for path in checkpoints] == ["epoch=1-step=6.ckpt"]


def test_mlflow_sets_the_tracking_uri(tmp_path: Path) -> None:
    import mlflow

    # Not MLflow's own default (sqlite:///mlflow.db in the working directory), so only setting it can match.
    logger = _mlflow(tmp_path, tracking_uri=mlflow_store(tmp_path / "store"))
    _ = logger.experiment
    assert mlflow.get_tracking_uri() == logger.experiment.tracking_uri  # so mlflow.log_artifact reaches the run
    logger.finalize("success")


def test_mlflow_cleans_keys_as_lightning(tmp_path: Path) -> None:
    logger = _mlflow(tmp_path)
    lightnings_sentence = "MLFlow only allows '_', '/', '.' and ' ' special characters in metric name. Replacing"
    with pytest.warns(RuntimeWarning, match=re.escape(f"{lightnings_sentence} [some_metric] with some_metric.")):
        logger.log_metrics({"[some_metric]": 10})
    logger.finalize("success")
    assert set(_mlflow_client(logger).get_run(logger.run_id).data.metrics) == {"some_metric"}


def test_mlflow_leaves_the_environment_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    before = dict(os.environ)
    logger = _mlflow(tmp_path)
    logger.log_metrics({"a": 1.0}, step=0)
    logger.finalize("success")
    assert dict(os.environ) == before


# ================================ Comet =====================================================================


def test_comet_start_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    comet_ml = _stub(monkeypatch, "comet_ml")
    comet_ml.start.return_value.get_key.return_value = "KEY"
    logger = CometLogger(api_key="key", workspace="dummy-test", project_name="general", experiment_name="My Name")
    assert logger.version == "KEY"
    options = comet_ml.start.call_args.kwargs
    assert {key: options[key] for key in ("api_key", "workspace", "project", "experiment_key", "mode")} == {
        "api_key": "key",
        "workspace": "dummy-test",
        "project": "general",
        "experiment_key": None,
        "mode": None,
    }
    assert options["experiment_config"] is comet_ml.ExperimentConfig.return_value
    assert comet_ml.ExperimentConfig.call_args.kwargs["name"] == "My Name"  # the older argument's meaning
    assert "experiment_name" not in comet_ml.ExperimentConfig.call_args.kwargs


def test_comet_metrics_epoch_prefix_and_parameters(tmp_path: Path) -> None:
    logger = _make("comet", tmp_path)
    logger.log_metrics({"test": 1, "epoch": 1}, step=123)
    hyperparams = {"batch_size": 256, "config": {"SLURM Job ID": "22334455", "autoencoder_model": False}}
    logger.log_hyperparams(hyperparams)
    logger.finalize("success")
    (archive,) = comet_archives(tmp_path)
    assert archive.metrics("test") == [(123, 1, 1)]  # `epoch` is the value's epoch, not a metric
    assert archive.metrics("epoch") == []
    assert set(archive.parameters()) == {"batch_size", "config|SLURM Job ID", "config|autoencoder_model"}


def test_comet_log_graph(tmp_path: Path) -> None:
    logger = _make("comet", tmp_path)
    logger.log_graph(torch.nn.Linear(2, 1))
    logger.finalize("success")
    (archive,) = comet_archives(tmp_path)
    assert any("Linear(in_features=2" in str(payload) for payload in archive.of_type("graph"))


def test_comet_refuses_a_multi_element_tensor_and_leaves_metrics_alone(tmp_path: Path) -> None:
    logger = _make("comet", tmp_path)
    metrics = {"tensor": torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True), "epoch": 1}
    with pytest.raises(InvalidMetricError, match="'tensor'"):
        logger.log_metrics(metrics)
    assert metrics["tensor"].requires_grad and set(metrics) == {"tensor", "epoch"}
    logger.finalize("success")


def test_comet_finalize_keeps_the_experiment(tmp_path: Path) -> None:
    logger = _make("comet", tmp_path)
    experiment = logger.experiment
    logger.finalize("success")
    assert logger.experiment is experiment and not experiment.ended


# ================================ process-wide side effects =================================================


#: Each logger, built in a fresh interpreter from tracklight alone (the suite's own threads would muddle the count).
_BUILD = {
    "csv": "CSVLogger('logs')",
    "tensorboard": "TensorBoardLogger('logs')",
    "mlflow": "MLFlowLogger(save_dir='logs')",
    "wandb": "WandbLogger(save_dir='logs', offline=True)",
    "comet": "CometLogger(save_dir='logs', online=False, display_summary_level=0)",
    "neptune": "NeptuneLogger(mode='offline', capture_stdout=False, capture_stderr=False, source_files=[])",
}
_THREADS_AFTER_FINALIZE = """
import threading
from tracklight.loggers import *
logger = {build}
logger.log_metrics({{"loss": 1.0}}, step=0)
logger.log_hyperparams({{"lr": 0.1}})
logger.finalize("success")
print("threads after finalize:", sorted(t.name for t in threading.enumerate() if t.name.startswith("tracklight")))
"""


@pytest.mark.parametrize(
    "name",
    [
        "wandb",
        "comet",
        "neptune",
        "mlflow",
        "csv",
        "tensorboard",
    ],
)
def test_no_tracklight_thread_is_left_after_finalize(name: str, tmp_path: Path) -> None:
    code = _THREADS_AFTER_FINALIZE.format(build=_BUILD[name])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # The SDK may print after it (Neptune, ending the run finalize left open, at exit): find the line.
    (threads,) = [line for line in result.stdout.splitlines() if line.startswith("threads after finalize:")]
    assert threads == "threads after finalize: []"


#: A test that never calls finalize, as many in users' suites (and Lightning's) do: a thread check right after it
#: (stop() on each daemon thread left, as Lightning's suite does), then the logger dropped, as at the test's end.
_THREADS_WITHOUT_FINALIZE = """
import gc, threading, time
from tracklight.loggers import *

def ours():
    return [t for t in threading.enumerate() if t.name.startswith("tracklight")]

loggers = [{build}]
for logger in loggers:
    logger.log_metrics({{"loss": 1.0}}, step=0)
    logger.log_hyperparams({{"lr": 0.1}})
    {settle}
for thread in ours():
    thread.stop()
print("left after stop():", sorted(t.name for t in ours() if t.is_alive()))
for logger in loggers:
    logger.log_metrics({{"loss": 0.5}}, step=1)  # logging goes on after the check
del logger, loggers
gc.collect()
dropped = time.monotonic()
while ours() and time.monotonic() - dropped < 120:
    time.sleep(0.05)
waited = time.monotonic() - dropped
print(f"left after the logger was dropped: {{sorted(t.name for t in ours())}} after {{waited:.1f}} s")
"""


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("local", "CSVLogger('logs'), TensorBoardLogger('logs'), CSVLogger('memory://bucket/logs')"),
        ("mlflow", _BUILD["mlflow"]),
        ("wandb", _BUILD["wandb"]),
        ("comet", _BUILD["comet"]),
    ],
    ids=["local", "mlflow", "wandb", "comet"],
)
def test_no_tracklight_thread_is_left_without_finalize(name: str, build: str, tmp_path: Path) -> None:
    # MLflow's worker spends its first seconds importing MLflow, which stop() cannot cut short: the check comes
    # once what was logged is in the store (flush() waits for that; it is not finalize: the run stays open).
    settle = "logger.flush()" if name == "mlflow" else "pass"
    code = _THREADS_WITHOUT_FINALIZE.format(build=build, settle=settle)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "left after stop(): []" in lines
    (dropped,) = [line for line in lines if line.startswith("left after the logger was dropped:")]
    names, seconds = re.fullmatch(r"left after the logger was dropped: (.*) after (.*) s", dropped).groups()
    assert names == "[]"
    # An idle worker ends within a second, an idle upload within a few; a remote logger's worker first delivers
    # what was logged (MLflow is imported on it, seconds on a busy machine).
    assert float(seconds) < (5 if name == "local" else 60), dropped
