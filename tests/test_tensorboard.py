"""TensorBoardLogger against Lightning's: same arguments, layout and event data, read back by TensorBoard.

Both loggers get the same calls (or the same Trainer run) in separate directories; TensorBoard's
``EventAccumulator`` and the hparams plugin's parsers read what each wrote, and the results must agree.
"""

from __future__ import annotations

import inspect
import io
import math
import os
import pickle
import re
import struct
import wave
from argparse import Namespace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.tensorboard import SummaryWriter

from tracklight import InvalidMetricError, TracklightWarning
from tracklight.loggers import DummyExperiment, TensorBoardLogger

# ---- reading event files back ------------------------------------------------------------------------


def accumulate(path: str | os.PathLike[str]) -> event_accumulator.EventAccumulator:
    accumulator = event_accumulator.EventAccumulator(
        os.fspath(path), size_guidance=event_accumulator.STORE_EVERYTHING_SIZE_GUIDANCE
    )
    accumulator.Reload()
    return accumulator


def scalars(path: str | os.PathLike[str]) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of one run directory: ``{tag: [(step, value), ...]}``."""
    accumulator = accumulate(path)
    return {tag: [(s.step, s.value) for s in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def runs(log_dir: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """The scalars of ``log_dir`` and of every run below it (``add_scalars`` writes sub-runs), by relative path."""
    found = {}
    for directory, _, files in os.walk(log_dir):
        if any("tfevents" in name for name in files):
            found[os.path.relpath(directory, log_dir)] = scalars(directory)
    return found


def comparable(series: dict[str, list[tuple[int, float]]]) -> dict[str, list[tuple[int, bytes]]]:
    """Series with values as float32 bit patterns, so NaN equals NaN."""
    return {tag: [(step, struct.pack("<f", value)) for step, value in points] for tag, points in series.items()}


def hparams_plugin(path: str) -> dict[str, Any]:
    """The HPARAMS tab's data, parsed the way TensorBoard's hparams plugin parses it."""
    try:
        content = accumulate(path).PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    except KeyError:  # no hparams plugin data in the run
        return {}
    parsed: dict[str, Any] = {}
    if hparams_metadata.EXPERIMENT_TAG in content:
        parsed["experiment"] = hparams_metadata.parse_experiment_plugin_data(content[hparams_metadata.EXPERIMENT_TAG])
    if hparams_metadata.SESSION_START_INFO_TAG in content:
        parsed["start"] = hparams_metadata.parse_session_start_info_plugin_data(
            content[hparams_metadata.SESSION_START_INFO_TAG]
        )
    return parsed


def hparam_values(start_info: Any) -> dict[str, Any]:
    return {key: getattr(value, value.WhichOneof("kind")) for key, value in start_info.hparams.items()}


def both(tmp_path: Path, **kwargs: Any) -> tuple[LightningTensorBoardLogger, TensorBoardLogger]:
    """Lightning's logger and ours with the same arguments, each under its own directory."""
    return (
        LightningTensorBoardLogger(tmp_path / "lightning", **kwargs),
        TensorBoardLogger(tmp_path / "tracklight", **kwargs),
    )


def text_of(accumulator: event_accumulator.EventAccumulator, tag: str) -> str:
    (event,) = accumulator.Tensors(tag)
    return event.tensor_proto.string_val[0].decode("utf-8")


# ---- a tiny LightningModule --------------------------------------------------------------------------


