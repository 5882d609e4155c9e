"""The logger contract: what Lightning's Trainer, Fabric and callbacks call, plus one media API.

Nothing vendor-specific lives here. A backend subclasses :class:`Logger`, implements ``name``,
``version``, ``log_metrics`` and ``log_hyperparams``, and overrides the ``_write_*`` media hooks for the
kinds of media it can show; the rest it inherits.
"""

from __future__ import annotations

import functools
import os
from abc import ABC, abstractmethod
from argparse import Namespace
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tracklight import media
from tracklight._errors import warn
from tracklight._media_files import MediaFiles
from tracklight._rank import global_rank, rank_zero_only

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DummyExperiment", "DummyLogger", "Logger", "rank_zero_experiment", "rank_zero_only"]


class Logger(ABC):
    """Base class of every tracklight logger, and of custom loggers written the Lightning way.

    Example:
        >>> from tracklight.loggers import Logger, rank_zero_only
        >>> class PrintLogger(Logger):
        ...     name = "print"
        ...     version = 0
        ...     @rank_zero_only
        ...     def log_metrics(self, metrics, step=None):
        ...         print(step, metrics)
        ...     @rank_zero_only
        ...     def log_hyperparams(self, params, *args, **kwargs):
        ...         pass
        >>> PrintLogger().log_metrics({"loss": 0.5}, step=3)
        3 {'loss': 0.5}
    """

    @property
    @abstractmethod
    def name(self) -> str | None:
        """The experiment name."""

    @property
    @abstractmethod
    def version(self) -> int | str | None:
        """The experiment version."""

    @property
    def root_dir(self) -> str | None:
        """The directory that holds every version of this experiment, or ``None`` when nothing is saved locally."""
        return None

    @property
    def log_dir(self) -> str | None:
        """The directory of this version of the experiment, or ``None`` when nothing is saved locally."""
        return None

    @property
    def save_dir(self) -> str | None:
        """The directory under which logs are saved, or ``None`` when nothing is saved locally."""
        return None

    @property
    def group_separator(self) -> str:
        """The separator that groups metric names into sections (``train/loss``)."""
        return "/"

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record scalar metrics at ``step``."""

    @abstractmethod
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Record hyperparameters (a dict, an ``argparse.Namespace`` or a dataclass)."""

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Record the model's graph; loggers that cannot show one do nothing."""

    def save(self) -> None:
        """Make what was logged durable."""

    def finalize(self, status: str) -> None:
        """Finish the run; ``status`` is ``"success"``, ``"failed"`` or ``"aborted"``."""
        self.save()

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Called by Lightning after a ``ModelCheckpoint`` saved a checkpoint."""

    # ---- resume: continue the same run after a restart (docs/resume.md) ---------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What a restarted process needs to continue this run: plain data (str, int, float, bool, None, lists,
        dicts), JSON-serialisable, cheap, never waiting on a network.

        A backend returns ``"logger"`` (its class name), the run's identity (``"version"`` for CSV and
        TensorBoard; the remote backends' run ids) and ``"last_step"`` (the largest step logged so far, or
        None). Lightning's Trainer stores it in every checkpoint (``checkpoint["tracklight"]``); Fabric's
        ``fabric.save(path, {"logger": logger})`` stores it too. The base class has nothing to continue: ``{}``.
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the run ``state`` (from :meth:`state_dict`) describes, before this logger's run starts.

        When the run starts, the logger continues that run, and what the earlier process logged at steps
        greater than ``state["last_step"]`` is superseded by this process's values for those steps. Called
        after the run started: one warning, nothing changes. An id given to the constructor (``version=``,
        ``run_id=``...) wins over the state; ``continue_run=False`` ignores it. A state the logger cannot use
        (another logger's, missing keys, the run gone) gives one warning and a new run; it never raises.
        The base class does nothing.
        """

    # ---- one media API: convert here, write in the backend's ``_write_*`` hooks ---------------------------

    @rank_zero_only
    def log_image(
        self,
        key: str,
        images: Any,
        step: int | None = None,
        *,
        caption: str | list[str] | None = None,
        dataformats: str | None = None,
    ) -> None:
        """Log one image or a list of them: tensors, numpy arrays, PIL images or matplotlib figures."""
        self._write_images(key, media.to_images(images, caption, dataformats), step)

    @rank_zero_only
    def log_histogram(self, key: str, values: Any, step: int | None = None, *, bins: Any = "auto") -> None:
        """Log the distribution of ``values`` (a tensor or array of any shape)."""
        self._write_histogram(key, media.histogram_values(values, key), step, bins)

    @rank_zero_only
    def log_text(self, key: str, text: Any, step: int | None = None) -> None:
        """Log a piece of text (markdown where the backend renders it)."""
        self._write_text(key, media.to_text(text), step)

    @rank_zero_only
    def log_audio(
        self,
        key: str,
        audio: Any,
        step: int | None = None,
        *,
        sample_rate: int = 44100,
        caption: str | None = None,
    ) -> None:
        """Log an audio clip: a 1-D (mono) or 2-D (channels x frames) tensor or array of floats in [-1, 1]."""
        self._write_audio(key, media.to_audio(audio, sample_rate, caption), step)

    @rank_zero_only
    def log_figure(self, key: str, figure: Any, step: int | None = None, *, close: bool = True) -> None:
        """Log a matplotlib figure; ``close=True`` closes it afterwards, as TensorBoard's ``add_figure`` does."""
        try:
            self._write_figure(key, figure, step)
        finally:
            if close:
                media.close_figure(figure)

    @rank_zero_only
    def log_table(
        self,
        key: str,
        columns: list[str] | None = None,
        data: list[list[Any]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        """Log a table from ``columns`` and ``data`` (rows) or from a pandas ``dataframe``."""
        self._write_table(key, media.to_table(columns, data, dataframe), step)

    # Backends override the hooks they can show; the defaults keep the media as files under log_dir.

    def _write_images(self, key: str, images: list[media.Image], step: int | None) -> None:
        self._keep_media(
            "image", key, step, [("png", image.png()) for image in images], captions=[image.caption for image in images]
        )

    def _write_histogram(self, key: str, values: np.ndarray, step: int | None, bins: Any) -> None:
        counts, edges = media.histogram_counts(values, bins)
        table = media.Table(
            ["left", "right", "count"],
            [[float(a), float(b), int(c)] for a, b, c in zip(edges[:-1], edges[1:], counts, strict=False)],
        )
        self._keep_media(
            "histogram",
            key,
            step,
            [("csv", table.csv().encode())],
            min=float(values.min()),
            max=float(values.max()),
            num=int(values.size),
        )

    def _write_text(self, key: str, text: str, step: int | None) -> None:
        self._keep_media("text", key, step, [("md", text.encode("utf-8"))])

    def _write_audio(self, key: str, audio: media.Audio, step: int | None) -> None:
        self._keep_media(
            "audio", key, step, [("wav", audio.wav())], sample_rate=audio.sample_rate, caption=audio.caption
        )

    def _write_figure(self, key: str, figure: Any, step: int | None) -> None:
        self._keep_media("figure", key, step, [("png", media.figure_png(figure))])

    def _write_table(self, key: str, table: media.Table, step: int | None) -> None:
        self._keep_media("table", key, step, [("csv", table.csv().encode("utf-8"))])

    def _files_dir(self) -> str | None:
        """The local directory where this logger keeps files (a remote logger's staging folder)."""
        return self.log_dir or self.save_dir

    def _keep_media(self, kind: str, key: str, step: int | None, files: list[tuple[str, bytes]], **meta: Any) -> None:
        """Keep media this backend cannot show as files under its directory, and say so once per kind."""
        said = self.__dict__.setdefault("_tracklight_media_said", set())
        directory = self._files_dir()
        if directory is None:
            if kind not in said:
                said.add(kind)
                warn(
                    f"{type(self).__name__} has no local directory, so the {kind} logged under {key!r} was not "
                    "kept. Add a logger that shows it (TensorBoardLogger, CSVLogger) or log it with "
                    "a LoggerCollection that includes one."
                )
            return
        store = self.__dict__.get("_tracklight_media_files")
        if store is None:
            store = self.__dict__["_tracklight_media_files"] = MediaFiles(os.fspath(directory))
        store.keep(kind, key, step, files, **meta)
        if kind not in said:
            said.add(kind)
            warn(
                f"{type(self).__name__} cannot display {kind} media, so it keeps them as files under "
                f"{store.root} (listed in {store.index_path})."
            )


def rank_zero_experiment(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Decorate a logger's ``experiment`` property: the real object on rank zero, a no-op stand-in elsewhere."""

    @functools.wraps(fn)
    def experiment(self: Any) -> Any:
        if global_rank() > 0:
            return DummyExperiment()
        return fn(self)

    return experiment


class DummyExperiment:
    """Stands in for ``experiment`` on ranks other than zero: every attribute is a function that does nothing."""

    def nop(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, _: str) -> Callable[..., None]:
        return self.nop

    def __getitem__(self, _: Any) -> DummyExperiment:
        return self

    def __setitem__(self, *args: Any) -> None:
        pass


class DummyLogger(Logger):
    """A logger that logs nothing, as Lightning's ``DummyLogger`` (which the Trainer puts in place of the user's
    loggers for ``fast_dev_run`` and the tuner): every method, known or not, does nothing.

    Example:
        >>> logger = DummyLogger()
        >>> logger.log_metrics({"loss": 0.5}, step=0)
        >>> logger.anything_at_all(1, 2), logger[0] is logger, logger.experiment.add_scalar("x", 1.0)
        (None, True, None)
    """

    def __init__(self) -> None:
        super().__init__()
        self._experiment = DummyExperiment()

    @property
    def experiment(self) -> DummyExperiment:
        return self._experiment

    def log_metrics(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        pass

    @property
    def name(self) -> str:
        return ""

    @property
    def version(self) -> str:
        return ""

    def __getitem__(self, idx: int) -> DummyLogger:
        return self

    def _keep_media(self, kind: str, key: str, step: int | None, files: list[tuple[str, bytes]], **meta: Any) -> None:
        pass  # the media API logs nothing either, and says nothing about it

    def __getattr__(self, name: str) -> Callable[..., None]:
        def method(*args: Any, **kwargs: Any) -> None:
            return None

        return method
