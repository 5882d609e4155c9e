"""LoggerCollection: every call fans out, failures are isolated and reported once, look-up, identity."""

from __future__ import annotations

import warnings
from argparse import Namespace
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from tracklight import TracklightError, TracklightWarning, media
from tracklight.loggers import CSVLogger, DummyExperiment, Logger, LoggerCollection, TensorBoardLogger


class Recorder(Logger):
    """Records every call it gets, after the base class converted the media."""

    def __init__(self, name: str = "recorder", save_dir: str | None = None) -> None:
        self._name = name
        self._save_dir = save_dir
        self.calls: list[tuple[Any, ...]] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int:
        return 7

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    @property
    def experiment(self) -> str:
        return f"experiment-of-{self._name}"

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self.calls.append(("log_metrics", dict(metrics), step))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("log_hyperparams", params, args, kwargs))

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        self.calls.append(("log_graph", model, input_array))

    def save(self) -> None:
        self.calls.append(("save",))

    def finalize(self, status: str) -> None:
        self.calls.append(("finalize", status))

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self.calls.append(("after_save_checkpoint", checkpoint_callback))

    def _write_images(self, key: str, images: list[media.Image], step: int | None) -> None:
        self.calls.append(("image", key, [image.pixels.shape for image in images], step))

    def _write_histogram(self, key: str, values: np.ndarray, step: int | None, bins: Any) -> None:
        self.calls.append(("histogram", key, values.size, step, bins))

    def _write_text(self, key: str, text: str, step: int | None) -> None:
        self.calls.append(("text", key, text, step))

    def _write_audio(self, key: str, audio: media.Audio, step: int | None) -> None:
        self.calls.append(("audio", key, audio.samples.shape, audio.sample_rate, step))

    def _write_figure(self, key: str, figure: Any, step: int | None) -> None:
        # the figure must still be open here: the collection closes it only after every logger had it
        self.calls.append(("figure", key, plt.fignum_exists(figure.number), step))

    def _write_table(self, key: str, table: media.Table, step: int | None) -> None:
        self.calls.append(("table", key, table.columns, table.rows, step))


class Broken(Recorder):
    """Fails in every call, as a backend whose server is down."""

    def __getattribute__(self, attribute: str) -> Any:
        if attribute.startswith(("log_", "save", "finalize", "after_save")):

            def fail(*args: Any, **kwargs: Any) -> None:
                raise ConnectionError(f"server down during {attribute}")

            return fail
        return super().__getattribute__(attribute)


def _every_call(collection: LoggerCollection, checkpoint: object, model: object) -> None:
    figure = plt.figure(figsize=(1, 1))
    collection.log_metrics({"loss": 0.5}, step=1)
    collection.log_hyperparams(Namespace(lr=0.1))
    collection.log_graph(model, "input")
    collection.log_image("img", torch.rand(2, 3, 4, 5), step=2, caption=["a", "b"])
    collection.log_histogram("hist", np.arange(6), step=3, bins=3)
    collection.log_text("text", "hello", step=4)
    collection.log_audio("audio", np.zeros(10), step=5, sample_rate=100)
    collection.log_figure("figure", figure, step=6)
    collection.log_table("table", columns=["a"], data=[[1]], step=7)
    collection.save()
    collection.after_save_checkpoint(checkpoint)
    collection.finalize("success")
    assert not plt.fignum_exists(figure.number)


def _expected_calls(checkpoint: object, model: object) -> list[tuple[Any, ...]]:
    return [
        ("log_metrics", {"loss": 0.5}, 1),
        ("log_hyperparams", Namespace(lr=0.1), (), {}),
        ("log_graph", model, "input"),
        ("image", "img", [(4, 5, 3), (4, 5, 3)], 2),
        ("histogram", "hist", 6, 3, 3),
        ("text", "text", "hello", 4),
        ("audio", "audio", (10, 1), 100, 5),
        ("figure", "figure", True, 6),
        ("table", "table", ["a"], [[1]], 7),
        ("save",),
        ("after_save_checkpoint", checkpoint),
        ("finalize", "success"),
    ]


def test_every_call_fans_out_to_every_logger() -> None:
    first, second = Recorder("first"), Recorder("second")
    checkpoint, model = object(), object()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to report
        _every_call(LoggerCollection([first, second]), checkpoint, model)
    assert first.calls == second.calls == _expected_calls(checkpoint, model)


def test_a_failing_logger_does_not_stop_the_others_and_is_reported_once() -> None:
    broken, healthy = Broken("broken"), Recorder("healthy")
    collection = LoggerCollection([broken, healthy])
    checkpoint, model = object(), object()
    with pytest.warns(TracklightWarning) as caught:
        _every_call(collection, checkpoint, model)
        for step in range(5):
            collection.log_metrics({"loss": 1.0}, step=step)
    assert healthy.calls[:12] == _expected_calls(checkpoint, model)
    assert len(healthy.calls) == 17
    [warning] = [w for w in caught if issubclass(w.category, TracklightWarning)]
    message = str(warning.message)
    assert "Broken (logger 0 of this LoggerCollection) failed in log_metrics()" in message
    assert "ConnectionError: server down during log_metrics" in message
    assert "strict=True" in message
    assert warning.filename == __file__  # points at the caller, not at tracklight
    assert collection.failures[("Broken", "log_metrics")] == 6
    assert collection.failures[("Broken", "finalize")] == 1
    assert sum(collection.failures.values()) == 6 + 11