class RegressionModel(LightningModule):
    """Linear regression on 16 fixed samples: 4 steps per epoch; logs train, val and test losses."""

    def __init__(self, lr: float = 0.05, hidden: int = 4, use_experiment: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(hidden, 1)
        self.example_input_array = torch.zeros(2, hidden)
        generator = torch.Generator().manual_seed(0)
        self._x = torch.randn(16, hidden, generator=generator)
        self._y = torch.randn(16, 1, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def _loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:
        if self.hparams.use_experiment:  # the Lightning docs' way of reaching TensorBoard's own API
            tensorboard = self.logger.experiment
            tensorboard.add_image("weights", self.layer.weight.detach()[None], self.global_step, dataformats="CHW")
            tensorboard.add_histogram("weights_hist", self.layer.weight, self.global_step)
            tensorboard.add_text("note", f"epoch {self.current_epoch}", self.global_step)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test_loss", self._loss(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def _loader(self, batch_size: int) -> DataLoader:
        return DataLoader(TensorDataset(self._x, self._y), batch_size=batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader(4)

    def val_dataloader(self) -> DataLoader:
        return self._loader(8)

    def test_dataloader(self) -> DataLoader:
        return self._loader(8)


def make_trainer(root: Path, logger: Any, **overrides: Any) -> Trainer:
    options: dict[str, Any] = {
        "default_root_dir": root,
        "logger": logger,
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 2,
        "log_every_n_steps": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    options.update(overrides)
    return Trainer(**options)


# ---- arguments and layout ----------------------------------------------------------------------------


def test_constructor_takes_lightnings_arguments_with_the_same_defaults() -> None:
    ours = dict(inspect.signature(TensorBoardLogger.__init__).parameters)
    theirs = inspect.signature(LightningTensorBoardLogger.__init__).parameters

    # Lightning's arguments, and tracklight's one more: continue_run (docs/resume.md), keyword-only.
    continue_run = ours.pop("continue_run")
    assert (continue_run.kind, continue_run.default) == (inspect.Parameter.KEYWORD_ONLY, True)
    assert list(ours) == list(theirs)
    assert {name: p.default for name, p in ours.items()} == {name: p.default for name, p in theirs.items()}
    assert {name: p.kind for name, p in ours.items()} == {name: p.kind for name, p in theirs.items()}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"name": None},
        {"name": ""},
        {"name": "my_model"},
        {"name": "nested/exp"},
        {"version": 3},
        {"version": "run-a"},
        {"version": "run-a", "sub_dir": "fold_1"},
        {"sub_dir": Path("fold_2")},
        {"name": "m", "version": 7, "sub_dir": "s"},
    ],
    ids=repr,
)
def test_paths_match_lightning(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    theirs, ours = both(tmp_path, **kwargs)

    def relative(logger: Any) -> dict[str, Any]:
        base = str(tmp_path / ("lightning" if logger is theirs else "tracklight"))
        return {
            "name": logger.name,
            "version": logger.version,
            "sub_dir": logger.sub_dir,
            "save_dir": os.path.relpath(logger.save_dir, base),
            "root_dir": os.path.relpath(logger.root_dir, base),
            "log_dir": os.path.relpath(logger.log_dir, base),
        }

    assert relative(ours) == relative(theirs)


def test_next_version_is_chosen_like_lightning(tmp_path: Path) -> None:
    for side in ("lightning", "tracklight"):
        for existing in ("version_0", "version_4", "version_x", "other"):
            (tmp_path / side / "lightning_logs" / existing).mkdir(parents=True)
    theirs, ours = both(tmp_path)

    assert ours.version == theirs.version == 5


def test_save_dir_accepts_a_path_object(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path / "logs")
    logger.log_metrics({"a": 1.0}, step=1)
    logger.finalize("success")

    assert logger.save_dir == str(tmp_path / "logs")
    assert scalars(logger.log_dir) == {"a": [(1, 1.0)]}


def test_home_and_environment_variables_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TB_ROOT", str(tmp_path / "env"))
    monkeypatch.chdir(tmp_path)
    for save_dir in ("~/logs", "$TB_ROOT/logs"):
        theirs = LightningTensorBoardLogger(save_dir, name="lightning")
        ours = TensorBoardLogger(save_dir, name="tracklight")
        ours.log_metrics({"a": 1.0}, step=0)
        ours.finalize("success")

        expected = os.path.expandvars(os.path.expanduser(f"{save_dir}/tracklight/version_0"))
        assert ours.log_dir == expected
        assert theirs.log_dir == os.path.join(os.path.dirname(os.path.dirname(expected)), "lightning", "version_0")
        assert scalars(ours.log_dir) == {"a": [(0, 1.0)]}
        assert TensorBoardLogger(save_dir, name="tracklight").version == 1  # versions are counted where they are
    # nothing was created under a literal "~" or "$TB_ROOT" in the working directory
    assert sorted(os.listdir(tmp_path)) == ["env", "home"]


def test_kwargs_are_passed_to_the_summary_writer(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, filename_suffix=".mine", max_queue=3, flush_secs=7)
    writer = logger.experiment
    writer.add_text("t", "hello")
    logger.finalize("success")

    assert isinstance(writer, SummaryWriter)
    assert (writer.max_queue, writer.flush_secs, writer.filename_suffix) == (3, 7, ".mine")
    assert writer.log_dir == logger.log_dir
    assert [name for name in os.listdir(logger.log_dir) if name.endswith(".mine")]


def test_layout_on_disk_matches_lightning(tmp_path: Path) -> None:
    theirs, ours = both(tmp_path, name="exp", version="v1", sub_dir="fold")
    for logger in (theirs, ours):
        logger.log_hyperparams({"lr": 0.1})
        logger.log_metrics({"loss": 0.5, "both": {"a": 1.0, "b": 2.0}}, step=1)
        logger.finalize("success")

    def layout(logger: Any) -> set[tuple[str, str]]:
        entries = set()
        for directory, _, files in os.walk(logger.save_dir):
            for name in files:
                kind = "events" if name.startswith("events.out.tfevents.") else name
                entries.add((os.path.relpath(directory, logger.save_dir), kind))
        return entries

    assert (
        layout(ours)
        == layout(theirs)
        == {
            ("exp/v1/fold", "events"),
            ("exp/v1/fold", "hparams.yaml"),
            ("exp/v1/fold/both_a", "events"),
            ("exp/v1/fold/both_b", "events"),
        }
    )


# ---- scalars -----------------------------------------------------------------------------------------

CALLS: list[tuple[dict[str, Any], int | None]] = [
    ({"loss": 0.9, "acc": 0.1}, 0),
    ({"loss": 0.8, "acc": 0.2}, 1),
    ({"loss": torch.tensor(0.7), "acc": np.float32(0.3), "lr": np.float64(1e-3)}, 2),
    ({"loss": torch.tensor([0.6]), "epoch": 0, "flag": True}, 3),
    ({"train/loss_step": 0.55, "val/acc": 1 / 3}, 4),
    ({"big": 1e39, "small": 1e-46, "nan": math.nan, "inf": -math.inf, "int": 2**40}, 5),
    ({"loss": 0.5}, None),
    ({"loss": 0.4}, 5),  # the same step again
    ({"损失/λ": 0.25}, 6),
    ({"grouped": {"a": 1.0, "b": torch.tensor(2.0)}, "loss": 0.3}, 7),
    ({"grouped": {"a": 1.5, "c/d": 3}}, 8),
    ({"train/group": {"x": 0.1}}, 9),
    ({}, 10),
]


@pytest.mark.parametrize("prefix", ["", "fold1"])
def test_log_metrics_reads_back_identically_to_lightning(tmp_path: Path, prefix: str) -> None:
    theirs, ours = both(tmp_path, prefix=prefix)
    for logger in (theirs, ours):
        for metrics, step in CALLS:
            logger.log_metrics(metrics, step)
        logger.finalize("success")

    ours_runs, their_runs = runs(ours.log_dir), runs(theirs.log_dir)
    assert sorted(ours_runs) == sorted(their_runs)
    assert len(ours_runs) == 5  # the run and its add_scalars sub-runs
    for run in their_runs:
        assert comparable(ours_runs[run]) == comparable(their_runs[run]), run
    tag = f"{prefix}-loss" if prefix else "loss"
    assert [step for step, _ in ours_runs["."][tag]] == [0, 1, 2, 3, 0, 5, 7]
    assert [value for _, value in ours_runs["."][tag]] == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    grouped = f"{prefix}-grouped" if prefix else "grouped"
    assert ours_runs[f"{grouped}_a"] == {grouped: [(7, 1.0), (8, 1.5)]}


def test_many_steps_read_back_identically_to_lightning(tmp_path: Path) -> None:
    theirs, ours = both(tmp_path)
    rng = np.random.default_rng(0)
    rows = [{f"m{i}": float(v) for i, v in enumerate(rng.normal(size=5))} for _ in range(500)]
    for logger in (theirs, ours):
        for step, row in enumerate(rows):
            logger.log_metrics(row, step)
            if step % 50 == 0:
                logger.save()
        logger.finalize("success")

    assert comparable(scalars(ours.log_dir)) == comparable(scalars(theirs.log_dir))
    assert len(scalars(ours.log_dir)["m0"]) == 500


@pytest.mark.parametrize(
    ("value", "match"),
    [("high", "'loss'.*str"), (torch.ones(3), "'loss'.*3 elements"), (np.zeros((2, 2)), "'loss'.*4 elements")],
    ids=["str", "tensor", "array"],
)
def test_a_value_that_is_not_a_number_is_an_error_naming_the_key(tmp_path: Path, value: Any, match: str) -> None:
    logger = TensorBoardLogger(tmp_path)

    with pytest.raises(InvalidMetricError, match=match):
        logger.log_metrics({"ok": 1.0, "loss": value}, step=1)
    # Lightning raises a ValueError too, with this sentence: code that catches it, or matches it, keeps working.
    with pytest.raises(ValueError, match=f"you tried to log {re.escape(str(value))} which is currently not supported"):
        logger.log_metrics({"loss": value}, step=1)


def test_metrics_are_on_disk_without_finalize(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"a": 1.0}, step=3)
    logger.save()

    assert scalars(logger.log_dir) == {"a": [(3, 1.0)]}


# ---- hyperparameters ---------------------------------------------------------------------------------

PARAMS = {
    "lr": 0.01,
    "layers": 3,
    "name": "resnet",
    "flag": False,
    "nothing": None,
    "sizes": [64, 32],
    "optimizer": {"name": "adam", "betas": {"b1": 0.9, "b2": 0.999}},
}


def test_hparams_tab_matches_lightning(tmp_path: Path) -> None:
    theirs, ours = both(tmp_path)
    for logger in (theirs, ours):
        logger.log_hyperparams(PARAMS)
        logger.finalize("success")

    our_tab, their_tab = hparams_plugin(ours.log_dir), hparams_plugin(theirs.log_dir)
    assert (
        hparam_values(our_tab["start"])
        == hparam_values(their_tab["start"])
        == {
            "lr": 0.01,
            "layers": 3,
            "name": "resnet",
            "flag": False,
            "nothing": "None",
            "sizes": "[64, 32]",
            "optimizer/name": "adam",
            "optimizer/betas/b1": 0.9,
            "optimizer/betas/b2": 0.999,
        }
    )
    assert {(i.name, i.type) for i in our_tab["experiment"].hparam_infos} == {
        (i.name, i.type) for i in their_tab["experiment"].hparam_infos
    }
    assert [m.name.tag for m in our_tab["experiment"].metric_infos] == ["hp_metric"]
    # the default placeholder metric, as in Lightning
    assert scalars(ours.log_dir) == scalars(theirs.log_dir) == {"hp_metric": [(0, -1.0)]}


def test_namespace_and_dataclass_hyperparameters(tmp_path: Path) -> None:
    from dataclasses import dataclass

    @dataclass
    class Config:
        depth: int = 4
        act: str = "relu"

    logger = TensorBoardLogger(tmp_path)
    logger.log_hyperparams(Namespace(lr=0.1, config=Config()))
    logger.finalize("success")

    assert hparam_values(hparams_plugin(logger.log_dir)["start"]) == {
        "lr": 0.1,
        "config/depth": 4,
        "config/act": "relu",
    }
    assert yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text()) == {
        "lr": 0.1,
        "config": {"depth": 4, "act": "relu"},
    }


