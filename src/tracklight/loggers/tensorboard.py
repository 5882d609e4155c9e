"""TensorBoardLogger: Lightning's arguments and layout; scalars written by hand, media through SummaryWriter."""

from __future__ import annotations

import os
import time
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracklight import media
from tracklight._imports import is_instance_by_name, require
from tracklight._metrics import to_number
from tracklight._rank import rank_zero_only
from tracklight._tfevents import EventFile
from tracklight.loggers._versioned import VersionedDirLogger
from tracklight.loggers.logger import rank_zero_experiment
from tracklight.params import HparamsYaml, flatten, sanitize, warn_conversions

if TYPE_CHECKING:
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(VersionedDirLogger):
    r"""Log to ``save_dir/name/version_N[/sub_dir]`` in TensorBoard's format, plus ``hparams.yaml``.

    Takes Lightning's ``TensorBoardLogger`` arguments. ``experiment`` is a
    ``torch.utils.tensorboard.SummaryWriter`` for everything TensorBoard can show (``add_image``,
    ``add_histogram``, ``add_graph``...). Scalars from ``log_metrics`` skip it: they are encoded
    directly into their own event file in the same directory, which TensorBoard reads together with
    the writer's file.

    Args:
        save_dir: Directory that holds every experiment.
        name: Experiment name; ``None`` or ``""`` puts versions directly under ``save_dir``.
        version: ``int`` for ``version_N``, ``str`` for a named directory, ``None`` for the next free one.
        log_graph: Add the model graph (needs ``model.example_input_array``) when Lightning calls ``log_graph``.
        default_hp_metric: Log a placeholder ``hp_metric`` of -1 with the hyperparameters so the HPARAMS
            tab shows them before any real metric is linked.
        prefix: Put at the start of every metric key, joined with ``-``.
        sub_dir: A sub-directory of the version directory to write into.
        \**kwargs: Passed to ``SummaryWriter`` (for example ``flush_secs``, ``max_queue``).

    Example:
        >>> import tempfile
        >>> from tracklight.loggers import TensorBoardLogger
        >>> logger = TensorBoardLogger(tempfile.mkdtemp(), name="my_model")
        >>> logger.log_metrics({"train/loss": 0.5}, step=10)
        >>> logger.finalize("success")
    """

    NAME_HPARAMS_FILE = "hparams.yaml"
    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        log_graph: bool = False,
        default_hp_metric: bool = True,
        prefix: str = "",
        sub_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(save_dir, name, version, sub_dir)
        self._log_graph = log_graph
        self._default_hp_metric = default_hp_metric
        self._prefix = prefix
        kwargs.setdefault("flush_secs", 1)
        self._kwargs = kwargs
        self._experiment: SummaryWriter | None = None
        self._events: EventFile | None = None
        self._hparams_file: HparamsYaml | None = None
        self._last_writer_flush = 0.0

    @property
    def hparams(self) -> dict[str, Any]:
        return self._hparams().values

    @property
    @rank_zero_experiment
    def experiment(self) -> SummaryWriter:
        """The ``torch.utils.tensorboard.SummaryWriter`` of this run (a no-op stand-in on other ranks)."""
        if self._experiment is None:
            tensorboard = require("torch.utils.tensorboard", "tensorboard")
            os.makedirs(self.log_dir, exist_ok=True)
            self._experiment = tensorboard.SummaryWriter(log_dir=self.log_dir, **self._kwargs)
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        events = self._events
        if events is None:
            events = self._events = EventFile(self.log_dir)
        prefix = f"{self._prefix}{self.LOGGER_JOIN_CHAR}" if self._prefix else ""
        scalars: list[tuple[str, float]] = []
        for key, value in metrics.items():
            if isinstance(value, Mapping):  # Lightning writes dicts with add_scalars: one tag per entry
                scalars.extend(
                    (f"{prefix}{key}/{sub}", float(to_number(f"{key}/{sub}", v))) for sub, v in value.items()
                )
            else:
                scalars.append((prefix + key, float(to_number(key, value))))
        events.add_scalars(0 if step is None else int(step), scalars)

    @rank_zero_only
    def log_hyperparams(
        self,
        params: dict[str, Any] | Namespace | None = None,
        metrics: Mapping[str, Any] | float | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Record hyperparameters in ``hparams.yaml`` and TensorBoard's HPARAMS tab.

        Args:
            params: The hyperparameters (nested dicts are flattened with ``/`` for TensorBoard).
            metrics: Metrics to link to them in the HPARAMS tab; a number means ``{"hp_metric": number}``.
        """
        clean, notes = sanitize(params)
        warn_conversions(notes, type(self).__name__)
        self._hparams().update(clean)
        if metrics is None:
            metrics = {"hp_metric": -1} if self._default_hp_metric else None
        elif not isinstance(metrics, Mapping):
            metrics = {"hp_metric": metrics}
        if not metrics:
            return
        self.log_metrics(metrics, 0)
        summary = require("torch.utils.tensorboard.summary", "tensorboard")
        flat = {key: _hparam_value(value) for key, value in flatten(self._hparams().values).items()}
        writer = self.experiment._get_file_writer()
        for part in summary.hparams(flat, {key: 0.0 for key in metrics}):
            writer.add_summary(part)

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        if not self._log_graph:
            return
        import warnings

        if input_array is None:
            input_array = getattr(model, "example_input_array", None)
        if input_array is None:
            warnings.warn(
                "Could not log the model graph to TensorBoard: set `model.example_input_array` or pass "
                "`input_array` to log_graph.",
                stacklevel=2,
            )
            return
        if hasattr(model, "_apply_batch_transfer_handler"):  # a LightningModule: move the input like a batch
            input_array = model._apply_batch_transfer_handler(model._on_before_batch_transfer(input_array))
        self.experiment.add_graph(model, input_array)

    @rank_zero_only
    def save(self) -> None:
        if self._events is not None:
            self._events.flush()
        if self._experiment is not None and time.monotonic() - self._last_writer_flush >= 1.0:
            self._experiment.flush()
            self._last_writer_flush = time.monotonic()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._events is not None:
            self._events.close()
        if self._experiment is not None:
            self._experiment.flush()
            self._experiment.close()

    # ---- media: TensorBoard shows every kind ------------------------------------------------------------

    def _write_images(self, key: str, images: list[media.Image], step: int | None) -> None:
        if len(images) == 1:
            self.experiment.add_image(key, images[0].pixels, step, dataformats="HWC")
        elif len({image.pixels.shape for image in images}) == 1:
            import numpy as np

            self.experiment.add_images(key, np.stack([image.pixels for image in images]), step, dataformats="NHWC")
        else:
            for index, image in enumerate(images):
                self.experiment.add_image(f"{key}/{index}", image.pixels, step, dataformats="HWC")

    def _write_histogram(self, key: str, values: np.ndarray, step: int | None, bins: Any) -> None:
        self.experiment.add_histogram(key, values, step, bins="tensorflow" if bins == "auto" else bins)

    def _write_text(self, key: str, text: str, step: int | None) -> None:
        self.experiment.add_text(key, text, step)

    def _write_audio(self, key: str, audio: media.Audio, step: int | None) -> None:
        summary_pb2 = require("tensorboard.compat.proto.summary_pb2", "tensorboard")
        clip = summary_pb2.Summary.Audio(
            sample_rate=audio.sample_rate,
            num_channels=audio.samples.shape[1],
            length_frames=audio.samples.shape[0],
            encoded_audio_string=audio.wav(),
            content_type="audio/wav",
        )
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=key, audio=clip)])
        self.experiment._get_file_writer().add_summary(summary, step)

    def _write_figure(self, key: str, figure: Any, step: int | None) -> None:
        if is_instance_by_name(figure, "matplotlib.figure.Figure"):
            self.experiment.add_figure(key, figure, step, close=False)
        else:
            self.experiment.add_image(key, media.image_pixels(figure), step, dataformats="HWC")

    def _write_table(self, key: str, table: media.Table, step: int | None) -> None:
        self.experiment.add_text(key, table.markdown(), step)

    # ---- internals ---------------------------------------------------------------------------------------

    def _hparams(self) -> HparamsYaml:
        if self._hparams_file is None:
            self._hparams_file = HparamsYaml(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE))
        return self._hparams_file

    def _state_for_pickle(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_experiment=None, _events=None, _hparams_file=None)
        return state


def _hparam_value(value: Any) -> int | float | str | bool:
    """The HPARAMS tab takes numbers, strings and booleans; anything else is shown as its string."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
