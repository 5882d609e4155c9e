"""The logger contract, run over every logger with no per-class branches.

Every backend appends one :class:`Backend` to ``BACKENDS`` (in ``_backends.py``): how to make a fresh logger
under a directory, and how to read back, after ``finalize``, the metrics and hyperparameters it recorded (with
the backend's own reader where it has one). Every test below then runs against it unchanged.
"""

from __future__ import annotations

import dataclasses
import pickle
import threading
import weakref
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image as PILImage

from _backends import Backend, Metrics, backend_fixtures
from tracklight import InvalidMetricError
from tracklight.loggers import DummyExperiment, Logger

backend, root, isolated, wandb_service = backend_fixtures()


def _same_metrics(got: Metrics, expected: Metrics) -> None:
    """``got`` holds ``expected`` (a backend may add keys of its own, such as TensorBoard's hp_metric)."""
    for key, values in expected.items():
        assert key in got, f"{key!r} was not recorded; got {sorted(got)}"
        assert got[key] == pytest.approx(values, rel=1e-6), key


# ---- identity -----------------------------------------------------------------------------------------


def test_identity_properties_have_lightning_types(backend: Backend, root: Path) -> None:
    from lightning.fabric.loggers import Logger as FabricLogger
    from lightning.pytorch.loggers import Logger as LightningLogger

    logger = backend.make(root)
    assert isinstance(logger, Logger)
    assert isinstance(logger, LightningLogger) and isinstance(logger, FabricLogger)
    assert logger.name is None or isinstance(logger.name, str)
    assert logger.version is None or isinstance(logger.version, (int, str))
    assert isinstance(logger.group_separator, str)
    for directory in (logger.save_dir, logger.root_dir, logger.log_dir):
        assert directory is None or isinstance(directory, str)
    if logger.save_dir is not None and logger.log_dir is not None:
        assert Path(logger.log_dir).is_relative_to(logger.save_dir)
    assert logger.version == logger.version  # stable once chosen


# ---- metrics ------------------------------------------------------------------------------------------


def test_metrics_of_every_numeric_kind_are_recorded(backend: Backend, root: Path) -> None:
    logger = backend.make(root)
    logger.log_metrics({"float": 0.5, "int": 3, "tensor": torch.tensor(0.25), "np_float": np.float32(0.125)}, step=0)
    logger.log_metrics({"float": 1.5, "tensor_int": torch.tensor(2), "np_int": np.int64(4)}, step=1)
    logger.log_metrics({"one_element": torch.tensor([7.0]), "np_float64": np.float64(-1.25)}, step=2)
    logger.log_metrics({"requires_grad": torch.tensor(3.0, requires_grad=True) * 2, "bool": True}, step=3)
    logger.finalize("success")
    _same_metrics(
        backend.read_metrics(logger),
        {
            "float": {0: 0.5, 1: 1.5},
            "int": {0: 3.0},
            "tensor": {0: 0.25},
            "np_float": {0: 0.125},
            "tensor_int": {1: 2.0},
            "np_int": {1: 4.0},
            "one_element": {2: 7.0},
            "np_float64": {2: -1.25},
            "requires_grad": {3: 6.0},
            "bool": {3: 1.0},
        },
    )


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("0.5", id="str"),
        pytest.param(None, id="none"),
        pytest.param([1.0, 2.0], id="list"),
        pytest.param(torch.ones(3), id="tensor"),
        pytest.param(np.ones(2), id="array"),
        pytest.param(object(), id="object"),
        # Faults, issue 10 row 15: each used to be stored wrongly or to crash with an error naming no key.
        pytest.param(np.complex64(1 + 2j), id="complex"),
        pytest.param(10**400, id="int-beyond-float"),
        pytest.param(torch.zeros((), device="meta"), id="meta-tensor"),
    ],
)
def test_bad_metric_values_raise_an_error_naming_the_key(backend: Backend, root: Path, bad: Any) -> None:
    logger = backend.make(root)
    with pytest.raises(InvalidMetricError, match="'val/accuracy'"):
        logger.log_metrics({"loss": 0.5, "val/accuracy": bad}, step=0)
    logger.log_metrics({"loss": 0.25}, step=1)  # the logger is still usable
    logger.finalize("success")
    assert backend.read_metrics(logger)["loss"] == pytest.approx({1: 0.25})