def test_a_real_backend_keeps_working_beside_a_failing_one(tmp_path: Path) -> None:
    csv_logger = CSVLogger(tmp_path)
    collection = LoggerCollection([Broken(), csv_logger])
    with pytest.warns(TracklightWarning, match="failed in log_metrics"):
        collection.log_metrics({"loss": 0.5}, step=0)
    collection.finalize("success")
    assert (Path(csv_logger.log_dir) / "metrics.csv").read_text().splitlines() == ["loss,step", "0.5,0"]


def test_strict_raises_the_backend_error() -> None:
    healthy = Recorder()
    collection = LoggerCollection([Broken(), healthy], strict=True)
    with pytest.raises(ConnectionError, match="server down during log_metrics"):
        collection.log_metrics({"loss": 1.0}, step=0)
    assert healthy.calls == []


def test_a_logger_without_a_media_method_is_reported_not_fatal() -> None:
    class Minimal:  # a foreign logger object that only knows metrics
        name, version = "minimal", 0

        def __init__(self) -> None:
            self.metrics: list[Any] = []

        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            self.metrics.append((metrics, step))

    minimal, recorder = Minimal(), Recorder()
    collection = LoggerCollection([minimal, recorder])
    collection.log_metrics({"a": 1.0}, step=0)
    with pytest.warns(TracklightWarning, match=r"Minimal .* failed in log_text\(\) with AttributeError"):
        collection.log_text("note", "x", step=0)
    assert minimal.metrics == [({"a": 1.0}, 0)]
    assert recorder.calls[-1] == ("text", "note", "x", 0)


# ---- look-up ------------------------------------------------------------------------------------------


def test_look_up_by_index_class_class_name_and_logger_name(tmp_path: Path) -> None:
    csv_logger = CSVLogger(tmp_path, name="csv_run")
    tb_logger = TensorBoardLogger(tmp_path, name="tb_run")
    recorder = Recorder("custom-name")
    collection = LoggerCollection([csv_logger, tb_logger, recorder])
    assert (collection[0], collection[1], collection[-1]) == (csv_logger, tb_logger, recorder)
    assert collection[TensorBoardLogger] is tb_logger
    assert collection[Logger] is csv_logger  # the first match
    assert collection["TensorBoardLogger"] is tb_logger
    assert collection["tensorboard"] is tb_logger
    assert collection["csvlogger"] is csv_logger
    assert collection["tb_run"] is tb_logger
    assert collection["custom-name"] is recorder
    assert collection["Recorder"] is recorder
    assert TensorBoardLogger in collection and "csv_run" in collection and recorder in collection
    assert "wandb" not in collection
    assert collection.get("wandb") is None and collection.get("wandb", "fallback") == "fallback"
    assert len(collection) == 3 and collection.loggers == [csv_logger, tb_logger, recorder]
    with pytest.raises(KeyError, match=r"No logger matches 'wandb'.*CSVLogger, TensorBoardLogger, Recorder"):
        collection["wandb"]
    with pytest.raises(IndexError):
        collection[3]


def test_loggers_is_a_copy() -> None:
    collection = LoggerCollection([Recorder()])
    collection.loggers.append(Recorder("other"))
    assert len(collection) == 1


def test_an_empty_collection_is_an_error() -> None:
    with pytest.raises(TracklightError, match=r"at least one logger.*LoggerCollection\(\[CSVLogger\('logs'\)\]\)"):
        LoggerCollection([])


# ---- identity -----------------------------------------------------------------------------------------


def test_not_iterable_so_the_trainer_keeps_it_whole(tmp_path: Path) -> None:
    from lightning.pytorch import Trainer

    collection = LoggerCollection([CSVLogger(tmp_path), TensorBoardLogger(tmp_path)])
    assert not isinstance(collection, Iterable)
    trainer = Trainer(logger=collection, default_root_dir=tmp_path, enable_progress_bar=False)
    assert trainer.loggers == [collection] and trainer.logger is collection


def test_directories_name_and_version_are_the_first_loggers(tmp_path: Path) -> None:
    first = TensorBoardLogger(tmp_path / "a", name="exp", version=3, sub_dir="sub")
    second = CSVLogger(tmp_path / "b", name="other")
    collection = LoggerCollection([first, second])
    assert (collection.name, collection.version) == ("exp", 3)
    assert collection.save_dir == str(tmp_path / "a")
    assert collection.root_dir == str(tmp_path / "a" / "exp")
    assert collection.log_dir == str(tmp_path / "a" / "exp" / "version_3" / "sub")
    assert collection.group_separator == "/"
    recorders = LoggerCollection([Recorder("r", save_dir=None), second])
    assert (recorders.name, recorders.version, recorders.save_dir, recorders.log_dir) == ("r", 7, None, None)


def test_experiment_is_every_loggers_experiment_on_rank_zero_only(set_rank: Any) -> None:
    collection = LoggerCollection([Recorder("a"), Recorder("b")])
    set_rank(0)
    assert collection.experiment == ["experiment-of-a", "experiment-of-b"]
    set_rank(1)
    assert isinstance(collection.experiment, DummyExperiment)