def test_without_the_default_hp_metric_nothing_reaches_the_hparams_tab(tmp_path: Path) -> None:
    theirs, ours = both(tmp_path, default_hp_metric=False)
    for logger in (theirs, ours):
        logger.log_hyperparams({"lr": 0.1})
        logger.log_metrics({"loss": 1.0}, step=1)
        logger.finalize("success")

    assert hparams_plugin(ours.log_dir) == hparams_plugin(theirs.log_dir) == {}
    assert scalars(ours.log_dir) == scalars(theirs.log_dir) == {"loss": [(1, 1.0)]}
    assert yaml.safe_load(Path(ours.log_dir, "hparams.yaml").read_text()) == {"lr": 0.1}


@pytest.mark.parametrize(
    ("metrics", "step", "expected"),
    [
        ({"hp/metric_1": 0, "hp/metric_2": 0}, None, {"hp/metric_1": [(0, 0.0)], "hp/metric_2": [(0, 0.0)]}),
        (0.75, None, {"hp_metric": [(0, 0.75)]}),
        ({"hp_metric": 0.5}, 12, {"hp_metric": [(12, 0.5)]}),
    ],
    ids=["dict", "number", "with-step"],
)
def test_metrics_linked_to_hyperparameters_match_lightning(
    tmp_path: Path, metrics: Any, step: int | None, expected: dict[str, Any]
) -> None:
    theirs, ours = both(tmp_path, default_hp_metric=False)
    for logger in (theirs, ours):
        logger.log_hyperparams({"lr": 0.1}, metrics, step=step)
        logger.finalize("success")

    assert scalars(ours.log_dir) == scalars(theirs.log_dir) == expected
    our_tab, their_tab = hparams_plugin(ours.log_dir), hparams_plugin(theirs.log_dir)
    assert [m.name.tag for m in our_tab["experiment"].metric_infos] == sorted(expected)
    assert [m.name.tag for m in our_tab["experiment"].metric_infos] == [
        m.name.tag for m in their_tab["experiment"].metric_infos
    ]