@pytest.mark.parametrize(
    "step",
    [
        # Faults, issue 17 item 4: MLflow's server refused 2**64 long after the call, and blamed itself; TensorBoard
        # stored it as step 0, silently.
        pytest.param(2**64, id="2**64"),
        pytest.param(2**63, id="int64-max+1"),
        pytest.param(-(2**63) - 1, id="int64-min-1"),
        pytest.param(np.uint64(2**64 - 1), id="numpy-uint64"),
        pytest.param(float("nan"), id="nan"),
    ],
)
def test_a_step_no_backend_holds_is_refused_naming_the_key(backend: Backend, root: Path, step: Any) -> None:
    logger = backend.make(root)
    with pytest.raises(InvalidMetricError, match=r"step of the metrics 'loss', 'val/accuracy' .*Fix: "):
        logger.log_metrics({"loss": 0.5, "val/accuracy": 0.75}, step=step)
    logger.log_metrics({"loss": 0.25}, step=2**40)  # the logger goes on; a large step within the bound is kept
    logger.finalize("success")
    assert backend.read_metrics(logger)["loss"] == pytest.approx({2**40: 0.25})


# ---- hyperparameters ----------------------------------------------------------------------------------


@dataclasses.dataclass
class DataConfig:
    root: str = "/data"
    batch_size: int = 16


def test_hyperparameters_nested_dicts_namespaces_and_dataclasses(backend: Backend, root: Path) -> None:
    logger = backend.make(root)
    logger.log_hyperparams({"lr": 0.1, "optimizer": {"name": "adam", "betas": {"beta1": 0.9}}})
    logger.log_hyperparams(Namespace(seed=7, model=Namespace(layers=3)))
    logger.log_hyperparams(DataConfig())
    logger.log_hyperparams({"data": DataConfig(batch_size=32), "flag": True})
    logger.finalize("success")
    recorded = {key: str(value) for key, value in backend.read_hparams(logger).items()}
    assert recorded == {
        "lr": "0.1",
        "optimizer/name": "adam",
        "optimizer/betas/beta1": "0.9",
        "seed": "7",
        "model/layers": "3",
        "root": "/data",
        "batch_size": "16",
        "data/root": "/data",
        "data/batch_size": "32",
        "flag": "True",
    }


def test_hyperparameters_that_need_converting_are_logged_with_a_warning(backend: Backend, root: Path) -> None:
    from tracklight import TracklightWarning

    logger = backend.make(root)
    with pytest.warns(TracklightWarning, match="'activation'"):
        logger.log_hyperparams({"weights": torch.tensor(0.5), "activation": torch.nn.functional.relu})
    logger.finalize("success")
    recorded = backend.read_hparams(logger)
    assert str(recorded["weights"]) == "0.5" and str(recorded["activation"]) == "relu"


# ---- media --------------------------------------------------------------------------------------------


def _figure() -> Any:
    figure = plt.figure(figsize=(1, 1), dpi=20)
    figure.gca().plot([0, 1], [1, 0])
    return figure


