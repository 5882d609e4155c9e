"""WandbLogger: Weights & Biases runs, online or offline, with steps W&B never drops and checkpoints as artifacts."""

from __future__ import annotations

import contextlib
import os
import secrets
import string
import time
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from tracklight import media
from tracklight._errors import MissingDependencyError, TracklightError, warn
from tracklight._imports import is_available, require
from tracklight._metrics import to_number
from tracklight._rank import global_rank, rank_zero_only
from tracklight.loggers import _checkpoints as checkpoints
from tracklight.loggers import _wandb_media as wandb_media
from tracklight.loggers.logger import Logger, rank_zero_experiment
from tracklight.params import nan_as_text, sanitize, warn_conversions

if TYPE_CHECKING:
    import numpy as np

__all__ = ["WandbLogger"]

_OFFLINE_MODES = ("offline", "dryrun")
_ID_ALPHABET = string.ascii_lowercase + string.digits
_STREAM_CLOSED = '"stream: all finished"'
#: Seconds ``finalize`` waits for W&B to write out a finished run (it goes on after that; W&B still writes it).
CLOSE_TIMEOUT = 10.0


class WandbLogger(Logger):
    r"""Log to a `Weights & Biases <https://wandb.ai>`_ run, online or offline.

    Takes Lightning's ``WandbLogger`` arguments and keeps its helpers (``log_image``, ``log_text``,
    ``log_table``, ``log_audio``, ``log_video``, ``watch``, ``use_artifact``, ``download_artifact``).
    ``experiment`` is the ``wandb`` run, created on first use (or the active ``wandb.run``, reused).

    Where it differs from Lightning's:

    * Steps: every row is logged without W&B's ``step=``, so W&B's own step only grows and no value is
      dropped with "Steps must be monotonically increasing" (validation after training, test runs,
      gradient accumulation, resumed runs, your own ``experiment.log`` calls). The trainer step goes into
      the row as ``trainer/global_step``, which ``define_metric`` makes the x-axis of every metric.
    * Checkpoints: ``log_model=True`` uploads the best and the last checkpoint as they are saved (a
      crash loses none), then the rest of the top-k at ``finalize``; ``log_model="all"`` uploads every
      checkpoint as it is saved. Each is a ``model`` artifact with the aliases ``latest`` (and ``best``) and
      its score in the metadata. With ``offline=True`` they are recorded in the offline run and uploaded
      by ``wandb sync`` instead of raising.
    * ``finalize`` finishes a run the logger created, so it is complete on disk; logging again (``trainer.
      test`` after ``trainer.fit``) resumes the same run id. A run you passed in or started yourself is
      left open for you.
    * ``dir`` is used when ``save_dir`` is left at ``"."``, and so is ``WANDB_DIR`` when neither is given;
      ``WANDB_MODE`` is read when the run starts, even if it changed after ``wandb`` was set up.

    Args:
        name: Display name of the run.
        save_dir: Directory under which W&B writes ``wandb/<run>``; checkpoints go to
            ``save_dir/project/<run id>/checkpoints`` when this is the Trainer's first logger.
        version: Run id to use or resume (same as ``id``).
        offline: Write the run to disk only; ``wandb sync <dir>`` uploads it later.
        dir: Same as ``save_dir``.
        id: Same as ``version``.
        anonymous: Passed to W&B as ``anonymous="allow"`` when true (recent W&B ignores it).
        project: The W&B project; defaults to ``$WANDB_PROJECT``, then ``"lightning_logs"``.
        log_model: ``False``, ``True`` (best and last checkpoints) or ``"all"`` (every checkpoint).
        experiment: A ``wandb`` run to log to instead of starting one.
        prefix: Put at the start of every metric key, joined with ``-``.
        checkpoint_name: Name of the model artifact; defaults to ``model-<run id>``.
        add_file_policy: ``"mutable"`` copies each checkpoint before upload, ``"immutable"`` uploads the file
            in place (it must not change until uploaded).
        \**kwargs: Passed to ``wandb.init`` (``entity``, ``group``, ``tags``, ``config``, ``mode``, ...).

    Example:
        >>> from tracklight.loggers.wandb import WandbLogger
        >>> logger = WandbLogger(project="my-project", name="experiment-1", save_dir="logs/", log_model=True)
        >>> trainer = Trainer(logger=logger)  # doctest: +SKIP
        >>> logger.log_metrics({"train/loss": 0.25}, step=10)  # doctest: +SKIP
        >>> logger.finalize("success")  # doctest: +SKIP
    """

    LOGGER_JOIN_CHAR = "-"
    #: The history column that holds the trainer's step; every other metric is plotted against it.
    STEP_METRIC = "trainer/global_step"

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | os.PathLike[str] = ".",
        version: str | None = None,
        offline: bool = False,
        dir: str | os.PathLike[str] | None = None,
        id: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        log_model: Literal["all"] | bool = False,
        experiment: Any = None,
        prefix: str = "",
        checkpoint_name: str | None = None,
        add_file_policy: Literal["mutable", "immutable"] = "mutable",
        **kwargs: Any,
    ) -> None:
        if not is_available("wandb"):
            raise MissingDependencyError(
                "WandbLogger needs the 'wandb' package. Install it with: pip install 'tracklight[wandb]'"
            )
        if add_file_policy not in ("mutable", "immutable"):
            raise TracklightError(
                f"add_file_policy={add_file_policy!r} is not 'mutable' or 'immutable'. Fix: 'mutable' (the default) "
                "copies each checkpoint before upload; 'immutable' uploads the file in place."
            )
        self._offline = offline
        self._log_model = checkpoints.check_log_model(log_model)
        self._prefix = prefix
        self._experiment = experiment
        self._owns_run = False
        self._attach_id: str | None = None
        self._checkpoint_name = checkpoint_name
        self.add_file_policy = add_file_policy
        self._logged_model_time: dict[str, float] = {}
        self._checkpoint_callbacks: dict[int, Any] = {}
        self._checkpoint_failures = 0

        init: dict[str, Any] = {
            "name": name,
            "project": project or os.environ.get("WANDB_PROJECT") or "lightning_logs",
            "dir": _run_dir(save_dir, dir),
            "id": version or id,
            "resume": "allow",
        }
        if anonymous is not None:  # recent W&B warns about the setting whenever it is passed at all
            init["anonymous"] = "allow" if anonymous else "never"
        init.update(kwargs)
        self._wandb_init = init
        self._project: str | None = init.get("project")
        self._save_dir: str | None = init.get("dir")
        self._name: str | None = init.get("name")
        self._id: str | None = init.get("id")

    # ---- identity ----------------------------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The W&B project (not the run's display name, which is ``experiment.name``), as in Lightning."""
        return self._project

    @property
    def version(self) -> str | None:
        """The run id: the run's once it exists, else the one given (or chosen when the logger was pickled)."""
        return self._experiment.id if self._experiment is not None else self._id

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    # ---- the run -----------------------------------------------------------------------------------------

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``wandb`` run (a no-op stand-in on ranks other than zero); started on first use.

        Example:
            >>> logger.experiment.summary["best_accuracy"] = 0.93  # doctest: +SKIP
        """
        run = self._experiment
        if run is not None and getattr(run, "_is_finished", False) is True:  # a stub's attribute is not True
            # finished behind the logger's back (wandb.finish()): resume it rather than fail on the next log
            self._id = self._wandb_init["id"] = run.id
            self._project = self._wandb_init["project"] = run.project
            self._experiment = None
        if self._experiment is None:
            self._experiment = self._open_run()
        return self._experiment

    def _open_run(self) -> Any:
        wandb = require("wandb", "wandb")
        if wandb.run is not None:
            warn(
                "There is a wandb run already in progress and newly created instances of `WandbLogger` will reuse "
                "this run. If this is not desired, call `wandb.finish()` before instantiating `WandbLogger`."
            )
            self._owns_run = False
            return wandb.run
        if self._attach_id is not None:
            attach_id, self._attach_id = self._attach_id, None
            try:
                run = wandb._attach(attach_id)
            except Exception:  # the parent's run is gone: resume it by id instead
                run = None
            if run is not None:
                self._owns_run = False
                return run
        arguments = self._init_arguments()
        if arguments.get("dir"):
            # W&B resolves a relative dir against the working directory it had when first set up, not today's.
            arguments["dir"] = os.path.abspath(os.path.expanduser(os.fspath(arguments["dir"])))
            os.makedirs(arguments["dir"], exist_ok=True)
        run = wandb.init(**arguments)
        self._owns_run = True
        self._id = run.id
        self._wandb_init["id"] = run.id  # a run finished by finalize is resumed, not replaced
        if self._wandb_init.get("sync_tensorboard"):
            run.define_metric("*", step_metric="global_step")
        else:
            run.define_metric(self.STEP_METRIC)
            run.define_metric("*", step_metric=self.STEP_METRIC, step_sync=True)
        return run

    def _init_arguments(self) -> dict[str, Any]:
        arguments = dict(self._wandb_init)
        if "mode" not in arguments:
            if self._offline:
                arguments["mode"] = "offline"
            else:
                # W&B reads its environment once per process; read WANDB_MODE now so a later change counts.
                mode = os.environ.get("WANDB_MODE")
                if mode in ("online", "offline", "disabled", "dryrun", "run"):
                    arguments["mode"] = "offline" if mode == "dryrun" else "online" if mode == "run" else mode
        return arguments

    def _is_offline(self) -> bool:
        run = self._experiment
        if run is not None:
            return getattr(getattr(run, "settings", None), "mode", None) in _OFFLINE_MODES
        return self._init_arguments().get("mode") in _OFFLINE_MODES

    # ---- metrics and hyperparameters ---------------------------------------------------------------------

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log one history row; ``step`` goes into the row as ``trainer/global_step``.

        Values are numbers (or one-element tensors), W&B data types such as ``wandb.Image``, or lists of them.
        """
        self._log_row({self._key(key): _value(key, value) for key, value in metrics.items()}, step)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any) -> None:
        """Add hyperparameters to the run's config (nested dicts stay nested); values may change later."""
        clean, notes = sanitize(params)
        warn_conversions(notes, type(self).__name__)
        self.experiment.config.update(nan_as_text(clean), allow_val_change=True)

    def _key(self, key: str) -> str:
        return f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}" if self._prefix else key

    def _log_row(self, row: dict[str, Any], step: int | None) -> None:
        if step is not None and not self._wandb_init.get("sync_tensorboard"):
            row[self.STEP_METRIC] = int(step)
        # Never W&B's `step=`: its own step then only grows, so it drops nothing; the x-axis is STEP_METRIC.
        self.experiment.log(row)

    def _log_media(self, key: str, value: Any, step: int | None) -> None:
        self._log_row({self._key(key): value}, step)

    # ---- Lightning's media helpers, which also serve tracklight's media API ------------------------------

    @rank_zero_only
    def log_image(self, key: str, images: Any, step: int | None = None, **kwargs: Any) -> None:
        """Log images: tensors, arrays, PIL images, figures, file paths or ``wandb.Image`` objects.

        ``images`` is a list (Lightning's form), a 4-D batch or one image. Keyword arguments go to each
        ``wandb.Image`` (``caption``, ``masks``, ``boxes``...): a list gives one value per image, anything else
        is shared. ``dataformats`` (``"CHW"``, ``"HWC"``...) says how to read arrays.

        Example:
            >>> logger.log_image("samples", [img_a, img_b], caption=["cat", "dog"])  # doctest: +SKIP
        """
        wandb = require("wandb", "wandb")
        entries = wandb_media.items(images)
        dataformats = kwargs.pop("dataformats", None)
        options = wandb_media.per_item(kwargs, len(entries), "image")
        values = [
            wandb_media.image(wandb, entry, dataformats, **option)
            for entry, option in zip(entries, options, strict=True)
        ]
        self._log_media(key, values, step)

    @rank_zero_only
    def log_text(  # type: ignore[override]  # Lightning's WandbLogger signature, plus the media API's form
        self,
        key: str,
        columns: Any = None,
        data: Any = None,
        dataframe: Any = None,
        step: int | None = None,
        *,
        text: Any = None,
    ) -> None:
        """Log text, in either form.

        * ``log_text(key, "some text", step)`` (tracklight's media API): a ``wandb.Html`` panel.
        * ``log_text(key, columns=[...], data=[[...]])`` or ``dataframe=...`` (Lightning's): a ``wandb.Table``.
        """
        if text is None and dataframe is None and not isinstance(columns, (list, tuple)):
            text = columns
            if step is None and isinstance(data, int):
                step, data = data, None
        if text is not None:
            self._write_text(key, media.to_text(text), step)
            return
        self.log_table(key, columns, data, dataframe, step)

    @rank_zero_only
    def log_table(
        self,
        key: str,
        columns: list[str] | None = None,
        data: list[list[Any]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        """Log a ``wandb.Table`` from ``columns`` and ``data`` (rows) or a pandas ``dataframe``.

        Cells may be any W&B data type (``wandb.Image``, ``wandb.Audio``, ``wandb.Html``...).
        """
        if dataframe is not None:
            wandb = require("wandb", "wandb")
            self._log_media(key, wandb.Table(dataframe=dataframe), step)
            return
        self._write_table(key, media.to_table(columns, [] if data is None and columns else data), step)

    @rank_zero_only
    def log_audio(  # type: ignore[override]  # Lightning's WandbLogger signature; `audio=` still works
        self, key: str, audios: Any = None, step: int | None = None, **kwargs: Any
    ) -> None:
        """Log audio clips: a list (Lightning's form) or one clip, as file paths or 1-D/2-D sample arrays.

        ``sample_rate`` (44100 unless given) and ``caption`` may be single values or one per clip;
        ``audio=`` is taken for ``audios`` (the name in tracklight's media API).

        Example:
            >>> logger.log_audio("speech", [clip], sample_rate=[16000], caption=["hello"])  # doctest: +SKIP
        """
        if audios is None:
            audios = kwargs.pop("audio", None)
        if audios is None:
            raise TracklightError(f"log_audio({key!r}) got no audio. Fix: log_audio(key, [clip, ...], step).")
        wandb = require("wandb", "wandb")
        entries = wandb_media.items(audios)
        options = wandb_media.per_item(kwargs, len(entries), "clip")
        if not wandb_media.can_log_audio():
            for entry, option in zip(entries, options, strict=True):
                self._keep_audio(key, entry, step, **option)
            return
        with wandb_media.AudioFiles(wandb) as files:
            values = [files.clip(entry, **option) for entry, option in zip(entries, options, strict=True)]
            self._log_media(key, values, step)

    @rank_zero_only
    def log_video(self, key: str, videos: Any, step: int | None = None, **kwargs: Any) -> None:
        """Log videos: file paths (``.mp4``, ``.gif``...) or ``(time, channel, height, width)`` uint8 arrays.

        ``caption``, ``fps`` and ``format`` may be single values or one per video.
        """
        wandb = require("wandb", "wandb")
        entries = wandb_media.items(videos) if isinstance(videos, (list, tuple)) else [videos]
        options = wandb_media.per_item(kwargs, len(entries), "video")
        self._log_media(
            key,
            [wandb_media.video(wandb, entry, **option) for entry, option in zip(entries, options, strict=True)],
            step,
        )

    def _write_images(self, key: str, images: list[media.Image], step: int | None) -> None:
        wandb = require("wandb", "wandb")
        self._log_media(key, [wandb_media.neutral_image(wandb, image) for image in images], step)

    def _write_histogram(self, key: str, values: np.ndarray, step: int | None, bins: Any) -> None:
        self._log_media(key, wandb_media.histogram(require("wandb", "wandb"), values, bins), step)

    def _write_text(self, key: str, text: str, step: int | None) -> None:
        self._log_media(key, wandb_media.text_html(require("wandb", "wandb"), text), step)

    def _write_audio(self, key: str, audio: media.Audio, step: int | None) -> None:
        if not wandb_media.can_log_audio():
            self._keep_audio(key, audio, step)
            return
        with wandb_media.AudioFiles(require("wandb", "wandb")) as files:
            self._log_media(key, files.neutral(audio), step)

    def _keep_audio(
        self, key: str, clip: Any, step: int | None, sample_rate: int | None = None, caption: str | None = None
    ) -> None:
        """Without ``soundfile`` W&B logs no audio at all: keep the clip as a WAV file and say how to fix it."""
        if "_audio_fallback_said" not in self.__dict__:
            self._audio_fallback_said = True
            warn(
                "W&B needs the 'soundfile' package to log audio, and it is not installed: WandbLogger keeps the "
                "clips as WAV files instead. Fix: pip install soundfile"
            )
        if isinstance(clip, (str, os.PathLike)):
            extension = os.path.splitext(os.fspath(clip))[1].lstrip(".") or "audio"
            with open(clip, "rb") as handle:
                self._keep_media("audio", key, step, [(extension, handle.read())], caption=caption)
            return
        if not isinstance(clip, media.Audio):
            clip = media.to_audio(clip, int(sample_rate or 44100), caption)
        self._keep_media("audio", key, step, [("wav", clip.wav())], sample_rate=clip.sample_rate, caption=clip.caption)

    def _write_figure(self, key: str, figure: Any, step: int | None) -> None:
        self._log_media(key, wandb_media.figure(require("wandb", "wandb"), figure), step)

    def _write_table(self, key: str, table: media.Table, step: int | None) -> None:
        self._log_media(key, wandb_media.table(require("wandb", "wandb"), table), step)

    # ---- models and artifacts ----------------------------------------------------------------------------

    def watch(self, model: Any, log: str | None = "gradients", log_freq: int = 100, log_graph: bool = True) -> None:
        """Log the model's gradients and/or parameters as histograms every ``log_freq`` steps (``wandb.watch``)."""
        self.experiment.watch(model, log=log, log_freq=log_freq, log_graph=log_graph)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self._log_model:
            return
        if checkpoints.logs_every_save(self._log_model, checkpoint_callback):
            self._log_checkpoints(checkpoint_callback, only_best_and_last=False)
        else:
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback
            self._log_checkpoints(checkpoint_callback, only_best_and_last=True)

    def _log_checkpoints(self, callback: Any, only_best_and_last: bool) -> None:
        found = checkpoints.candidates(callback, self._logged_model_time, only_best_and_last)
        if not found:
            return
        wandb = require("wandb", "wandb")
        run = self.experiment
        if not self._checkpoint_name:
            self._checkpoint_name = f"model-{run.id}"
        for candidate in found:
            try:
                artifact = wandb.Artifact(
                    name=self._checkpoint_name, type="model", metadata=checkpoints.metadata(callback, candidate)
                )
                artifact.add_file(candidate.path, name="model.ckpt", policy=self.add_file_policy)
                run.log_artifact(artifact, aliases=candidate.aliases)
            except Exception as err:  # a checkpoint that cannot be logged must not stop training
                self._checkpoint_failures += 1
                if self._checkpoint_failures == 1:
                    warn(
                        f"WandbLogger could not log the checkpoint {candidate.path} as an artifact "
                        f"({type(err).__name__}: {err}). The file is still on disk; log it later with "
                        "wandb.Artifact(...).add_file(path) and run.log_artifact(artifact). Further failures "
                        "are not reported."
                    )
                continue
            self._logged_model_time[candidate.path] = candidate.mtime

    def use_artifact(self, artifact: str, artifact_type: str | None = None) -> Any:
        """Mark an artifact (``"entity/project/name:alias"``) as used by this run and return it."""
        if self._is_offline():
            raise TracklightError(
                f"use_artifact({artifact!r}) needs W&B online: an offline run cannot look artifacts up. "
                "Fix: use an online run (offline=False, WANDB_MODE not 'offline'), or read the file directly."
            )
        return self.experiment.use_artifact(artifact, type=artifact_type)

    @staticmethod
    @rank_zero_only
    def download_artifact(
        artifact: str,
        save_dir: str | os.PathLike[str] | None = None,
        artifact_type: str | None = None,
        use_artifact: bool | None = True,
    ) -> str:
        """Download an artifact (``"entity/project/name:alias"``) and return the directory it is in.

        Through the active run when there is one and ``use_artifact`` is true (so the run records the use),
        else through the W&B API.
        """
        wandb = require("wandb", "wandb")
        run = wandb.run
        mode = getattr(getattr(run, "settings", None), "mode", None) if run is not None else None
        if mode in _OFFLINE_MODES or (run is None and os.environ.get("WANDB_MODE") in _OFFLINE_MODES):
            raise TracklightError(
                f"download_artifact({artifact!r}) needs W&B online, and the run or WANDB_MODE is offline. "
                "Fix: download it from an online process (WANDB_MODE=online), e.g. before training starts."
            )
        if run is not None and use_artifact:
            found = run.use_artifact(artifact)
        else:
            found = wandb.Api().artifact(artifact, type=artifact_type)
        return str(found.download(root=None if save_dir is None else os.fspath(save_dir)))

    # ---- lifecycle ---------------------------------------------------------------------------------------

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Log the checkpoints still due, then finish the run this logger started (its exit record is written).

        Checkpoints are logged whatever the status: the files on disk are real even when training failed.
        """
        for callback in list(self._checkpoint_callbacks.values()):
            with contextlib.suppress(ReferenceError):  # the callback (held through a weak proxy) is gone
                self._log_checkpoints(callback, only_best_and_last=False)
        self._checkpoint_callbacks.clear()
        run = self._experiment
        if run is None or not self._owns_run:
            return
        self._id = run.id
        self._wandb_init["id"] = run.id
        self._experiment = None
        self._owns_run = False
        internal_log = getattr(getattr(run, "settings", None), "log_internal", None)
        run.finish(exit_code=0 if status in ("success", "finished") else 1)
        if internal_log:
            wait_until_closed(internal_log)

    def __getstate__(self) -> dict[str, Any]:
        # ddp_spawn pickles the logger into new processes. They must all write to one run: rank zero's copy
        # attaches to this process's run when there is one, else starts the run under an id fixed here.
        if global_rank() == 0 and self._experiment is None and self._id is None:
            self._id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
            self._wandb_init["id"] = self._id
        state = dict(self.__dict__)
        state["_wandb_init"] = dict(self._wandb_init)
        run = self._experiment
        if run is not None:
            state["_id"] = run.id
            state["_name"] = run.name
            state["_wandb_init"].update(id=run.id, project=run.project)
            state["_attach_id"] = getattr(run, "_attach_id", None)
        state.update(_experiment=None, _owns_run=False, _checkpoint_callbacks={})
        return state


def wait_until_closed(internal_log: str, timeout: float = CLOSE_TIMEOUT) -> bool:
    """Wait until W&B's service has closed a finished run's files; ``False`` if it took over ``timeout`` s.

    ``run.finish()`` returns once the exit record is handled, but the service writes the run's
    ``run-<id>.wandb`` file through a buffer it flushes when it closes the run's stream, a moment
    later. Its internal log says when that happened.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(internal_log, encoding="utf-8", errors="replace") as handle:
                if _STREAM_CLOSED in handle.read():
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def _run_dir(save_dir: str | os.PathLike[str] | None, dir: str | os.PathLike[str] | None) -> str | None:
    """``dir`` when ``save_dir`` is left at ``"."`` (Lightning ignores it then), ``WANDB_DIR`` when both are."""
    chosen = None if save_dir is None else os.fspath(save_dir)
    if chosen in (None, "."):
        if dir is not None:
            return os.fspath(dir)
        if os.environ.get("WANDB_DIR"):
            return os.environ["WANDB_DIR"]
    return chosen


def _value(key: str, value: Any) -> Any:
    """A metric as a number, or a W&B data type (``wandb.Image``, a list of them...) as it is."""
    if wandb_media.is_wandb_value(value):
        return value
    if isinstance(value, Mapping):
        return {str(sub): _value(f"{key}/{sub}", item) for sub, item in value.items()}
    return to_number(key, value)