def test_hparams_yaml_matches_lightning_and_stays_safe(tmp_path: Path) -> None:
    theirs, ours = both(tmp_path)
    for logger in (theirs, ours):
        logger.log_hyperparams(PARAMS)
        logger.finalize("success")
    ours_yaml = Path(ours.log_dir, "hparams.yaml").read_text()

    assert yaml.safe_load(ours_yaml) == yaml.safe_load(Path(theirs.log_dir, "hparams.yaml").read_text()) == PARAMS
    assert ours.hparams == PARAMS

    # where Lightning writes !!python/object tags that yaml.safe_load refuses, ours stays plain
    logger = TensorBoardLogger(tmp_path / "unsafe")
    with pytest.warns(UserWarning, match="converted"):
        logger.log_hyperparams({"ns": Namespace(a=1), "path": Path("/data"), "fn": math.sqrt})
    assert yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text()) == {
        "ns": {"a": 1},
        "path": "/data",
        "fn": "sqrt",
    }


def test_an_empty_hparams_yaml_is_written_like_lightnings(tmp_path: Path) -> None:
    theirs, ours = both(tmp_path)
    for logger in (theirs, ours):
        logger.log_metrics({"a": 1.0}, step=0)
        logger.save()
        logger.finalize("success")

    assert Path(ours.log_dir, "hparams.yaml").read_text() == Path(theirs.log_dir, "hparams.yaml").read_text() == "{}\n"


