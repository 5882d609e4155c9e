"""WandbLogger with the real wandb SDK in offline mode, read back from the run's ``run-*.wandb`` file."""

from __future__ import annotations

import csv
import inspect
import os
import pickle
import struct
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _wandb_reader import HEADER, StoredRun, end_run, offline_env, payloads, read_runs
from tracklight import TracklightError
from tracklight._errors import InvalidMetricError
from tracklight.loggers import CSVLogger, TensorBoardLogger
from tracklight.loggers.wandb import WandbLogger, wait_until_closed

STEP = "trainer/global_step"
#: Lightning's warning for a fit given no validation loader: ``Tiny`` has a ``validation_step``, used by other tests.
NO_VAL_LOADER = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")


@pytest.fixture(autouse=True)
def wandb_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    offline_env(monkeypatch, tmp_path)
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:  # a test that failed half-way must not leak its run
        wandb.run.finish()


@pytest.fixture(autouse=True, scope="module")
def wandb_service():
    """One W&B service for the module (it is slow to start); shut down afterwards for the next module."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


def no_dropped_steps(root: Path) -> None:
    """W&B reports a history row it drops for a step that went backwards in its internal log."""
    logs = list(root.rglob("debug-internal.log"))
    assert logs
    for log in logs:
        text = log.read_text()
        assert "ignoring partial history record" not in text, log
        assert "monotonically increasing" not in text, log


# ---- a tiny model --------------------------------------------------------------------------------------


class Tiny(LightningModule):
    def __init__(self, lr: float = 0.1, hidden: int = 4, fail_at_epoch: int = -1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(4, 1)

    def forward(self, x):
        return self.layer(x)

    def training_step(self, batch, batch_idx):
        if self.current_epoch == self.hparams.fail_at_epoch:
            raise RuntimeError("boom")
        loss = self(batch[0]).pow(2).mean()
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(batch[0]).pow(2).mean())

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self(batch[0]).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader(n: int = 16, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.randn(n, 4, generator=generator)), batch_size=4)


def trainer(tmp_path: Path, logger, **kwargs) -> Trainer:
    kwargs.setdefault("max_epochs", 2)
    kwargs.setdefault("log_every_n_steps", 1)
    return Trainer(
        default_root_dir=tmp_path,
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        **kwargs,
    )


def the_run(root: Path) -> StoredRun:
    """The one run under ``root``, read once W&B wrote it out (at exit, or here by ending it)."""
    end_run()
    runs = read_runs(root)
    assert len(runs) == 1, [run.path for run in runs]
    return runs[0]


# ---- the reader itself ---------------------------------------------------------------------------------


def test_reader_reassembles_records_that_span_blocks_and_checks_crc(tmp_path):
    big = "x" * 100_000  # a config value three 32 KiB blocks long: FIRST, MIDDLE..., LAST fragments
    logger = WandbLogger(save_dir=tmp_path, offline=True, config={"big": big})
    logger.log_metrics({"a": 1.0}, step=0)
    logger.log_text("long", big[:40_000] + "end", step=1)
    logger.finalize("success")

    run = the_run(tmp_path)
    assert run.config["big"] == big
    assert [row["a"] for row in run.history if "a" in row] == [1.0]
    assert run.exit_code == 0
    data = Path(run.path).read_bytes()
    assert data[:7] == HEADER == b":W&B\xe1\xbe\x00"
    kinds = set()
    pos = 7
    while pos + 7 <= 32 * 1024:
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        kinds.add(kind)
        pos += 7 + length
    assert 2 in kinds  # the big run record starts in the first block and continues in the next ones

    corrupt = tmp_path / "corrupt.wandb"
    flipped = bytearray(data)
    flipped[20] ^= 0xFF
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="crc32"):
        payloads(corrupt)


# ---- the Lightning docs' usage -------------------------------------------------------------------------


def test_lightning_docs_usage_offline_run_with_config_history_and_model_artifact(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wandb_logger = WandbLogger(project="my-project", name="experiment-1", save_dir="logs/", log_model=True)
    model = Tiny(lr=0.05)
    fit = trainer(tmp_path, wandb_logger)
    fit.fit(model, loader(), loader(8, seed=1))

    run = the_run(tmp_path / "logs")
    assert (run.project, run.display_name, run.run_id) == ("my-project", "experiment-1", wandb_logger.version)
    assert run.config == {"lr": 0.05, "hidden": 4, "fail_at_epoch": -1}
    # per step: 4 batches x 2 epochs, at trainer/global_step 0..7
    assert [step for step, _ in run.values("train_loss_step")] == list(range(8))
    # per epoch: validation and the epoch mean, with the epoch number, at the last step of each epoch
    assert [(row[STEP], row["epoch"]) for row in run.history if "val_loss" in row] == [(3, 0), (7, 1)]
    assert [step for step, _ in run.values("train_loss_epoch")] == [3, 7]
    assert run.steps == sorted(set(run.steps))
    assert {"name": "", "glob_name": "*", "step_metric": STEP} in run.metrics
    assert run.summary["val_loss"] == run.values("val_loss")[-1][1]
    assert run.exit_code == 0

    checkpoint = fit.checkpoint_callback
    assert Path(checkpoint.best_model_path).parent == Path("logs", "my-project", run.run_id, "checkpoints")
    models = [artifact for artifact in run.artifacts if artifact.type == "model"]
    assert len(models) == 1  # log_model=True: once, at the end of training, as Lightning does
    final = models[-1]
    assert final.name == f"model-{run.run_id}"
    assert set(final.aliases) == {"latest", "best"}
    assert final.metadata["original_filename"] == Path(checkpoint.best_model_path).name
    assert "score" in final.metadata and final.metadata["ModelCheckpoint"]["save_top_k"] == 1
    staged = final.files["model.ckpt"]
    assert staged["size"] == os.path.getsize(checkpoint.best_model_path)
    assert Path(staged["local_path"]).read_bytes() == Path(checkpoint.best_model_path).read_bytes()
    no_dropped_steps(tmp_path / "logs")


# ---- steps ---------------------------------------------------------------------------------------------


class UserLogs(Callback):
    """Logs straight to the run, as users do, between the logger's rows."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        trainer.loggers[0].experiment.log({"user_value": float(batch_idx)})


