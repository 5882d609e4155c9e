"""CometLogger with the real comet_ml SDK, offline: what it stores is read back from the experiment archive."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import textwrap
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _comet_neptune_readers import HANGING_NETWORK, CometArchive, comet_archives, refuse_network
from tracklight import TracklightError, TracklightWarning
from tracklight.loggers import DummyExperiment
from tracklight.loggers.comet import CometLogger

QUIET = {"display_summary_level": 0}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return refuse_network(monkeypatch)


@pytest.fixture(autouse=True)
def comet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each test in its own directory (Comet's default offline directory is relative), no key, no leftovers."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "COMET_API_KEY",
        "COMET_START_ONLINE",
        "COMET_OFFLINE_DIRECTORY",
        "COMET_EXPERIMENT_KEY",
        "COMET_PROJECT_NAME",
        "COMET_WORKSPACE",
        "COMET_START_MODE",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
    comet_ml = sys.modules.get("comet_ml")
    running = comet_ml.get_running_experiment() if comet_ml is not None else None
    if running is not None and not running.ended:  # a test that failed half-way must not leak its experiment
        running.end()


def only_archive(directory: str | Path) -> CometArchive:
    archives = comet_archives(directory)
    assert len(archives) == 1, [a.path for a in archives]
    return archives[0]


# ---- the Lightning docs' usage, through a real Trainer ----------------------------------------------------


def test_docs_usage_offline_fit_stores_step_and_epoch_metrics_and_hparams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: type, make_trainer: Any, no_network: list[str]
) -> None:
    monkeypatch.setenv("COMET_START_ONLINE", "false")
    comet_logger = CometLogger(api_key="YOUR_API_KEY", project_name="my-project", experiment_name="experiment-1")
    assert comet_logger.online is False
    trainer = make_trainer(logger=comet_logger, max_epochs=2)
    trainer.fit(tiny_model())

    assert comet_logger.save_dir == str(tmp_path / ".cometml-runs")
    archive = only_archive(comet_logger.save_dir)
    assert archive.key == comet_logger.version
    assert archive.experiment["project_name"] == "my-project" == comet_logger.name
    assert archive.others()["Name"] == "experiment-1"
    assert archive.others()["status"] == "success"
    # per step: 4 steps per epoch, each at its own increasing step, with the epoch it belongs to
    train = archive.metrics("train_loss")
    assert [epoch for _, epoch, _ in train] == [0] * 4 + [1] * 4
    steps = [step for step, _, _ in train]
    assert steps == sorted(steps) and len(set(steps)) == 8
    # per epoch: one validation value at the end of each epoch
    assert [epoch for _, epoch, _ in archive.metrics("val_loss")] == [0, 1]
    assert all(np.isfinite(value) for _, _, value in train + archive.metrics("val_loss"))
    assert not archive.metrics("epoch")  # Lightning's `epoch` is the epoch of the values, not a metric
    assert archive.parameters()["lr"] == 0.1
    assert archive.parameters()["hidden"] == 4
    assert archive.of_type("graph")  # the model's structure, from log_graph
    assert no_network == []


def test_trainer_test_after_fit_continues_the_same_experiment(tmp_path: Path, tiny_model: type, make_trainer: Any):
    class WithTest(tiny_model):  # type: ignore[misc, valid-type]
        def test_step(self, batch: Any, batch_idx: int) -> None:
            self.log("test_loss", float(batch_idx))

        def test_dataloader(self) -> Any:
            return self.val_dataloader()

    logger = CometLogger(project="p", save_dir=tmp_path / "comet", online=False, **QUIET)
    trainer = make_trainer(logger=logger)
    model = WithTest()
    trainer.fit(model)
    trainer.test(model, verbose=False)

    archive = only_archive(tmp_path / "comet")  # one experiment, as with Lightning's logger
    assert archive.key == logger.version
    assert archive.metrics("train_loss") and archive.metrics("test_loss")


# ---- offline means offline: old argument names, no network at import or construction --------------------


def test_older_argument_names_have_their_real_meaning(tmp_path: Path) -> None:
    # Lightning copies `offline` into `online` without negating it; here offline=True is offline.
    logger = CometLogger(save_dir=tmp_path / "runs", offline=True, project_name="old", experiment_name="e", **QUIET)
    assert logger.online is False
    assert logger.save_dir == os.fspath(tmp_path / "runs")
    assert logger.name == "old"
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    archive = only_archive(tmp_path / "runs")
    assert archive.others()["Name"] == "e"
    assert archive.experiment["project_name"] == "old"

    assert CometLogger(api_key="x" * 32, offline=False).online is True
    # Lightning's older CometLogger: a save_dir and no API key meant offline
    assert CometLogger(save_dir=tmp_path / "runs2").online is False
    with pytest.warns(TracklightWarning, match="both project="):
        assert CometLogger(project="new", project_name="old", online=False).name == "new"


def test_online_false_logs_offline_instead_of_disabling(tmp_path: Path) -> None:
    # Lightning turns online=False into ExperimentConfig(disabled=True): nothing is ever written.
    logger = CometLogger(online=False, offline_directory=str(tmp_path), **QUIET)
    logger.log_metrics({"loss": 0.25}, step=3)
    logger.finalize("success")
    assert only_archive(tmp_path).metrics("loss") == [(3, None, 0.25)]


def test_start_online_false_and_missing_key_mean_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMET_START_ONLINE", "0")
    assert CometLogger(api_key="YOUR_API_KEY").online is False
    monkeypatch.delenv("COMET_START_ONLINE")
    with pytest.warns(TracklightWarning, match="no Comet API key"):
        assert CometLogger().online is False
    monkeypatch.setenv("COMET_API_KEY", "k" * 32)
    assert CometLogger().online is True


def test_no_network_call_at_import_construction_logging_or_end(tmp_path: Path) -> None:
    """In a fresh interpreter where the network hangs: importing, constructing, logging and ending all finish."""
    calls = tmp_path / "network.log"
    script = HANGING_NETWORK + textwrap.dedent(
        f"""
        import os
        os.environ["COMET_START_ONLINE"] = "false"
        from tracklight.loggers.comet import CometLogger
        logger = CometLogger(api_key="YOUR_API_KEY", project_name="p", save_dir={str(tmp_path / "arch")!r})
        logger.log_hyperparams({{"lr": 0.1}})
        logger.log_metrics({{"loss": 0.5}}, step=1)
        logger.finalize("success")
        print("done")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    result = subprocess.run(
        [sys.executable, "-c", script, str(calls)], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done" in result.stdout
    assert not calls.exists(), calls.read_text()
    assert only_archive(tmp_path / "arch").metrics("loss") == [(1, None, 0.5)]


# ---- finalize and resume ------------------------------------------------------------------------------


def test_finalize_completes_the_archive_and_resume_by_experiment_key(tmp_path: Path) -> None:
    first = CometLogger(project="p", save_dir=tmp_path, online=False, **QUIET)
    first.log_metrics({"loss": 1.0}, step=0)
    key = first.version
    first.finalize("success")
    archive = only_archive(tmp_path)
    assert archive.metrics("loss") == [(0, None, 1.0)]
    assert archive.others()["status"] == "success"

    again = CometLogger(project="p", save_dir=tmp_path, online=False, experiment_key=key, mode="get", **QUIET)
    assert again.version == key
    again.log_metrics({"loss": 0.5}, step=1)
    again.finalize("success")
    resumed = comet_archives(tmp_path)[1]
    assert resumed.key == key
    assert resumed.experiment["resume_strategy"] == "get"
    assert resumed.metrics("loss") == [(1, None, 0.5)]


def test_experiment_is_the_comet_experiment_and_pickles_by_key(tmp_path: Path) -> None:
    logger = CometLogger(save_dir=tmp_path, online=False, **QUIET)
    experiment = logger.experiment
    assert type(experiment).__name__ == "OfflineExperiment"
    assert experiment.get_key() == logger.version
    state = pickle.loads(pickle.dumps(logger)).__dict__
    assert state["_experiment"] is None and state["_experiment_key"] == logger.version
    logger.finalize("success")


def test_other_ranks_write_nothing(tmp_path: Path, set_rank: Any) -> None:
    set_rank(1)
    logger = CometLogger(save_dir=tmp_path, online=False, **QUIET)
    assert isinstance(logger.experiment, DummyExperiment)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_hyperparams({"lr": 1})
    logger.log_image("img", np.zeros((2, 2)))
    logger.finalize("success")
    assert logger.version is None
    assert comet_archives(tmp_path) == []


def test_bad_arguments_name_the_fix() -> None:
    with pytest.raises(TracklightError, match="not_an_option"):
        CometLogger(online=False, not_an_option=1)
    with pytest.raises(TracklightError, match="32 to 50 letters"):
        CometLogger(online=False, experiment_key="short")
    with pytest.raises(TracklightError, match="needs its key"):
        CometLogger(online=False, mode="get")
    with pytest.raises(TracklightError, match="get_or_create"):
        CometLogger(online=False, mode="sometimes")  # type: ignore[arg-type]


# ---- metrics, media and checkpoints through Comet's own calls -------------------------------------------


def test_metrics_prefix_nested_and_tensor_values(tmp_path: Path) -> None:
    import torch

    logger = CometLogger(save_dir=tmp_path, online=False, prefix="exp1", **QUIET)
    logger.log_metrics({"loss": torch.tensor(0.5), "acc": {"top1": np.float32(0.25)}, "epoch": 2}, step=7)
    logger.finalize("success")
    archive = only_archive(tmp_path)
    assert archive.metrics("exp1_loss") == [(7, 2, 0.5)]
    assert archive.metrics("exp1_acc/top1") == [(7, 2, 0.25)]


def test_media_go_through_comets_own_calls(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    from PIL import Image

    logger = CometLogger(save_dir=tmp_path, online=False, **QUIET)
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    logger.log_image("samples", pixels, step=2, caption="a caption")
    logger.log_histogram("weights", np.linspace(-1, 1, 101), step=2)
    logger.log_text("notes", "some **markdown**", step=2)
    logger.log_audio("beep", np.sin(np.linspace(0, 100, 800)), step=2, sample_rate=8000)
    figure = plt.figure()
    plt.plot([1, 2, 3])
    logger.log_figure("curve", figure, step=2)
    logger.log_table("scores", columns=["name", "score"], data=[["a", 1], ["b", 2]], step=2)
    logger.finalize("success")
    archive = only_archive(tmp_path)

    (image,) = [u for u in archive.uploads("visualization") if u["additional_params"]["figName"] == "samples"]
    assert image["additional_params"]["step"] == 2 and image["metadata"] == {"caption": "a caption"}
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(archive.file(image)))), pixels)
    (histogram,) = archive.uploads("histogram3d")
    assert histogram["additional_params"]["fileName"] == "weights"
    (text,) = archive.uploads("text-sample")
    assert "some **markdown**" in archive.file(text).decode()
    (audio,) = archive.uploads("audio")
    with wave.open(io.BytesIO(archive.file(audio))) as clip:
        assert (clip.getframerate(), clip.getnframes()) == (8000, 800)
    (figure_upload,) = [u for u in archive.uploads("visualization") if u["additional_params"]["figName"] == "curve"]
    assert archive.file(figure_upload)
    (table,) = archive.uploads("asset")
    assert table["additional_params"]["fileName"] == "scores_step2.csv"
    assert archive.file(table).decode().replace("\r\n", "\n").splitlines() == ["name,score", "a,1", "b,2"]