def test_resuming_a_version_keeps_earlier_hyperparameters(tmp_path: Path) -> None:
    first = TensorBoardLogger(tmp_path, version=0)
    first.log_hyperparams({"lr": 0.1})
    first.finalize("success")
    second = TensorBoardLogger(tmp_path, version=0)
    second.log_hyperparams({"batch_size": 8})
    second.finalize("success")

    assert yaml.safe_load(Path(second.log_dir, "hparams.yaml").read_text()) == {"lr": 0.1, "batch_size": 8}


# ---- experiment: TensorBoard's own SummaryWriter -----------------------------------------------------


def test_experiment_is_a_summary_writer_whose_methods_land_in_the_run(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    logger = TensorBoardLogger(tmp_path)
    writer = logger.experiment
    assert isinstance(writer, SummaryWriter)
    assert writer is logger.experiment
    assert writer.log_dir == logger.log_dir

    figure = plt.figure(figsize=(2, 2))
    plt.plot([0, 1], [1, 0])
    writer.add_image("image", torch.rand(3, 8, 6), 1)
    writer.add_histogram("histogram", torch.randn(100), 1)
    writer.add_text("text", "hello *world*", 1)
    writer.add_figure("figure", figure, 1)
    writer.add_audio("audio", torch.zeros(1, 800).uniform_(-1, 1), 1, sample_rate=8000)
    writer.add_graph(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()), torch.zeros(1, 3))
    logger.log_metrics({"loss": 0.5}, step=1)
    logger.finalize("success")

    accumulator = accumulate(logger.log_dir)
    tags = accumulator.Tags()
    assert tags["images"] == ["image", "figure"]
    assert tags["histograms"] == ["histogram"]
    assert tags["audio"] == ["audio"]
    assert tags["tensors"] == ["text/text_summary"]
    assert tags["scalars"] == ["loss"]
    assert tags["graph"] is True
    assert (accumulator.Images("image")[0].height, accumulator.Images("image")[0].width) == (8, 6)
    assert text_of(accumulator, "text/text_summary") == "hello *world*"
    assert any("Linear" in node.op or "Linear" in node.name for node in accumulator.Graph().node)


def test_other_ranks_get_a_dummy_experiment_and_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_utilities.core.rank_zero import rank_zero_only

    logger = TensorBoardLogger(tmp_path, version=0)
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert isinstance(logger.experiment, DummyExperiment)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"a": 1.0}, step=1)
    logger.log_image("img", np.zeros((4, 4, 3), dtype=np.uint8))
    logger.finalize("success")

    assert not os.path.exists(logger.log_dir)


# ---- the media API -----------------------------------------------------------------------------------