def test_every_value_lands_with_accumulation_midepoch_validation_and_fit_validate_test(tmp_path):
    wandb_logger = WandbLogger(save_dir=tmp_path / "w", project="steps")
    csv_logger = CSVLogger(tmp_path / "c")
    fit = trainer(
        tmp_path,
        [wandb_logger, csv_logger],
        accumulate_grad_batches=2,
        val_check_interval=0.5,
        callbacks=[UserLogs()],
    )
    model = Tiny()
    fit.fit(model, loader(32), loader(8, seed=1))
    fit.validate(model, loader(8, seed=1))
    fit.test(model, loader(8, seed=2))
    csv_logger.finalize("success")

    run = the_run(tmp_path / "w")  # fit, validate and test: one run, as with Lightning's logger
    assert run.run_id == wandb_logger.version and run.exit_code == 0

    stored = [(row.get(STEP), key, value) for row in run.history for key, value in row.items()]
    with open(csv_logger.experiment.metrics_file_path) as handle:
        expected = [
            (int(row["step"]), key, float(value))
            for row in csv.DictReader(handle)
            for key, value in row.items()
            if key != "step" and value != ""
        ]
    assert expected
    missing = [value for value in expected if value not in stored]
    assert not missing, missing
    assert [value for _, value in run.values("user_value")] == [float(i) for i in range(8)] * 2
    assert [step for step, _ in run.values("test_loss")] == [fit.global_step]
    assert run.steps == sorted(set(run.steps))
    no_dropped_steps(tmp_path / "w")


