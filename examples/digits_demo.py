"""tracklight demo: a small classifier on scikit-learn's digits, trained by a Lightning ``Trainer`` and
logged to every tracklight backend at once through one ``LoggerCollection``: CSV, TensorBoard, Weights &
Biases, MLflow, Comet and Neptune.

What it shows:

* the drop-in import (``from tracklight import loggers as pl_loggers``);
* ``save_hyperparameters()`` (to ``hparams.yaml``, TensorBoard's HPARAMS tab and each run's parameters);
* per-step and per-epoch metrics from ``self.log`` for training, per-epoch metrics for validation;
* media through ``self.logger``: an image grid of digits, weight histograms, a confusion matrix as a
  table and as a figure, and text. Every backend gets the same calls; the CSV logger keeps media as
  files with an index.

Everything stays on this machine, under ``--save-dir``: W&B, Comet and Neptune run offline (their runs
can be uploaded later; the summary at the end prints how) and MLflow uses an SQLite file. No account,
API key or network is needed. The digits data ship with scikit-learn (no download). On 2 CPU cores the
training takes seconds; starting the four SDKs takes longer than that.

Run it with ``bash scripts/demo.sh`` (sets everything up) or, in an environment that has
``tracklight[dev]``: ``python examples/digits_demo.py [--save-dir demo_logs] [--max-epochs 15]``.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import shlex
import sys
import time
import warnings

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import Timer
from matplotlib.figure import Figure
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from tracklight import TracklightWarning
from tracklight import loggers as pl_loggers

CLASSES = 10
PROJECT = "tracklight-demo"  # the W&B and Comet project, the MLflow experiment
RUN = "digits"  # the run's name, where the backend has one


def stay_offline_and_quiet(save_dir: str) -> None:
    """Settings the SDKs read when they are first imported, so this runs before any logger starts.

    Offline ones are forced, whatever the shell says: the demo must not send anything anywhere. The
    quieting ones are defaults: set ``WANDB_SILENT=false`` (and so on) to see the SDKs' own output.
    """
    os.environ["WANDB_MODE"] = "offline"
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # a tracking server set in the shell would get the run otherwise
    # MLflow 3 otherwise fetches a telemetry configuration from the internet in a background thread.
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    # Neptune keeps offline runs in ./.neptune unless told otherwise; keep them with the demo's other logs.
    os.environ["NEPTUNE_DATA_DIRECTORY"] = os.path.join(save_dir, "neptune", ".neptune")
    # The SDKs' banners and end-of-run summaries; the summary this demo prints says where everything is.
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("COMET_LOGGING_CONSOLE", "WARNING")
    logging.getLogger("neptune").addFilter(lambda record: record.levelno >= logging.WARNING)


def make_loggers(save_dir: str) -> list[pl_loggers.Logger]:
    """Every backend tracklight has, each writing under ``save_dir``. Adding a backend is one more line here."""
    return [
        pl_loggers.TensorBoardLogger(save_dir, name="tensorboard", log_graph=True),
        pl_loggers.CSVLogger(save_dir, name="csv"),
        pl_loggers.WandbLogger(name=RUN, project=PROJECT, save_dir=save_dir, offline=True),
        # No tracking URI: MLflow's embedded store, an SQLite file in save_dir (MLFLOW_TRACKING_URI is unset above).
        pl_loggers.MLFlowLogger(PROJECT, run_name=RUN, save_dir=os.path.join(save_dir, "mlflow")),
        pl_loggers.CometLogger(
            project=PROJECT, name=RUN, online=False, offline_directory=os.path.join(save_dir, "comet")
        ),
        pl_loggers.NeptuneLogger(name=RUN, mode="offline"),  # under NEPTUNE_DATA_DIRECTORY, set above
    ]


def digit_loaders(batch_size: int, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """8x8 digits (1,797 of them), scaled to [0, 1], split 80/20 into training and validation."""
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32)  # (N, 8, 8)
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(labels))
    train, val = order[:cut], order[cut:]
    return (
        DataLoader(TensorDataset(images[train], labels[train]), batch_size=batch_size, shuffle=True),
        DataLoader(TensorDataset(images[val], labels[val]), batch_size=256),
    )


def image_grid(images: torch.Tensor, columns: int, scale: int = 4) -> np.ndarray:
    """Tile (N, 8, 8) images in [0, 1] into one (H, W) grid with a 1-pixel border, each pixel ``scale`` wide."""
    rows = -(-len(images) // columns)
    size = images.shape[-1] * scale
    grid = np.ones((rows * (size + 1) + 1, columns * (size + 1) + 1), dtype=np.float32)
    for index, image in enumerate(images.numpy()):
        top, left = 1 + (index // columns) * (size + 1), 1 + (index % columns) * (size + 1)
        grid[top : top + size, left : left + size] = 1.0 - np.kron(image, np.ones((scale, scale)))
    return grid


def confusion_figure(matrix: np.ndarray, title: str) -> Figure:
    figure = Figure(figsize=(4.5, 4))
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        axes.text(column, row, str(count), ha="center", va="center", fontsize=7, color=color)
    axes.set(xlabel="predicted", ylabel="true", title=title, xticks=range(CLASSES), yticks=range(CLASSES))
    figure.tight_layout()
    return figure


class DigitClassifier(LightningModule):
    """A two-layer perceptron over the 64 pixels of a digit."""

    def __init__(self, hidden: int = 128, dropout: float = 0.1, lr: float = 3e-3, batch_size: int = 64) -> None:
        super().__init__()
        self.save_hyperparameters()  # -> hparams.yaml and the HPARAMS tab of every logger
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, CLASSES)
        )
        self.example_input_array = torch.zeros(1, 8, 8)
        self._confusion = torch.zeros(CLASSES, CLASSES, dtype=torch.long)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        # on_step and on_epoch: "train/loss_step" every step, "train/loss_epoch" once per epoch.
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", accuracy, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        predictions = logits.argmax(dim=1)
        self.log("val/loss", F.cross_entropy(logits, labels), prog_bar=True)
        self.log("val/acc", (predictions == labels).float().mean(), prog_bar=True)
        self._confusion += torch.bincount(labels * CLASSES + predictions, minlength=CLASSES**2).view(CLASSES, -1)

    # ---- media, through self.logger: with a LoggerCollection it reaches every backend ---------------------

    def on_train_start(self) -> None:
        images, labels = self.trainer.train_dataloader.dataset.tensors
        first_of_each = [int((labels == digit).nonzero()[0]) for digit in range(CLASSES)]
        picked = images[first_of_each + list(range(30))]
        self.logger.log_image(
            "data/digits", image_grid(picked, columns=10), step=0, caption="one of each class, then 30 more"
        )
        model_rows = "\n".join(f"| `{name}` | {tuple(p.shape)} |" for name, p in self.named_parameters())
        self.logger.log_text(
            "notes/setup",
            f"**Digits**: {len(labels)} training and {len(self.trainer.val_dataloaders.dataset)} validation "
            f"images, 8x8 pixels.\n\n| parameter | shape |\n|---|---|\n{model_rows}",
            step=0,
        )

    def on_train_epoch_end(self) -> None:
        for name, parameter in self.named_parameters():
            if name.endswith("weight"):
                self.logger.log_histogram(f"weights/{name}", parameter.detach(), step=self.global_step)

    def on_validation_epoch_start(self) -> None:
        self._confusion.zero_()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        matrix = self._confusion.numpy()
        per_class = matrix.diagonal() / matrix.sum(axis=1).clip(min=1)
        # Links the validation accuracy to the hyperparameters in TensorBoard's HPARAMS tab.
        self.log("hp_metric", float(matrix.trace() / matrix.sum()))
        self.logger.log_table(
            "val/confusion_matrix",
            columns=["true \\ predicted", *map(str, range(CLASSES))],
            data=[[str(digit), *map(int, row)] for digit, row in enumerate(matrix)],
            step=self.global_step,
        )
        if self.current_epoch == self.trainer.max_epochs - 1:
            self.logger.log_figure(
                "val/confusion_matrix_figure", confusion_figure(matrix, f"epoch {self.current_epoch}"), self.global_step
            )
            worst = np.argsort(per_class)[:3]
            self.logger.log_text(
                "notes/result",
                "Hardest digits: " + ", ".join(f"{d} ({per_class[d]:.0%} right)" for d in worst),
                step=self.global_step,
            )


def shown(path: str) -> str:
    """``path`` relative to the current directory when it lies below it, else absolute."""
    relative = os.path.relpath(path)
    return os.path.abspath(path) if relative.startswith(os.pardir) else relative


def this_environment(program: str) -> str:
    """``program`` from the environment running the demo, so the command works in a shell that has not
    activated it (``bash scripts/demo.sh`` activates ``.venv`` only for itself)."""
    path = os.path.join(os.path.dirname(sys.executable), program)
    return shlex.quote(shown(path)) if os.path.exists(path) else program


def newest(pattern: str) -> str:
    """The last path matching ``pattern`` in name order (the newest, for W&B's time-stamped run folders)."""
    matches = sorted(glob.glob(pattern))
    return shown(matches[-1]) if matches else pattern


def where_to_look(logger: pl_loggers.Logger) -> list[str]:
    """Where one backend wrote and how to open it (a new backend without an entry here still gets its directory)."""
    log_dir = shown(logger.log_dir) if logger.log_dir else None
    if isinstance(logger, pl_loggers.TensorBoardLogger):
        return [
            f"TensorBoard  {log_dir}/  (scalars, images, histograms, text, figures, HPARAMS, graph)",
            f"             open it: {this_environment('tensorboard')} --logdir {shlex.quote(shown(logger.root_dir))}"
            "   then browse http://localhost:6006",
        ]
    if isinstance(logger, pl_loggers.CSVLogger):
        metrics = os.path.join(log_dir, "metrics.csv")
        python = this_environment(os.path.basename(sys.executable))
        return [
            f"CSV          {metrics}  (hparams.yaml beside it)",
            f"             read it: {python} -c \"import pandas as pd; print(pd.read_csv('{metrics}'))\"",
            f"             media kept as files, listed in {os.path.join(log_dir, 'media', 'index.jsonl')}",
        ]
    if isinstance(logger, pl_loggers.WandbLogger):
        run_dir = newest(os.path.join(logger.save_dir, "wandb", f"offline-run-*-{logger.version}"))
        return [
            f"W&B          {run_dir}/  (offline run {logger.version} in project {PROJECT})",
            f"             upload it: {this_environment('wandb')} sync {shlex.quote(run_dir)}   (after wandb login)",
        ]
    if isinstance(logger, pl_loggers.MLFlowLogger):
        database = shown(os.path.join(logger.save_dir, "mlflow.db"))
        store = shlex.quote(f"sqlite:///{database}")  # three slashes, then the path: relative or absolute
        return [
            f"MLflow       {database}  (run {logger.run_id} in experiment {PROJECT}; files in "
            f"{shown(os.path.join(logger.save_dir, 'artifacts'))}/)",
            f"             open it: {this_environment('mlflow')} ui --backend-store-uri {store}"
            "   then browse http://localhost:5000",
        ]
    if isinstance(logger, pl_loggers.CometLogger):
        archive = newest(os.path.join(logger.save_dir, f"{logger.version}-*.zip"))
        return [
            f"Comet        {archive}  (offline experiment archive)",
            f"             upload it: {this_environment('comet')} upload {shlex.quote(archive)}"
            "   (with COMET_API_KEY set)",
        ]
    if isinstance(logger, pl_loggers.NeptuneLogger):
        data_dir = os.path.dirname(logger.save_dir)  # `neptune sync --path` takes the folder that holds .neptune
        run_dir = newest(os.path.join(logger.save_dir, "offline", f"run__{logger.version}__*"))
        return [
            f"Neptune      {run_dir}/  (offline run)",
            f"             upload it: {this_environment('neptune')} sync --path {shlex.quote(shown(data_dir))} "
            f"--project WORKSPACE/{PROJECT}   (with NEPTUNE_API_TOKEN set)",
        ]
    return [f"{type(logger).__name__:<12} {log_dir or logger.save_dir or '(remote)'}"]


def end_run(logger: pl_loggers.Logger) -> None:
    """End a remote run the way its SDK does; ``experiment`` first hands over what was logged to it."""
    if isinstance(logger, pl_loggers.WandbLogger):
        logger.experiment.finish()
    elif isinstance(logger, pl_loggers.CometLogger):
        logger.experiment.end()
    elif isinstance(logger, pl_loggers.NeptuneLogger):
        logger.run.stop()


def hide_noise() -> None:
    """Hide messages that say nothing about this demo, so that its own summary stands out."""
    # The data set is tiny, so worker processes would cost more than they save.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # The CSV logger says once per kind of media that it keeps them as files; the summary below says where.
    warnings.filterwarnings("ignore", ".*cannot display .* media.*", TracklightWarning)
    # MLflow images have no captions; the one caption the demo gives is in every other backend.
    warnings.filterwarnings("ignore", ".*images have no captions.*", TracklightWarning)
    # Lightning 2.6 warns about its own use of a torch API that torch 2.13 deprecates.
    warnings.filterwarnings("ignore", ".*LeafSpec.*", FutureWarning)
    # Neptune looks for NVIDIA's library to record GPU use; a machine without a GPU has none.
    warnings.filterwarnings("ignore", ".*NVML.*")
    # Lightning's tips about its cloud products.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not record.getMessage().startswith("\N{ELECTRIC LIGHT BULB} Tip")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--save-dir", default="demo_logs", help="where every backend writes (default: demo_logs)")
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lr", type=float, default=3e-3, help="learning rate (a second run with another: compare them)"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    stay_offline_and_quiet(args.save_dir)
    hide_noise()
    # A model this small trains fastest on one thread; more would compete with the loggers' background threads.
    torch.set_num_threads(1)
    seed_everything(args.seed, verbose=False)
    model = DigitClassifier(lr=args.lr)
    train_loader, val_loader = digit_loaders(model.hparams.batch_size, args.seed)
    logger = pl_loggers.LoggerCollection(make_loggers(args.save_dir))
    timer = Timer()
    trainer = Trainer(
        max_epochs=args.max_epochs,
        logger=logger,
        callbacks=[timer],
        log_every_n_steps=5,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=sys.stdout.isatty(),
        enable_model_summary=False,
    )
    trainer.fit(model, train_loader, val_loader)
    # As with Lightning's loggers, the W&B, Comet and Neptune runs stay open after fit (a trainer.test would
    # log to them) until the process exits. End them here so their files are complete when listed below.
    for backend in logger.loggers:
        end_run(backend)

    final = trainer.callback_metrics
    print(
        f"\nTrained {args.max_epochs} epochs in {timer.time_elapsed('train'):.1f} s "
        f"({time.perf_counter() - started:.1f} s in all, starting and closing the {len(logger)} backends included): "
        f"validation accuracy {float(final['val/acc']):.1%}, validation loss {float(final['val/loss']):.3f}.\n"
        f"\nLogs are under {os.path.abspath(args.save_dir)}, all written offline (nothing left this machine):"
    )
    for backend in logger.loggers:
        print("  " + "\n  ".join(where_to_look(backend)))
    print(f"  checkpoint   {shown(trainer.checkpoint_callback.best_model_path)}")
    csv_run = next(shown(b.log_dir) for b in logger.loggers if isinstance(b, pl_loggers.CSVLogger))
    tracklight = this_environment("tracklight")
    print(
        "\nEvery run, whatever wrote it, from the command line (the 'cli' extra, which scripts/demo.sh installs):\n"
        f"  {tracklight} ls {shlex.quote(shown(args.save_dir))}\n"
        f"  {tracklight} plot {shlex.quote(csv_run)} -m 'val/*' -o val.png   (without -o: in the terminal)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