def decoded_png(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def test_log_image_from_every_kind_of_input(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    chw = torch.from_numpy(hwc).permute(2, 0, 1).float() / 255.0
    logger = TensorBoardLogger(tmp_path)

    logger.log_image("tensor_chw", chw, step=1)
    logger.log_image("numpy_hwc", hwc, step=2)
    logger.log_image("pil", Image.fromarray(hwc), step=3)
    logger.log_image("gray", hwc[:, :, 0], step=4)
    logger.log_image("same_shapes", [hwc, hwc], step=5, caption=["left", "right"])
    logger.log_image("mixed_shapes", [hwc, hwc[:3, :4]], step=6)
    logger.log_image("batch", torch.rand(3, 3, 4, 4), step=7)
    logger.log_image("captioned", hwc, step=8, caption="a cat")
    logger.finalize("success")

    accumulator = accumulate(logger.log_dir)
    for tag in ("tensor_chw", "numpy_hwc", "pil", "captioned"):
        (event,) = accumulator.Images(tag)
        assert np.array_equal(decoded_png(event.encoded_image_string), hwc), tag
    gray = decoded_png(accumulator.Images("gray")[0].encoded_image_string)  # SummaryWriter stores it as RGB
    assert all(np.array_equal(gray[:, :, channel], hwc[:, :, 0]) for channel in range(3))
    assert [e.step for e in accumulator.Images("pil")] == [3]
    assert accumulator.Images("same_shapes")  # a list of same-shaped images is one grid, as add_images makes
    assert [(e.height, e.width) for e in accumulator.Images("mixed_shapes/0")] == [(5, 7)]
    assert [(e.height, e.width) for e in accumulator.Images("mixed_shapes/1")] == [(3, 4)]
    assert accumulator.Images("batch")
    # TensorBoard images have no caption field: captions are kept beside them as text
    assert text_of(accumulator, "captioned/caption/text_summary") == "a cat"
    assert text_of(accumulator, "same_shapes/caption/text_summary") == "- 0: left\n- 1: right"


def test_log_histogram(tmp_path: Path) -> None:
    values = torch.linspace(-2, 3, 501)
    logger = TensorBoardLogger(tmp_path)
    logger.log_histogram("weights", values, step=4)
    logger.log_histogram("counts", np.arange(10), step=5, bins=5)
    logger.finalize("success")

    accumulator = accumulate(logger.log_dir)
    (event,) = accumulator.Histograms("weights")
    assert event.step == 4
    assert event.histogram_value.num == 501
    assert (event.histogram_value.min, event.histogram_value.max) == (pytest.approx(-2), pytest.approx(3))
    assert sum(accumulator.Histograms("counts")[0].histogram_value.bucket) == 10


def test_log_text_and_log_table(tmp_path: Path) -> None:
    import pandas as pd

    logger = TensorBoardLogger(tmp_path)
    logger.log_text("notes", "# Title\nsome **markdown**", step=2)
    logger.log_table("table", columns=["name", "score"], data=[["a", 1], ["b", 2.5]], step=3)
    logger.log_table("frame", dataframe=pd.DataFrame({"x": [1, 2], "y": ["p", "q"]}))
    logger.finalize("success")

    accumulator = accumulate(logger.log_dir)
    assert text_of(accumulator, "notes/text_summary") == "# Title\nsome **markdown**"
    assert text_of(accumulator, "table/text_summary") == "| name | score |\n|---|---|\n| a | 1 |\n| b | 2.5 |"
    assert text_of(accumulator, "frame/text_summary") == "| x | y |\n|---|---|\n| 1 | p |\n| 2 | q |"
    assert [e.step for e in accumulator.Tensors("table/text_summary")] == [3]


@pytest.mark.parametrize(
    ("audio", "channels", "frames"),
    [
        (torch.sin(torch.linspace(0, 100, 1600)), 1, 1600),
        (np.stack([np.linspace(-1, 1, 800), np.linspace(1, -1, 800)]), 2, 800),
    ],
    ids=["mono", "stereo"],
)
def test_log_audio(tmp_path: Path, audio: Any, channels: int, frames: int) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_audio("clip", audio, step=6, sample_rate=16000, caption="a tone")
    logger.finalize("success")

    accumulator = accumulate(logger.log_dir)
    (event,) = accumulator.Audio("clip")
    assert (event.step, event.sample_rate, event.length_frames, event.content_type) == (6, 16000, frames, "audio/wav")
    with wave.open(io.BytesIO(event.encoded_audio_string)) as clip:
        assert (clip.getnchannels(), clip.getnframes(), clip.getframerate()) == (channels, frames, 16000)
    assert text_of(accumulator, "clip/caption/text_summary") == "a tone"


def test_log_figure(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    logger = TensorBoardLogger(tmp_path)
    closed = plt.figure(figsize=(2, 1), dpi=50)
    plt.plot([1, 2, 3])
    kept = plt.figure(figsize=(2, 1), dpi=50)
    logger.log_figure("closed", closed, step=1)
    logger.log_figure("kept", kept, step=2, close=False)
    logger.finalize("success")

    accumulator = accumulate(logger.log_dir)
    assert [e.step for e in accumulator.Images("closed")] == [1]
    assert (accumulator.Images("closed")[0].width, accumulator.Images("closed")[0].height) == (100, 50)
    assert not plt.fignum_exists(closed.number)
    assert plt.fignum_exists(kept.number)
    plt.close(kept)


# ---- graphs ------------------------------------------------------------------------------------------


def test_log_graph_outside_a_trainer(tmp_path: Path) -> None:
    theirs, ours = both(tmp_path, log_graph=True)
    for logger in (theirs, ours):
        logger.log_graph(RegressionModel())
        logger.finalize("success")

    assert accumulate(ours.log_dir).Tags()["graph"] is accumulate(theirs.log_dir).Tags()["graph"] is True
    assert LightningModule._jit_is_scripting is False  # the flag set while tracing is restored


def test_log_graph_does_nothing_unless_asked(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_graph(RegressionModel())
    logger.finalize("success")

    assert not os.path.exists(logger.log_dir) or accumulate(logger.log_dir).Tags()["graph"] is False


@pytest.mark.parametrize(
    ("example", "lightnings_words"),
    [
        (None, "The `model.example_input_array` attribute is not set or `input_array` was not given."),
        ({"x": torch.zeros(1, 4)}, "has type <class 'dict'> which can't be traced by TensorBoard."),
    ],
    ids=["missing", "dict"],
)
def test_log_graph_warns_when_the_input_cannot_be_traced(tmp_path: Path, example: Any, lightnings_words: str) -> None:
    model = RegressionModel()
    model.example_input_array = example
    logger = TensorBoardLogger(tmp_path, log_graph=True)

    # Lightning's sentence, whole, so a `match=` written for Lightning's logger holds; then how to fix it.
    with pytest.warns(TracklightWarning) as caught:
        logger.log_graph(model)
    (message,) = [str(warning.message) for warning in caught]
    lead = "Could not log computational graph to TensorBoard: "
    assert message.startswith(lead) and lightnings_words in message
    assert len(message) > len(lead) + len(lightnings_words) + 40  # and what to do about it


class UntraceableModel(RegressionModel):
    """Trains as usual, but its ``forward`` returns a name beside the tensor, which torch.jit.trace refuses."""

    def forward(self, x: torch.Tensor) -> Any:
        return {"out": super().forward(x), "name": "batch"}

    def _loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self(x)["out"], y)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the tracer's own, while it formats its error
@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")  # add_graph's tracer, on its failure path
def test_log_graph_with_a_model_the_tracer_refuses_warns_and_fit_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = TensorBoardLogger(tmp_path, log_graph=True)
    with pytest.warns(TracklightWarning) as caught:
        make_trainer(tmp_path, logger, max_epochs=1, limit_val_batches=0).fit(UntraceableModel())

    (message,) = [str(w.message) for w in caught if "computational graph" in str(w.message)]
    assert "tracing UntraceableModel.forward()" in message  # the model, and the tracer's reason
    assert "RuntimeError" in message and "consistent type" in message
    assert "Training goes on without the graph" in message
    assert [step for step, _ in scalars(logger.log_dir)["train_loss_step"]] == [0, 1, 2, 3]  # every step trained
    assert accumulate(logger.log_dir).Tags()["graph"] is False
    assert "Error occurs, No graph saved" not in capsys.readouterr().out  # the tracer's own line: the warning says it


# ---- with a real Trainer -----------------------------------------------------------------------------


def fit_validate_test(root: Path, logger: Any, **model_kwargs: Any) -> Trainer:
    seed_everything(7, verbose=False)
    model = RegressionModel(**model_kwargs)
    trainer = make_trainer(root, logger)
    trainer.fit(model)
    trainer.validate(model, verbose=False)
    trainer.test(model, verbose=False)
    return trainer


def test_trainer_fit_validate_test_write_what_lightnings_logger_writes(tmp_path: Path) -> None:
    theirs = LightningTensorBoardLogger(tmp_path / "lightning")
    ours = TensorBoardLogger(tmp_path / "tracklight")
    their_trainer = fit_validate_test(tmp_path / "lightning", theirs)
    our_trainer = fit_validate_test(tmp_path / "tracklight", ours)

    assert our_trainer.log_dir == ours.log_dir == str(tmp_path / "tracklight" / "lightning_logs" / "version_0")
    assert their_trainer.log_dir == theirs.log_dir
    our_scalars = scalars(ours.log_dir)
    assert set(our_scalars) == {
        "hp_metric",
        "epoch",
        "train_loss_step",
        "train_loss_epoch",
        "val_loss",
        "test_loss",
    }
    assert [step for step, _ in our_scalars["train_loss_step"]] == list(range(8))
    assert len(our_scalars["val_loss"]) == 3  # two epochs of fit, then validate
    assert len(our_scalars["test_loss"]) == 1
    # Lightning writes each stage to a new event file, read in name order: names of one second sort by a
    # process-wide counter as text (".10" before ".9"), so its points are compared in step order.
    ours_sorted, theirs_sorted = (
        {tag: sorted(points) for tag, points in comparable(series).items()}
        for series in (our_scalars, scalars(theirs.log_dir))
    )
    assert ours_sorted == theirs_sorted
    assert hparam_values(hparams_plugin(ours.log_dir)["start"]) == hparam_values(
        hparams_plugin(theirs.log_dir)["start"]
    )
    assert yaml.safe_load(Path(ours.log_dir, "hparams.yaml").read_text()) == {
        "lr": 0.05,
        "hidden": 4,
        "use_experiment": False,
    }
    assert os.listdir(Path(ours.log_dir, "checkpoints")) == os.listdir(Path(theirs.log_dir, "checkpoints"))


def test_experiment_inside_a_lightning_module_as_in_lightnings_docs(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    seed_everything(7, verbose=False)
    make_trainer(tmp_path, logger, limit_val_batches=0).fit(RegressionModel(use_experiment=True))

    accumulator = accumulate(logger.log_dir)
    assert [e.step for e in accumulator.Images("weights")] == [4, 8]
    assert [e.step for e in accumulator.Histograms("weights_hist")] == [4, 8]
    assert [text_of_event(e) for e in accumulator.Tensors("note/text_summary")] == ["epoch 0", "epoch 1"]


def text_of_event(event: Any) -> str:
    return event.tensor_proto.string_val[0].decode("utf-8")


def test_log_graph_during_fit(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, log_graph=True)
    make_trainer(tmp_path, logger, max_epochs=1, limit_val_batches=0).fit(RegressionModel())

    graph = accumulate(logger.log_dir).Graph()
    assert any("Linear" in node.op or "layer" in node.name for node in graph.node)


def test_the_logger_pickles_with_its_version(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"a": 1.0}, step=1)
    _ = logger.experiment  # a live SummaryWriter does not pickle; it must be left behind
    clone = pickle.loads(pickle.dumps(logger))

    assert (
        (clone.version, clone.log_dir)
        == (logger.version, logger.log_dir)
        == (0, str(tmp_path / "lightning_logs" / "version_0"))
    )
    clone.log_metrics({"a": 2.0}, step=2)
    clone.finalize("success")
    logger.finalize("success")
    assert sorted(scalars(logger.log_dir)["a"]) == [(1, 1.0), (2, 2.0)]
    assert os.listdir(tmp_path / "lightning_logs") == ["version_0"]


def test_an_unused_logger_pickles_with_a_claimed_version(tmp_path: Path) -> None:
    (tmp_path / "lightning_logs" / "version_0").mkdir(parents=True)
    clone = pickle.loads(pickle.dumps(TensorBoardLogger(tmp_path)))

    assert clone._version == 1  # resolved before pickling, so every spawned process agrees
    assert (tmp_path / "lightning_logs" / "version_1").is_dir()


def test_logging_goes_on_after_finalize(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"a": 1.0}, step=1)
    logger.log_text("t", "first", step=1)
    logger.finalize("success")
    logger.log_metrics({"a": 2.0}, step=2)
    logger.log_text("t", "second", step=2)
    logger.finalize("success")

    accumulator = accumulate(logger.log_dir)
    assert [(s.step, s.value) for s in accumulator.Scalars("a")] == [(1, 1.0), (2, 2.0)]
    assert [text_of_event(e) for e in accumulator.Tensors("t/text_summary")] == ["first", "second"]


def test_ddp_spawn_writes_into_the_version_of_the_main_process(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    trainer = make_trainer(
        tmp_path,
        logger,
        strategy="ddp_spawn",
        devices=2,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=0,
    )
    trainer.fit(RegressionModel())

    assert os.listdir(tmp_path / "lightning_logs") == ["version_0"]
    assert logger.log_dir == trainer.log_dir == str(tmp_path / "lightning_logs" / "version_0")
    assert [step for step, _ in scalars(logger.log_dir)["train_loss_step"]] == [0, 1]