def test_steps_that_go_backwards_are_kept(tmp_path):
    logger = WandbLogger(save_dir=tmp_path, project="p", prefix="run")
    logger.log_metrics({"loss": torch.tensor(0.5)}, step=10)
    logger.log_metrics({"loss": 0.25}, step=5)
    logger.log_metrics({"loss": np.float32(0.125)}, step=5)
    logger.log_metrics({"other": 1})
    logger.finalize("success")

    run = the_run(tmp_path)
    assert run.values("run-loss") == [(10, 0.5), (5, 0.25), (5, 0.125)]
    assert run.values("run-other") == [(5, 1)]  # no step given: W&B syncs in the last trainer step
    no_dropped_steps(tmp_path)


@NO_VAL_LOADER
@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")  # resumed: its run's
def test_resume_by_id_continues_the_run_and_its_steps(tmp_path):
    first = trainer(tmp_path, WandbLogger(save_dir=tmp_path / "w", id="resume-me", project="p"), max_epochs=1)
    first.fit(Tiny(), loader())
    end_run()  # the first process ends here; its run with it

    second_logger = WandbLogger(save_dir=tmp_path / "w", version="resume-me", project="p")
    second = trainer(tmp_path, second_logger, max_epochs=2)
    second.fit(Tiny(), loader(), ckpt_path=first.checkpoint_callback.best_model_path)

    end_run()
    before, after = read_runs(tmp_path / "w")
    assert before.run_id == after.run_id == second_logger.version == "resume-me"
    # the checkpoint holds tracklight's record, so the run is continued rewound to the checkpoint's W&B step
    assert after.branch_step is not None and after.exit_code == 0
    assert [step for step, _ in before.values("train_loss_step")] == [0, 1, 2, 3]
    assert [step for step, _ in after.values("train_loss_step")] == [4, 5, 6, 7]
    assert after.config["lr"] == 0.1
    no_dropped_steps(tmp_path / "w")


# ---- checkpoints as artifacts --------------------------------------------------------------------------


def test_log_model_all_logs_every_checkpoint_with_aliases_and_scores(tmp_path):
    logger = WandbLogger(save_dir=tmp_path / "w", offline=True, log_model="all", checkpoint_name="tiny")
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_top_k=-1, filename="{epoch}")
    trainer(tmp_path, logger, max_epochs=3, callbacks=[saver]).fit(Tiny(), loader(), loader(8, seed=1))

    run = the_run(tmp_path / "w")
    logged = [artifact.metadata["original_filename"] for artifact in run.artifacts]
    assert logged == ["epoch=0.ckpt", "epoch=1.ckpt", "epoch=2.ckpt"]
    assert {artifact.name for artifact in run.artifacts} == {"tiny"}
    scores = {a.metadata["original_filename"]: a.metadata["score"] for a in run.artifacts}
    expected = {Path(path).name: float(score) for path, score in saver.best_k_models.items()}
    assert scores == pytest.approx(expected)
    for artifact in run.artifacts:
        assert "latest" in artifact.aliases
    # "best" is given to whichever checkpoint was the best when it was saved
    best_so_far = np.minimum.accumulate([expected[name] for name in logged])
    was_best = [expected[name] == best for name, best in zip(logged, best_so_far, strict=True)]
    assert ["best" in artifact.aliases for artifact in run.artifacts] == was_best


def test_log_model_true_keeps_checkpoints_saved_before_a_crash(tmp_path):
    logger = WandbLogger(save_dir=tmp_path / "w", offline=True, log_model=True)
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_last=True)
    with pytest.raises(RuntimeError, match="boom"):
        trainer(tmp_path, logger, max_epochs=3, callbacks=[saver]).fit(
            Tiny(fail_at_epoch=2), loader(), loader(8, seed=1)
        )

    run = the_run(tmp_path / "w")
    names = [artifact.metadata["original_filename"] for artifact in run.artifacts]
    assert "last.ckpt" in names
    assert Path(saver.best_model_path).name in names
    best = [a for a in run.artifacts if a.metadata["original_filename"] == Path(saver.best_model_path).name][-1]
    assert "best" in best.aliases
    assert best.metadata["score"] == pytest.approx(float(saver.best_model_score))


