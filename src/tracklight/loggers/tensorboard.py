"""TensorBoardLogger: Lightning's arguments and layout; scalars written by hand, media through SummaryWriter."""

from __future__ import annotations

import contextlib
import os
import time
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracklight import media
from tracklight._errors import InvalidMetricError, MissingDependencyError, warn
from tracklight._fs import leaves_its_folder
from tracklight._imports import is_available, is_instance_by_name, require
from tracklight._metrics import are_plain, check_step, to_number
from tracklight._rank import rank_zero_only
from tracklight.formats.tb_hparams import hparams_summaries
from tracklight.formats.tfevents import EventFile, SummaryLayout, write_purge_file
from tracklight.loggers._graph import add_graph, shorten
from tracklight.loggers._starting import start_lock
from tracklight.loggers._versioned import VersionedDirLogger
from tracklight.loggers.logger import rank_zero_experiment
from tracklight.params import HparamsYaml, flatten, sanitize, warn_conversions

if TYPE_CHECKING:
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["TensorBoardLogger"]

#: Distinct key sets whose summary layout is kept; a run that logs ever-new key sets starts over past this.
_MAX_LAYOUTS = 256


class TensorBoardLogger(VersionedDirLogger):
    r"""Log to ``save_dir/name/version_N[/sub_dir]`` in TensorBoard's format, plus ``hparams.yaml``.

    Takes Lightning's ``TensorBoardLogger`` arguments. ``experiment`` is a
    ``torch.utils.tensorboard.SummaryWriter`` for everything TensorBoard can show (``add_image``,
    ``add_histogram``, ``add_graph``...). Scalars from ``log_metrics`` skip it: they are encoded
    directly into their own event file in the same directory, which TensorBoard reads together with
    the writer's file. A dict value (``{"loss": {"train": 0.5, "val": 0.7}}``) is laid out as Lightning's
    ``add_scalars`` call lays it out: one sub-run per entry (``log_dir/loss_train``) under the tag ``loss``.

    Args:
        save_dir: Directory that holds every experiment.
        name: Experiment name; ``None`` or ``""`` puts versions directly under ``save_dir``.
        version: ``int`` for ``version_N``, ``str`` for a named directory, ``None`` for the next free one.
        log_graph: Add the model graph (needs ``model.example_input_array``) when Lightning calls ``log_graph``.
        default_hp_metric: Log a placeholder ``hp_metric`` of -1 with the hyperparameters so the HPARAMS
            tab shows them before any real metric is linked.
        prefix: Put at the start of every metric key, joined with ``-``.
        sub_dir: A sub-directory of the version directory to write into.
        continue_run: Continue the run of a state given to :meth:`load_state_dict` (which Lightning's Trainer
            does when ``fit`` resumes from a checkpoint): the same ``version_N`` folder, with a purge record that makes
            TensorBoard drop what the earlier process logged past that state's step. ``False``: always a new
            version, as Lightning's ``TensorBoardLogger`` does. See docs/resume.md.
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
        *,
        continue_run: bool = True,
        **kwargs: Any,
    ) -> None:
        if not is_available("tensorboard"):
            raise MissingDependencyError(
                "TensorBoardLogger needs the 'tensorboard' package. "
                "Install it with: pip install 'tracklight[tensorboard]'"
            )
        super().__init__(save_dir, name, version, sub_dir, continue_run=continue_run)
        self._log_graph = log_graph
        self._default_hp_metric = default_hp_metric
        self._prefix = prefix
        kwargs.setdefault("flush_secs", 1)
        self._kwargs = kwargs
        self._experiment: SummaryWriter | None = None
        self._events: dict[str, EventFile] = {}
        self._layouts: dict[tuple[str, ...], SummaryLayout] = {}
        self._hparams_file: HparamsYaml | None = None
        self._hparams_saved = False
        self._last_writer_flush = 0.0

    @property
    def hparams(self) -> dict[str, Any]:
        return self._hparams().values

    @property
    @rank_zero_experiment
    def experiment(self) -> SummaryWriter:
        """The ``torch.utils.tensorboard.SummaryWriter`` of this run (a no-op stand-in on other ranks)."""
        if self._experiment is None:
            with start_lock(self):  # threads asking first at once: one writer, one event file
                return self._start_writer()
        return self._experiment

    def _start_writer(self) -> SummaryWriter:
        if self._experiment is None:
            tensorboard = require("torch.utils.tensorboard", "tensorboard")
            directory = self._local_dir()
            os.makedirs(directory, exist_ok=True)
            self._purge_superseded(directory)
            self._experiment = tensorboard.SummaryWriter(log_dir=directory, **self._kwargs)
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        check_step(metrics, step)  # an int64 step: TensorBoard's Event.step would wrap a larger one around
        step = 0 if step is None else int(step)
        if self._last_step is None or step > self._last_step:
            self._last_step = step
        values = list(metrics.values())
        if not are_plain(values):
            if any(isinstance(value, Mapping) for value in values):
                metrics = self._log_scalar_dicts(metrics, step)
            values = [_number(key, value) for key, value in metrics.items()]
        if not values:
            return
        # The same keys step after step is the common case: their tags are laid out once, per key set.
        keys = tuple(metrics)
        layout = self._layouts.get(keys)
        if layout is None:
            if len(self._layouts) >= _MAX_LAYOUTS:
                self._layouts.clear()
            layout = self._layouts[keys] = SummaryLayout([self._tag(key) for key in keys])
        self._event_file("").add_summary(step, layout.pack(values))

    @rank_zero_only
    def log_hyperparams(
        self,
        params: dict[str, Any] | Namespace | None = None,
        metrics: Mapping[str, Any] | float | None = None,
        step: int | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Record hyperparameters in ``hparams.yaml`` and TensorBoard's HPARAMS tab.

        Args:
            params: The hyperparameters (nested dicts are flattened with ``/`` for TensorBoard).
            metrics: Metrics to link to them in the HPARAMS tab; a number means ``{"hp_metric": number}``.
            step: The step of ``metrics`` (0 when not given).
        """
        clean, notes = sanitize(params)
        warn_conversions(notes, type(self).__name__)
        self._hparams().update(clean)
        if metrics is None:
            # A continued run has its placeholder at step 0 already (kept: it is before the resume step); a
            # second one would show step 0 twice.
            metrics = {"hp_metric": -1} if self._default_hp_metric and not self._continues_step_zero() else None
        elif not isinstance(metrics, Mapping):
            metrics = {"hp_metric": metrics}
        if not metrics:
            return
        self.log_metrics(metrics, step)
        # Encoded with TensorBoard's protobufs into the scalar event file: no torch needed for hyperparameters.
        flat = {key: _hparam_value(value) for key, value in flatten(self._hparams().values).items()}
        events = self._event_file("")
        for part in hparams_summaries(flat, metrics):
            events.add_summary(0 if step is None else int(step), part)

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Add ``model``'s graph, traced with ``input_array`` (default: ``model.example_input_array``).

        Does nothing unless the logger was made with ``log_graph=True``, as in Lightning.
        """
        if not self._log_graph:
            return
        add_graph(lambda: self.experiment, model, input_array)

    @rank_zero_only
    def save(self) -> None:
        for events in self._events.values():
            events.flush(check=False)
        if self._experiment is not None and time.monotonic() - self._last_writer_flush >= 1.0:
            self._experiment.flush()
            if self._remote:
                self._start_new_writer_file_if_large()
            self._last_writer_flush = time.monotonic()
        self._save_hparams_once()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        for events in self._events.values():
            events.close()
        if self._hparams_file is not None and any(events.restores for events in self._events.values()):
            self._hparams_file.restore()  # the folder was removed under us: hparams.yaml went with it
        if self._experiment is not None:
            self._experiment.flush()
            self._experiment.close()
        if status == "success":
            self._save_hparams_once()
        self._finish_remote()

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
        captions = [image.caption or "" for image in images]
        if any(captions):
            text = captions[0] if len(captions) == 1 else "\n".join(f"- {i}: {c}" for i, c in enumerate(captions))
            self._write_caption(key, text, step)

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
        if audio.caption:
            self._write_caption(key, audio.caption, step)

    def _write_caption(self, key: str, caption: str, step: int | None) -> None:
        # TensorBoard's images and audio have no caption field: the caption goes beside them as text.
        self.experiment.add_text(f"{key}/caption", caption, step)

    def _write_figure(self, key: str, figure: Any, step: int | None) -> None:
        if is_instance_by_name(figure, "matplotlib.figure.Figure"):
            self.experiment.add_figure(key, figure, step, close=False)
        else:
            self.experiment.add_image(key, media.image_pixels(figure), step, dataformats="HWC")

    def _write_table(self, key: str, table: media.Table, step: int | None) -> None:
        self.experiment.add_text(key, table.markdown(), step)

    # ---- internals ---------------------------------------------------------------------------------------

    def _tag(self, key: str) -> str:
        return f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}" if self._prefix else key

    def _event_file(self, run: str) -> EventFile:
        """The scalar event file of ``log_dir`` (``run=""``) or of the sub-run ``log_dir/run``."""
        events = self._events.get(run)
        if events is None:
            with start_lock(self):  # threads logging first at once: one event file
                return self._new_event_file(run)
        return events

    def _new_event_file(self, run: str) -> EventFile:
        events = self._events.get(run)
        if events is None:
            directory = self._local_dir()
            self._purge_superseded(directory)
            # On an object store a file that changed is uploaded whole: scalars go up in bounded segments.
            max_bytes = _remote_segment_bytes() if self._remote else None
            events = EventFile(os.path.join(directory, run) if run else directory, max_bytes)
            self._events[run] = events
        return events

    def _purge_superseded(self, directory: str) -> None:
        """Once, when a continued run first opens its folder: a purge record in it and in each sub-run folder that
        holds events, so TensorBoard drops what the earlier process logged past the step this run resumed from."""
        resuming, last_step = self._take_resume()
        if not resuming:
            return
        purge_step = 0 if last_step is None else last_step + 1
        folders = [directory]
        with contextlib.suppress(OSError):
            folders += sorted(entry.path for entry in os.scandir(directory) if entry.is_dir(follow_symlinks=False))
        for folder in folders:
            try:
                if any(name.startswith("events.out.tfevents.") for name in os.listdir(folder)):
                    write_purge_file(folder, purge_step)
            except OSError as err:
                warn(
                    f"Could not write TensorBoard's purge record into {folder} ({err}); TensorBoard may show the "
                    f"steps from {purge_step} on twice there (the earlier process's and this run's)."
                )

    def _writers_open(self) -> bool:
        return self._experiment is not None or bool(self._events)

    def _start_new_writer_file_if_large(self) -> None:
        """Close the writer once its event file passed the segment size (a run on an object store): its next
        ``add_*`` opens a new file, so what is uploaded whole stays bounded."""
        writer = self._experiment
        event_writer = getattr(getattr(writer, "file_writer", None), "event_writer", None)
        path = getattr(event_writer, "_file_name", None)
        with contextlib.suppress(OSError, TypeError):
            if writer is not None and path and os.path.getsize(path) >= _remote_segment_bytes():
                writer.close()

    def _log_scalar_dicts(self, metrics: Mapping[str, Any], step: int) -> dict[str, Any]:
        """Log the dict values of ``metrics`` and return the others.

        A dict is laid out as ``SummaryWriter.add_scalars`` (which Lightning calls) lays it out: each entry
        in its own run ``log_dir/<key>_<entry>`` under the tag ``key``, so TensorBoard draws them in one chart.
        """
        rest = {}
        for key, value in metrics.items():
            if not isinstance(value, Mapping):
                rest[key] = value
                continue
            tag = self._tag(key)
            for sub_key, sub_value in value.items():
                number = _number(f"{key}/{sub_key}", sub_value)
                self._event_file(_sub_run(tag, key, sub_key)).add_scalars(step, [(tag, number)])
        return rest

    def _save_hparams_once(self) -> None:
        """Write ``hparams.yaml`` (empty when no hyperparameters were logged) once the run has a directory,
        as Lightning's logger does, so the layout is the same."""
        if self._hparams_saved or (self._experiment is None and not self._events and self._hparams_file is None):
            return  # nothing was logged: asking for log_dir would claim a version directory for nothing
        if not os.path.isdir(self._local_dir()):
            return
        self._hparams_saved = True
        if not os.path.exists(os.path.join(self._local_dir(), self.NAME_HPARAMS_FILE)):
            self._hparams().update({})

    def _hparams(self) -> HparamsYaml:
        if self._hparams_file is None:
            self._hparams_file = HparamsYaml(os.path.join(self._local_dir(), self.NAME_HPARAMS_FILE))
        return self._hparams_file

    def _state_for_pickle(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_experiment=None, _events={}, _layouts={}, _hparams_file=None)
        return state


def _remote_segment_bytes() -> int:
    from tracklight.remote._mirror import SEGMENT_BYTES

    return SEGMENT_BYTES


def _sub_run(tag: str, key: str, sub_key: Any) -> str:
    """The folder under ``log_dir`` of one entry of a dict metric, as ``add_scalars`` names it: ``<tag>_<entry>``."""
    run = f"{tag.replace('/', '_')}_{sub_key}"
    if leaves_its_folder(run):
        raise InvalidMetricError(
            f"Metric {key!r} has the entry {sub_key!r}, which TensorBoard would write to a folder outside the "
            f"run ({run!r}). Fix: use entry names without '..' path parts."
        )
    return run


def _hparam_value(value: Any) -> int | float | str | bool:
    """The HPARAMS tab takes numbers, strings and booleans; anything else is shown as its string."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _number(key: str, value: Any) -> float | int:
    """``to_number``, whose error starts with the sentence of Lightning's TensorBoardLogger (a ``ValueError`` too),
    so a ``match=`` written for it holds."""
    try:
        return to_number(key, value)
    except InvalidMetricError as error:
        raise InvalidMetricError(
            f"you tried to log {shorten(str(value))} which is currently not supported. Try a dict or a "
            f"scalar/tensor. {error}"
        ) from error