@pytest.mark.parametrize("log_model", ["all", True])
def test_log_model_uploads_checkpoints_as_a_comet_model(
    tmp_path: Path, tiny_model: type, make_trainer: Any, log_model: bool | str
) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    logger = CometLogger(save_dir=tmp_path / "comet", online=False, log_model=log_model, **QUIET)
    # "all": every epoch's checkpoint is kept, so each epoch saves one whatever the loss did (the model's
    # initial weights are not seeded).
    top_k = -1 if log_model == "all" else 1
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_top_k=top_k, save_last=True)
    trainer = make_trainer(logger=logger, max_epochs=2, callbacks=[checkpoint])
    trainer.fit(tiny_model())

    uploads = only_archive(tmp_path / "comet").uploads("model-element")
    names = [u["additional_params"]["fileName"] for u in uploads]
    assert {u["additional_params"]["groupingName"] for u in uploads} == {"model"}
    assert "last.ckpt" in names
    assert os.path.basename(checkpoint.best_model_path) in names
    if log_model == "all":  # every save, as it happened: both epochs' checkpoints and last.ckpt twice
        assert names.count("last.ckpt") == 2 and len(names) == 4
    else:  # at the end: what the callback kept
        assert len(names) == 2
    best = [u for u in uploads if u["metadata"]["best"]]
    assert best and best[-1]["additional_params"]["fileName"] == os.path.basename(checkpoint.best_model_path)
    with open(checkpoint.best_model_path, "rb") as handle:
        assert only_archive(tmp_path / "comet").file(best[-1]) == handle.read()