@NO_VAL_LOADER
def test_log_model_true_logs_once_at_the_end_with_the_score_as_logged(tmp_path):
    logger = WandbLogger(save_dir=tmp_path / "w", offline=True, log_model=True)
    # every epoch saves a new best (monitored: the step, an int, as in Lightning's own test)
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="step", mode="max")
    trainer(tmp_path, logger, max_epochs=3, callbacks=[saver]).fit(Tiny(), loader())
    (artifact,) = the_run(tmp_path / "w").artifacts  # once, at the end of training, as Lightning does
    assert artifact.metadata["original_filename"] == Path(saver.best_model_path).name == "epoch=2-step=12.ckpt"
    assert set(artifact.aliases) == {"latest", "best"}
    score = artifact.metadata["score"]
    assert isinstance(score, int) and score == 12  # the logged type, not a float or a tensor


def test_lightning_media_argument_checks(tmp_path):
    logger = WandbLogger(save_dir=tmp_path, offline=True)
    for method, name in (("log_image", "images"), ("log_audio", "audios"), ("log_video", "videos")):
        with pytest.raises(TypeError, match=f"Expected a list as \"{name}\", found <class 'str'>"):
            getattr(logger, method)("samples", "1.jpg")
        with pytest.raises(ValueError, match="Expected 2 items but only found 1 for caption"):
            getattr(logger, method)("samples", ["1.jpg", "2.jpg"], caption=["caption 1"])
    logger.finalize("success")


@NO_VAL_LOADER
def test_log_model_false_logs_no_artifact(tmp_path):
    logger = WandbLogger(save_dir=tmp_path / "w", offline=True)
    trainer(tmp_path, logger, max_epochs=1).fit(Tiny(), loader())
    assert the_run(tmp_path / "w").artifacts == []


# ---- several loggers in one Trainer --------------------------------------------------------------------