MEDIA_CALLS: dict[str, Callable[[Any], None]] = {
    "image-torch-chw": lambda logger: logger.log_image("image", torch.rand(3, 8, 6), step=0),
    "image-numpy-hwc": lambda logger: logger.log_image("image", np.random.rand(8, 6, 3), step=1),
    "image-numpy-hw-uint8": lambda logger: logger.log_image("image", np.zeros((8, 6), dtype=np.uint8), step=2),
    "image-bool": lambda logger: logger.log_image("image", torch.rand(8, 6) > 0.5, step=3),
    "image-pil": lambda logger: logger.log_image("image", PILImage.new("RGB", (6, 8)), step=4, caption="pil"),
    "image-figure": lambda logger: logger.log_image("image", _figure(), step=5),
    "image-batch": lambda logger: logger.log_image("batch", torch.rand(2, 3, 8, 6), step=0, caption=["a", "b"]),
    "image-list-mixed-sizes": lambda logger: logger.log_image("list", [np.zeros((4, 4)), torch.rand(3, 8, 6)]),
    "image-dataformats": lambda logger: logger.log_image("image", np.zeros((8, 3, 6)), step=6, dataformats="HCW"),
    "histogram-torch": lambda logger: logger.log_histogram("hist", torch.randn(100), step=0),
    "histogram-numpy-2d": lambda logger: logger.log_histogram("hist", np.random.randn(10, 10), step=1, bins=10),
    "histogram-list": lambda logger: logger.log_histogram("hist", [1, 2, 2, 3], step=2),
    "text": lambda logger: logger.log_text("text", "**markdown**", step=0),
    "text-not-str": lambda logger: logger.log_text("text", 42, step=1),
    "audio-numpy-mono": lambda logger: logger.log_audio("audio", np.zeros(800), step=0, sample_rate=8000),
    "audio-torch-stereo": lambda logger: logger.log_audio("audio", torch.rand(2, 400) - 0.5, step=1, caption="st"),
    "figure": lambda logger: logger.log_figure("figure", _figure(), step=0),
    "figure-kept-open": lambda logger: logger.log_figure("figure", _figure(), step=1, close=False),
    "table-rows": lambda logger: logger.log_table("table", columns=["a", "b"], data=[[1, "x"], [2, "y"]], step=0),
    "table-pandas": lambda logger: logger.log_table("table", dataframe=pd.DataFrame({"a": [1.5]}), step=1),
    "graph": lambda logger: logger.log_graph(torch.nn.Linear(3, 1), torch.zeros(1, 3)),
}


@pytest.mark.filterwarnings("ignore::tracklight.TracklightWarning")
@pytest.mark.parametrize("call", list(MEDIA_CALLS.values()), ids=list(MEDIA_CALLS))
def test_every_media_method_accepts_every_input_kind(backend: Backend, root: Path, call: Any) -> None:
    logger = backend.make(root)
    call(logger)
    logger.log_metrics({"after": 1.0}, step=9)  # and the logger goes on
    logger.finalize("success")
    plt.close("all")
    assert backend.read_metrics(logger)["after"] == pytest.approx({9: 1.0})


# ---- lifecycle ----------------------------------------------------------------------------------------


def test_save_and_finalize_are_idempotent_and_logging_can_go_on(backend: Backend, root: Path) -> None:
    logger = backend.make(root)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.save()
    logger.save()
    logger.finalize("success")
    logger.finalize("success")
    # fit, then test with the same logger: Lightning finalizes after each
    logger.log_metrics({"loss": 0.5, "test_acc": 0.75}, step=1)
    logger.save()
    logger.finalize("success")
    _same_metrics(backend.read_metrics(logger), {"loss": {0: 1.0, 1: 0.5}, "test_acc": {1: 0.75}})


@pytest.mark.parametrize("status", ["success", "failed", "aborted"])
def test_finalize_accepts_every_status(backend: Backend, root: Path, status: str) -> None:
    logger = backend.make(root)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize(status)
    assert backend.read_metrics(logger)["loss"] == {0: 1.0}


