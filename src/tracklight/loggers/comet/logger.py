"""CometLogger: Comet experiments online or offline, with Lightning's arguments and the older ones its docs use."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import uuid
from argparse import Namespace
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from tracklight import media
from tracklight._errors import warn
from tracklight._metrics import check_step, to_number
from tracklight._rank import global_rank, rank_zero_only
from tracklight._resumed import SDK_MARK
from tracklight.loggers import _checkpoints as checkpoints
from tracklight.loggers._remote_resume import ResumeState, last_step_of, next_last_step
from tracklight.loggers._sdk_delivery import DEFAULT_TIMEOUT, REMOVE, SdkDelivery, media_weight
from tracklight.loggers._starting import starts_once
from tracklight.loggers.comet import config as comet_config
from tracklight.loggers.comet.sink import CometSink
from tracklight.loggers.logger import Logger, rank_zero_experiment
from tracklight.params import flatten, nan_as_text, sanitize, warn_conversions

if TYPE_CHECKING:
    import numpy as np

    from tracklight.delivery import DeliveryReport

__all__ = ["CometLogger"]

#: What the experiment records as its origin (Comet shows it as "Created from").
CREATED_FROM = "tracklight"


class CometLogger(Logger):
    r"""Log to a `Comet <https://www.comet.com>`_ experiment, online or offline.

    Takes the keyword arguments of Lightning's ``CometLogger`` and the older names Lightning's docs
    still show, with their real meaning: ``project_name`` is ``project``, ``experiment_name`` is
    ``name``, ``save_dir`` is the directory of offline archives and ``offline=True`` means
    ``online=False``. Offline (``online=False``, ``COMET_START_ONLINE=false``, or no API key
    anywhere), the experiment is written as a ``.zip`` archive that ``comet upload`` sends later, and
    nothing goes over the network.

    Metrics, parameters, media and checkpoints are handed to the experiment by a background worker, in
    the order they were logged; ``experiment`` first waits until what was queued has reached it.
    ``finalize`` waits for the queue and flushes the experiment, as Lightning's does, and leaves it open:
    ``trainer.test`` after ``trainer.fit`` logs to the same experiment, which Comet ends (writing the
    offline archive) when the process exits. To end it earlier, call ``logger.experiment.end()``;
    logging afterwards continues the same experiment by its key.

    Args:
        api_key: Comet API key; defaults to ``COMET_API_KEY`` or Comet's config file.
        workspace: Comet workspace; defaults to your default workspace.
        project: Comet project name (``project_name`` is accepted too).
        experiment_key: Key of an experiment to continue (with ``mode="get"`` or ``"get_or_create"``) or
            to give a new one: 32 to 50 letters and digits.
        mode: ``"get_or_create"`` (Comet's default), ``"get"`` or ``"create"``.
        online: ``False`` writes an offline archive; ``None`` asks Comet's config (``COMET_START_ONLINE``),
            then goes offline only when there is no API key.
        prefix: Put in front of every metric name, joined with ``_`` (Comet's way).
        log_model: ``True`` logs the best and last checkpoints as files of a Comet model when training
            ends; ``"all"`` logs every checkpoint as it is saved; ``False`` logs none.
        checkpoint_name: Name of the Comet model the checkpoints go to (default ``"model"``).
        delivery_timeout: Seconds ``finalize`` (and ``experiment``) wait for the queue to reach the experiment.
        continue_run: ``load_state_dict`` (a resumed checkpoint) continues the experiment of the state it is given;
            ``False`` ignores it and starts a new one, as Lightning's logger does.
        \**kwargs: Passed to ``comet_ml.ExperimentConfig``: ``name`` (or ``experiment_name``),
            ``offline_directory`` (or ``save_dir``), ``tags``, ``log_code``, ``display_summary_level``...

    Example:
        >>> import tempfile
        >>> from tracklight.loggers.comet import CometLogger
        >>> logger = CometLogger(project_name="my-project", experiment_name="experiment-1",
        ...                      save_dir=tempfile.mkdtemp(), online=False, display_summary_level=0)
        >>> logger.log_metrics({"train/loss": 0.5}, step=10)
        >>> logger.finalize("success")
        >>> logger.experiment.end()  # or at exit: the archive is complete, for comet upload <save_dir>/<key>-*.zip
    """

    LOGGER_JOIN_CHAR = "_"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        workspace: str | None = None,
        project: str | None = None,
        experiment_key: str | None = None,
        mode: Literal["get_or_create", "get", "create"] | None = None,
        online: bool | None = None,
        prefix: str | None = None,
        log_model: bool | Literal["all"] = False,
        checkpoint_name: str | None = None,
        delivery_timeout: float = DEFAULT_TIMEOUT,
        continue_run: bool = True,
        **kwargs: Any,
    ) -> None:
        settings = comet_config.resolve(
            api_key=api_key,
            workspace=workspace,
            project=project,
            experiment_key=experiment_key,
            mode=mode,
            online=online,
            kwargs=kwargs,
        )
        comet_ml = comet_config.import_comet(offline=comet_config.offline_before_import(settings))
        self._settings = settings
        self._online = comet_config.decide_online(comet_ml, settings)
        self._config_kwargs = comet_config.experiment_config_kwargs(settings, self._online)
        comet_config.experiment_config(comet_ml, self._config_kwargs)  # bad keywords fail here, not mid-training
        self._project = settings.project
        self._experiment_key = settings.experiment_key
        self._prefix = prefix or None
        self._log_model = checkpoints.check_log_model(log_model)
        self._checkpoint_name = checkpoint_name or "model"
        self._experiment: Any = None
        self._ended = False  # the experiment was ended (by the user): later use continues it by key
        self._offline_directory = comet_config.offline_directory(comet_ml, settings, self._online)
        self._delivery_timeout = float(delivery_timeout)
        self._remote: SdkDelivery | None = None
        self._checkpoint_callbacks: dict[int, Any] = {}
        self._logged_model_time: dict[str, float] = {}
        self._checkpoint_failures = 0
        self._resume = ResumeState(type(self).__name__, continue_run)
        self._last_step: int | None = None

    # ---- identity ----------------------------------------------------------------------------------------

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``comet_ml`` experiment (``OfflineExperiment`` offline); a no-op stand-in on other ranks.

        Started on first use; what was logged before is handed to it first, so calls made on it come after
        those values. After it was ended, the next use continues the same experiment.
        """
        experiment = self._live()
        assert self._remote is not None
        self._remote.wait()
        return experiment

    @starts_once  # threads making the first call at once: one experiment, never read half-made
    def _live(self) -> Any:
        """The experiment, started (or continued) when needed; what is queued may not have reached it yet."""
        experiment = self._experiment
        if experiment is not None and getattr(experiment, "ended", False) is not True:  # `is`: a stubbed SDK
            return experiment
        if experiment is not None:
            self._ended = True
        experiment = self._experiment = self._start()
        if self._remote is None:
            directory = self._offline_directory or os.path.join(tempfile.gettempdir(), "tracklight-comet")
            offline = self._online is False
            hint = f"comet upload {self._offline_directory}/{self._experiment_key}-*.zip" if offline else ""
            self._remote = SdkDelivery(
                type(self).__name__, CometSink(), os.path.join(directory, "tracklight"), self._delivery_timeout, hint
            )
        sink = self._remote.sink
        assert isinstance(sink, CometSink)
        sink.experiment = experiment
        self._remote.attached(experiment)
        return experiment

    def _start(self) -> Any:
        comet_ml = comet_config.import_comet(offline=self._online is False)
        resumed, self._resume.state = self._resume.state, None  # once: an experiment ended later is just continued
        mode = "get" if self._ended or resumed is not None else self._settings.mode
        config = comet_config.experiment_config(comet_ml, self._config_kwargs)
        probes = comet_config.no_network_probes(comet_ml) if self._online is False else contextlib.nullcontext()
        with probes:
            experiment = comet_ml.start(
                api_key=self._settings.api_key,
                workspace=self._settings.workspace,
                project=self._project,
                experiment_key=self._experiment_key,
                mode=mode,
                online=self._online,
                experiment_config=config,
            )
        self._experiment_key = experiment.get_key()
        self._project = getattr(experiment, "project_name", None) or self._project
        if self._online is False and getattr(experiment, "offline_directory", None):
            self._offline_directory = os.path.abspath(experiment.offline_directory)  # Comet may fall back to a tmp dir
        if not self._ended and resumed is None:
            experiment.log_other("Created from", CREATED_FROM)
        if resumed is not None:  # where this process took over: tracklight's reader leaves out what it superseded
            experiment.log_other(SDK_MARK, -1 if last_step_of(resumed) is None else last_step_of(resumed))
        return experiment

    @property
    def name(self) -> str | None:
        """The Comet project name (as in Lightning)."""
        return self._project

    @property
    def version(self) -> str | None:
        """The experiment key; rank zero starts the experiment to learn it when it was not given."""
        if self._experiment is not None:
            return str(self._experiment.get_key())
        if self._experiment_key is None and global_rank() == 0:
            return str(self._live().get_key())
        return self._experiment_key

    @property
    def save_dir(self) -> str | None:
        """The directory of offline archives (``save_dir``/``offline_directory``), or ``None`` online without one."""
        return self._offline_directory

    @property
    def online(self) -> bool | None:
        """Whether the experiment goes to the Comet server (``False``: an offline archive; ``None``: Comet decides,
        for a ``comet_ml`` stub without Comet's config)."""
        return self._online

    # ---- metrics and hyperparameters ---------------------------------------------------------------------

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numbers at ``step``; Lightning's ``epoch`` entry becomes the epoch of the values, as in Lightning."""
        check_step(metrics, step)
        values: dict[str, float | int] = {}
        epoch = None
        nested = any(isinstance(value, Mapping) for value in metrics.values())
        for key, value in (flatten(metrics) if nested else metrics).items():
            number = to_number(key, value)
            if key == "epoch":
                epoch = int(number)
            else:
                values[key] = number
        self._last_step = next_last_step(self._last_step, step)
        self._live()
        item = {"kind": "row", "values": values, "prefix": self._prefix, "step": step, "epoch": epoch}
        self._remote.put(item)  # type: ignore[union-attr]  # _live() made it

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any) -> None:
        """Log hyperparameters as Comet parameters (nested dicts shown as ``outer|inner``)."""
        clean, notes = sanitize(params)
        warn_conversions(notes, type(self).__name__)
        self._live()
        params = nan_as_text(clean)
        self._remote.put({"kind": "hyperparameter", "params": params})  # type: ignore[union-attr]  # _live() made it

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Record the model's structure (its ``repr``) as the experiment's graph."""
        graph = repr(model)  # now, on this thread: the model keeps training meanwhile
        self._call("graph", "model", lambda experiment: experiment.set_model_graph(graph))

    def _call(
        self, kind: str, key: str, call: Callable[[Any], None], weight: int = 1, remove: list[str] | None = None
    ) -> None:
        """Queue ``call(experiment)`` for the worker; ``remove`` lists files to delete once it ran."""
        self._live()
        item: dict[str, Any] = {"kind": kind, "key": key, "call": call}
        if remove:
            item[REMOVE] = remove
        self._remote.put(item, weight)  # type: ignore[union-attr]  # _live() made it

    # ---- media: through Comet's own calls ----------------------------------------------------------------

    def _write_images(self, key: str, images: list[media.Image], step: int | None) -> None:
        def log(experiment: Any) -> None:
            for index, image in enumerate(images):
                name = key if len(images) == 1 else f"{key}_{index}"
                metadata = {"caption": image.caption} if image.caption else None
                experiment.log_image(io.BytesIO(image.png()), name=name, step=step, metadata=metadata)

        self._call("image", key, log, media_weight(sum(image.pixels.nbytes for image in images)))

    def _write_histogram(self, key: str, values: np.ndarray, step: int | None, bins: Any) -> None:
        # Comet bins the values itself (fixed, fine bins shared by every step of the chart).
        self._call("histogram", key, lambda experiment: experiment.log_histogram_3d(values, name=key, step=step))

    def _write_text(self, key: str, text: str, step: int | None) -> None:
        self._call("text", key, lambda experiment: experiment.log_text(text, step=step, metadata={"key": key}))

    def _write_audio(self, key: str, audio: media.Audio, step: int | None) -> None:
        def log(experiment: Any) -> None:
            # Comet takes a file or an array, not bytes; it copies the file when called, so ours can go at once.
            handle, path = tempfile.mkstemp(suffix=".wav", prefix="tracklight-")
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(audio.wav())
                metadata = {"key": key, "sample_rate": audio.sample_rate}
                if audio.caption:
                    metadata["caption"] = audio.caption
                experiment.log_audio(path, file_name=_file_name(key, step, "wav"), step=step, metadata=metadata)
            finally:
                os.remove(path)

        self._call("audio", key, log, media_weight(audio.samples.nbytes))

    def _write_figure(self, key: str, figure: Any, step: int | None) -> None:
        if media.is_figure(figure):
            png = media.figure_png(figure)  # now, here: the figure may be closed or changed once this returns
            log = lambda experiment: experiment.log_image(io.BytesIO(png), name=key, step=step)  # noqa: E731
            self._call("figure", key, log, media_weight(len(png)))
        else:
            self._write_images(key, media.to_images(figure), step)

    def _write_table(self, key: str, table: media.Table, step: int | None) -> None:
        name = _file_name(key, step, "csv")
        self._call(
            "table", key, lambda experiment: experiment.log_table(name, tabular_data=table.rows, headers=table.columns)
        )

    # ---- checkpoints -------------------------------------------------------------------------------------

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """With ``log_model="all"`` log the checkpoint just saved; with ``True`` remember the callback for the end."""
        if not self._log_model:
            return
        if checkpoints.logs_every_save(self._log_model, checkpoint_callback):
            self._log_checkpoints(checkpoint_callback)
        else:
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback

    def _log_checkpoints(self, callback: Any) -> None:
        for candidate in checkpoints.candidates(callback, self._logged_model_time):
            metadata = checkpoints.metadata(callback, candidate)
            metadata["best"] = candidate.best
            try:
                # Set aside now: by the time the worker uploads it, Lightning may have rewritten (last.ckpt) or
                # deleted the file.
                staged = checkpoints.stage(candidate.path, self._staging_directory())
            except Exception as err:  # a checkpoint that cannot be logged must not stop training
                self._checkpoint_failures += 1
                if self._checkpoint_failures == 1:
                    warn(
                        f"CometLogger could not log the checkpoint {candidate.path} ({type(err).__name__}: {err}). "
                        "The file is still on disk; log it later with experiment.log_model(name, path). "
                        "Further failures are not reported."
                    )
                continue
            self._call(
                "checkpoint",
                candidate.path,
                _log_model(self._checkpoint_name, staged, os.path.basename(candidate.path), metadata),
                remove=[os.path.dirname(staged)],
            )
            self._logged_model_time[candidate.path] = candidate.mtime

    def _staging_directory(self) -> str:
        self._live()
        assert self._remote is not None
        return os.path.join(self._remote.directory, "staging")

    # ---- lifecycle ---------------------------------------------------------------------------------------

    @property
    def delivery_report(self) -> DeliveryReport | None:
        """What the last ``finalize`` handed to the experiment, and what it could not."""
        return self._remote.report if self._remote is not None else None

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Log the checkpoints still due and ``status``, then wait (at most ``delivery_timeout`` seconds) until
        everything queued reached the experiment and flush it, as Lightning does. The experiment stays open;
        Comet ends it (writing the offline archive) at exit, or when you call ``logger.experiment.end()``."""
        for callback in list(self._checkpoint_callbacks.values()):
            with contextlib.suppress(ReferenceError):  # the callback (held through a weak proxy) is gone
                self._log_checkpoints(callback)
        self._checkpoint_callbacks.clear()
        if self._experiment is None:
            return
        self._call("status", "status", lambda experiment: experiment.log_other("status", status))
        self._call("flush", "flush", lambda experiment: experiment.flush())
        self._remote.finish()  # type: ignore[union-attr]  # _call() made it

    # ---- resume -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The experiment to continue after a restart: ``experiment_key``, ``project``, ``workspace`` and
        ``last_step``. Plain data; never waits for Comet."""
        key = self._experiment.get_key() if self._experiment is not None else self._experiment_key
        return {
            "logger": type(self).__name__,
            "experiment_key": None if key is None else str(key),
            "project": self._project,
            "workspace": self._settings.workspace,
            "online": self._online,
            "last_step": self._last_step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the experiment of ``state`` (from :meth:`state_dict`) when it starts (``mode="get"``, offline an
        ``ExistingOfflineExperiment`` archive). Comet keeps every value, so those the earlier process logged after
        ``state["last_step"]`` stay in Comet; the experiment's ``tracklight/resumed_after_step`` says from where,
        and ``tracklight`` leaves them out. An explicit ``experiment_key`` wins; a state that cannot be used gives
        one warning and a new experiment."""
        self._resume.load(state, self._experiment is not None, ("experiment_key",))
        loaded = self._resume.state
        if loaded is None:
            return
        if self._experiment_key is not None and self._experiment_key != loaded["experiment_key"]:
            self._resume.state = None  # the key given to the constructor wins, silently: the user asked for it
        elif loaded.get("project") not in (None, self._project) and self._project is not None:
            self._resume.give_up(
                f"its experiment is in the project {loaded['project']!r}, and this logger logs to {self._project!r}; "
                "pass the same project as the first time to continue it"
            )
        else:
            self._experiment_key = loaded["experiment_key"]

    def __getstate__(self) -> dict[str, Any]:
        # The experiment holds threads and sockets; a copy in another process continues it by its key.
        if self._experiment is None and self._experiment_key is None and global_rank() == 0:
            # ddp_spawn pickles the logger before it starts: choose the key now, or the copy that logs and this
            # logger would each start an experiment of their own.
            self._experiment_key = uuid.uuid4().hex
        state = dict(self.__dict__)
        if self._experiment is not None:
            state["_experiment_key"] = self._experiment.get_key()
        state.update(_experiment=None, _remote=None, _checkpoint_callbacks={})
        return state


def _log_model(name: str, path: str, file_name: str, metadata: dict[str, Any]) -> Callable[[Any], None]:
    def log(experiment: Any) -> None:
        # Given an open file, Comet copies it before returning; the staged copy is then removed.
        with open(path, "rb") as handle:
            experiment.log_model(name, handle, file_name=file_name, metadata=metadata)

    return log


def _file_name(key: str, step: int | None, extension: str) -> str:
    return f"{key}.{extension}" if step is None else f"{key}_step{step}.{extension}"