def test_tensorboard_wandb_and_csv_loggers_in_one_trainer(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tensorboard = TensorBoardLogger(tmp_path / "tb")
    wandb_logger = WandbLogger(save_dir=tmp_path / "w", project="multi", log_model="all")
    csv_logger = CSVLogger(tmp_path / "csv")
    fit = trainer(tmp_path, [tensorboard, wandb_logger, csv_logger])
    fit.fit(Tiny(lr=0.2), loader(), loader(8, seed=1))

    assert fit.log_dir == tensorboard.log_dir
    assert Path(fit.checkpoint_callback.best_model_path).parent == Path(tensorboard.log_dir) / "checkpoints"
    run = the_run(tmp_path / "w")
    assert run.config["lr"] == 0.2
    wandb_losses = run.values("train_loss_step")
    events = EventAccumulator(tensorboard.log_dir)
    events.Reload()
    tb_losses = [(event.step, event.value) for event in events.Scalars("train_loss_step")]
    assert [step for step, _ in wandb_losses] == [step for step, _ in tb_losses] == list(range(8))
    assert [value for _, value in wandb_losses] == pytest.approx([value for _, value in tb_losses])
    with open(Path(csv_logger.log_dir) / "metrics.csv") as handle:
        csv_losses = [float(row["train_loss_step"]) for row in csv.DictReader(handle) if row["train_loss_step"]]
    assert csv_losses == pytest.approx([value for _, value in wandb_losses])
    assert len(run.artifacts) == 2 and set(run.artifacts[-1].aliases) == {"best", "latest"}


# ---- media ---------------------------------------------------------------------------------------------


def test_media_api_maps_to_wandb_types(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from PIL import Image as PILImage

    logger = WandbLogger(save_dir=tmp_path, project="media")
    png = tmp_path / "pic.png"
    PILImage.fromarray(np.full((5, 6, 3), 200, dtype=np.uint8)).save(png)
    gif = tmp_path / "clip.gif"
    frames = [PILImage.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)) for value in (0, 128, 255)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    wav = tmp_path / "tone.wav"
    from tracklight import media

    wav.write_bytes(media.wav_bytes(np.zeros((100, 1)), 8000))

    # Lightning's helpers, with per-item keyword lists
    logger.log_image("lightning/images", [torch.rand(3, 8, 8), str(png)], step=1, caption=["tensor", "file"])
    logger.log_audio("lightning/audio", [np.sin(np.linspace(0, 60, 800)), str(wav)], step=1, sample_rate=[8000, None])
    logger.log_video("lightning/video", [str(gif)], step=1, caption=["frames"])
    logger.log_text("lightning/text", columns=["input", "output"], data=[["a", "b"], ["c", "d"]], step=1)
    logger.log_table("lightning/table", dataframe=pd.DataFrame({"x": [1, 2], "y": [0.5, 0.25]}), step=1)
    # tracklight's media API
    logger.log_image("api/image", np.zeros((4, 4, 3), dtype=np.uint8), step=2, caption="zeros")
    logger.log_histogram("api/histogram", torch.arange(100.0), step=2, bins=10)
    logger.log_text("api/text", "**bold** <b>", 2)
    logger.log_audio("api/audio", torch.zeros(2, 400), step=2, sample_rate=16000, caption="silence")
    figure = plt.figure()
    plt.plot([0, 1], [1, 0])
    logger.log_figure("api/figure", figure, step=2)
    logger.log_table("api/table", columns=["k", "v"], data=[["a", 1]], step=2)

    with pytest.raises(ValueError, match="Expected 2 items but only found 1 for caption"):
        logger.log_image("bad", [np.zeros((2, 2)), np.zeros((2, 2))], caption=["only one"])
    with pytest.raises(TracklightError, match="moviepy"):  # not installed here: the error names the fix
        logger.log_video("bad", [np.zeros((2, 3, 8, 8), dtype=np.uint8)])
    logger.finalize("success")

    run = the_run(tmp_path)
    rows = {key: (row[STEP], value) for row in run.history for key, value in row.items() if "/" in key}
    kinds = {key: value["_type"] for key, (_, value) in rows.items() if isinstance(value, dict)}
    assert kinds == {
        "lightning/images": "images/separated",
        "lightning/audio": "audio",
        "lightning/video": "videos",
        "lightning/text": "table-file",
        "lightning/table": "table-file",
        "api/image": "images/separated",
        "api/histogram": "histogram",
        "api/text": "html-file",
        "api/audio": "audio",
        "api/figure": "image-file",
        "api/table": "table-file",
    }
    assert {key: step for key, (step, _) in rows.items() if key in kinds} == {
        key: 1 if key.startswith("lightning") else 2 for key in kinds
    }
    assert rows["lightning/images"][1]["captions"] == ["tensor", "file"]
    assert rows["lightning/audio"][1]["sampleRates"] == [8000, None]
    assert rows["api/audio"][1]["captions"] == ["silence"]
    assert sum(rows["api/histogram"][1]["values"]) == 100 and len(rows["api/histogram"][1]["bins"]) == 11
    media_dir = Path(run.run_dir) / "files"
    html = next(media_dir.rglob("*.html")).read_text()
    assert "**bold** &lt;b&gt;" in html
    assert len(list((media_dir / "media" / "images").rglob("*.png"))) >= 4
    assert not plt.fignum_exists(figure.number)  # closed after logging, as TensorBoard's add_figure does


def test_audio_is_kept_as_wav_files_when_wandb_cannot_log_it(tmp_path, monkeypatch):
    from tracklight.loggers.wandb import media

    monkeypatch.setattr(media, "can_log_audio", lambda: False)  # soundfile missing
    logger = WandbLogger(save_dir=tmp_path, offline=True)
    with (
        pytest.warns(UserWarning, match="pip install soundfile"),
        pytest.warns(UserWarning, match="WandbLogger cannot display audio media, so it keeps them as files"),
    ):
        logger.log_audio("speech", [np.zeros(100)], step=3, sample_rate=[8000])
    logger.log_audio("speech", np.zeros(50), step=4)
    logger.finalize("success")
    kept = sorted((tmp_path / "media" / "audio" / "speech").iterdir())
    assert [path.name for path in kept] == ["3_0.wav", "4_0.wav"]
    import wave

    with wave.open(str(kept[0])) as clip:
        assert (clip.getframerate(), clip.getnframes()) == (8000, 100)


# ---- metrics, hyperparameters and constructor arguments ------------------------------------------------


def activation(x):
    return x


def test_hyperparameters_are_stored_as_config(tmp_path):
    logger = WandbLogger(save_dir=tmp_path, project="p", config={"from_init": 1})
    with pytest.warns(UserWarning, match=r"'act' \(function -> 'activation'\)"):
        logger.log_hyperparams(Namespace(lr=0.1, optimizer={"name": "sgd", "momentum": 0.9}, act=activation))
    logger.log_hyperparams({"lr": 0.2})  # W&B would refuse a changed value unless told to allow it
    logger.finalize("success")
    assert the_run(tmp_path).config == {
        "from_init": 1,
        "lr": 0.2,
        "optimizer": {"name": "sgd", "momentum": 0.9},
        "act": "activation",
    }


def test_bad_metric_names_the_key(tmp_path):
    logger = WandbLogger(save_dir=tmp_path, offline=True)
    with pytest.raises(InvalidMetricError, match="'note'"):
        logger.log_metrics({"note": "text"}, step=0)
    logger.finalize("success")


def test_constructor_arguments_match_lightning(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    logger = WandbLogger(dir=tmp_path / "d", id="given-id", name="display")
    assert (logger.name, logger.version, logger.save_dir) == ("from-env", "given-id", str(tmp_path / "d"))
    monkeypatch.delenv("WANDB_PROJECT")
    assert WandbLogger(save_dir=tmp_path).name == "lightning_logs"
    assert WandbLogger(version="v1", save_dir=tmp_path).version == "v1"
    with pytest.raises(TracklightError, match="log_model"):
        WandbLogger(log_model="best")
    with pytest.raises(TracklightError, match="add_file_policy"):
        WandbLogger(add_file_policy="copy")  # type: ignore[arg-type]

    logger = WandbLogger(save_dir=tmp_path / "w", project="kw", group="g", tags=["t1"], job_type="train")
    run = logger.experiment
    assert (run.group, list(run.tags), run.job_type, run.project) == ("g", ["t1"], "train", "kw")
    assert logger.version == run.id
    logger.finalize("success")


def test_an_active_run_is_reused_and_left_open(tmp_path):
    import wandb

    own = wandb.init(dir=tmp_path, project="mine", mode="offline")
    with pytest.warns(UserWarning, match="already in progress"):
        logger = WandbLogger(save_dir=tmp_path)
        assert logger.experiment is own
    logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize("success")
    assert wandb.run is own  # the user's run is theirs to finish
    given = WandbLogger(experiment=own)
    assert given.experiment is own and given.version == own.id
    given.finalize("success")
    own.log({"after": 2.0})
    own.finish()
    assert wait_until_closed(own.settings.log_internal)
    run = the_run(tmp_path)
    # the user's run keeps its own axes: the logger defines trainer/global_step only on runs it starts
    assert run.values("x") == [(0, 1.0)] and run.values("after") == [(None, 2.0)]


def test_a_run_the_user_ended_is_resumed(tmp_path):
    logger = WandbLogger(save_dir=tmp_path, offline=True)
    logger.log_metrics({"a": 1.0}, step=0)
    first_id = logger.version
    first = logger.experiment
    first.finish()  # `experiment` hands the run over once the queued row reached it
    assert wait_until_closed(first.settings.log_internal)  # finish() returns before W&B has written the file out
    logger.log_metrics({"a": 2.0}, step=1)
    logger.finalize("success")
    end_run()
    runs = read_runs(tmp_path)
    assert [run.run_id for run in runs] == [first_id, first_id]
    assert [run.values("a") for run in runs] == [[(0, 1.0)], [(1, 2.0)]]


def test_finalize_leaves_the_run_open_and_the_user_ends_it(tmp_path):
    import wandb

    logger = WandbLogger(save_dir=tmp_path, offline=True)
    logger.log_metrics({"a": 1.0}, step=0)
    logger.finalize("success")
    assert wandb.run is logger.experiment and not wandb.run._is_finished  # as with Lightning's WandbLogger
    internal_log = wandb.run.settings.log_internal
    logger.experiment.finish(exit_code=1)  # how a user ends it (wandb.finish() does the same)
    assert wait_until_closed(internal_log)  # finish() returns before W&B has written the run's file out
    run = the_run(tmp_path)
    assert run.exit_code == 1 and run.values("a") == [(0, 1.0)]
    assert logger.version == run.run_id  # still known after the run was finished


def test_pickles_without_the_run_and_keeps_one_run_id(tmp_path):
    logger = WandbLogger(save_dir=tmp_path, project="p")
    copy = pickle.loads(pickle.dumps(logger))
    assert copy.version == logger.version is not None  # fixed before pickling: every copy logs to one run
    logger.log_metrics({"a": 1.0}, step=0)
    state = logger.__getstate__()
    assert state["_experiment"] is None and state["_attach_id"] == logger.experiment._attach_id
    logger.finalize("success")
    copy.log_metrics({"a": 2.0}, step=1)
    copy.finalize("success")
    end_run()
    runs = read_runs(tmp_path)
    assert {run.run_id for run in runs} == {logger.version}
    assert [value for run in runs for _, value in run.values("a")] == [1.0, 2.0]


# ---- model helpers -------------------------------------------------------------------------------------


class Watched(Tiny):
    def on_fit_start(self):
        self.logger.watch(self, log="all", log_freq=1)


@NO_VAL_LOADER
def test_watch_logs_gradients_and_parameters(tmp_path):
    logger = WandbLogger(save_dir=tmp_path, project="p")
    trainer(tmp_path, logger, max_epochs=1).fit(Watched(), loader())
    run = the_run(tmp_path)
    keys = {key for row in run.history for key in row}
    assert "gradients/layer.weight" in keys and "parameters/layer.weight" in keys
    no_dropped_steps(tmp_path)


def test_artifact_lookups_offline_raise_a_clear_error(tmp_path):
    logger = WandbLogger(save_dir=tmp_path, offline=True)
    with pytest.raises(TracklightError, match="needs W&B online"):
        logger.use_artifact("entity/project/model:latest")
    _ = logger.experiment
    with pytest.raises(TracklightError, match="needs W&B online"):
        WandbLogger.download_artifact("entity/project/model:latest", save_dir=tmp_path)
    logger.finalize("success")
    # a staticmethod, as Lightning's, wherever in WandbLogger's bases it is defined
    assert isinstance(inspect.getattr_static(WandbLogger, "download_artifact"), staticmethod)


@pytest.mark.parametrize(
    "method",
    [
        "__init__",
        "log_metrics",
        "log_hyperparams",
        "log_image",
        "log_text",
        "log_table",
        "log_audio",
        "log_video",
        "watch",
        "use_artifact",
        "download_artifact",
        "after_save_checkpoint",
        "finalize",
    ],
)
def test_lightning_signatures_still_work(method):
    import inspect

    from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger

    theirs = inspect.signature(getattr(LightningWandbLogger, method)).parameters
    ours = inspect.signature(getattr(WandbLogger, method)).parameters
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    their_positional = [name for name, p in theirs.items() if p.kind in positional]
    our_positional = [name for name, p in ours.items() if p.kind in positional]
    assert our_positional[: len(their_positional)] == their_positional
    for name, parameter in theirs.items():
        if parameter.kind in positional and parameter.default is not inspect.Parameter.empty:
            assert ours[name].default == parameter.default, name
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ours.values())