def test_after_save_checkpoint_takes_lightnings_proxy(backend: Backend, root: Path, tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints")
    logger = backend.make(root)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.after_save_checkpoint(weakref.proxy(checkpoint))  # what ModelCheckpoint passes
    logger.finalize("success")
    assert backend.read_metrics(logger)["loss"] == {0: 1.0}


def test_trainer_fit_logs_through_it(backend: Backend, root: Path, tiny_model: type, make_trainer: Any) -> None:
    logger = backend.make(root)
    trainer = make_trainer(logger=logger)
    trainer.fit(tiny_model(lr=0.05))
    recorded = backend.read_metrics(logger)
    assert sorted(recorded["train_loss"]) == [0, 1, 2, 3]
    assert list(recorded["val_loss"]) == [3]
    assert str(backend.read_hparams(logger)["lr"]) == "0.05"
    checkpoint = Path(trainer.checkpoint_callback.best_model_path)
    assert checkpoint.is_file() and checkpoint.parent.name == "checkpoints"


def test_pickling_round_trip(backend: Backend, root: Path) -> None:
    logger = backend.make(root)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    copy = pickle.loads(pickle.dumps(logger))
    assert type(copy) is type(logger)
    assert (copy.name, copy.version, copy.save_dir, copy.log_dir) == (
        logger.name,
        logger.version,
        logger.save_dir,
        logger.log_dir,
    )
    copy.log_metrics({"loss": 0.5}, step=1)
    copy.log_hyperparams({"batch_size": 8})
    copy.finalize("success")
    assert backend.read_metrics(copy)["loss"] == pytest.approx({0: 1.0, 1: 0.5})
    assert {key: str(value) for key, value in backend.read_hparams(copy).items()} == {"lr": "0.1", "batch_size": "8"}


def test_pickling_before_first_use_keeps_the_run(backend: Backend, root: Path) -> None:
    """ddp_spawn pickles the logger before training: the copy must write where the original would.

    What the copy logs is read back through the original, so each reader checks what names the run there: the
    version (CSV, TensorBoard, W&B), the run id (MLflow), the experiment key (Comet). Not the version as such: a
    Neptune offline run belongs to one process, so another process can only start a run of its own, beside it.
    """
    logger = backend.make(root)
    copy = pickle.loads(pickle.dumps(logger))
    assert (copy.save_dir, copy.log_dir) == (logger.save_dir, logger.log_dir)
    copy.log_metrics({"loss": 0.5}, step=0)
    copy.finalize("success")
    assert backend.read_metrics(logger)["loss"] == {0: 0.5}


# ---- threads ------------------------------------------------------------------------------------------


def test_first_use_from_many_threads_at_once_starts_one_run(backend: Backend, root: Path) -> None:
    """Faults, issue 17 item 8: threads making a logger's first call at once each started a run (8 W&B runs, 6
    MLflow runs of which 5 were left RUNNING), and Comet raised AttributeError into the threads."""
    logger = backend.make(root)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def first_call(index: int) -> None:
        try:
            start.wait()
            if index % 2:
                _ = logger.experiment
            logger.log_metrics({f"thread{index}": 1.0}, step=index)  # a series each: Neptune reorders none
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=first_call, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    logger.finalize("success")
    assert errors == []
    recorded = backend.read_metrics(logger)
    assert {f"thread{index}": {index: 1.0} for index in range(8)}.items() <= recorded.items()
    assert backend.count_runs(root) == 1


# ---- ranks --------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::tracklight.TracklightWarning")
def test_rank_above_zero_writes_nothing(backend: Backend, root: Path, set_rank: Any, tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    set_rank(1)
    logger = backend.make(root)
    assert isinstance(logger.experiment, DummyExperiment)
    logger.log_hyperparams({"lr": 0.1, "nested": {"a": 1}})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_graph(torch.nn.Linear(3, 1), torch.zeros(1, 3))
    for call in MEDIA_CALLS.values():
        call(logger)
    logger.after_save_checkpoint(ModelCheckpoint(dirpath=tmp_path / "checkpoints"))
    logger.save()
    logger.finalize("success")
    plt.close("all")
    _ = (logger.name, logger.version, logger.save_dir, logger.log_dir)
    assert not root.exists(), sorted(str(path) for path in root.rglob("*"))
