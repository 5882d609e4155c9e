"""WandbLogger: Weights & Biases runs, online or offline, with steps W&B never drops and checkpoints as artifacts."""

from __future__ import annotations

import contextlib
import os
import secrets
import string
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from tracklight._errors import MissingDependencyError, TracklightError, warn
from tracklight._imports import is_available, require
from tracklight._metrics import check_step, to_number
from tracklight._rank import global_rank, rank_zero_only
from tracklight.loggers import _checkpoints as checkpoints
from tracklight.loggers._remote_resume import ResumeState, next_last_step
from tracklight.loggers._sdk_delivery import DEFAULT_TIMEOUT, REMOVE, SdkDelivery
from tracklight.loggers._starting import starts_once
from tracklight.loggers.logger import rank_zero_experiment
from tracklight.loggers.wandb import media as wandb_media
from tracklight.loggers.wandb.artifacts import OFFLINE_MODES, WandbArtifactLogger
from tracklight.loggers.wandb.resume import check, init_run, wandb_step
from tracklight.loggers.wandb.sink import WandbSink, run_folder, wait_until_closed
from tracklight.params import nan_as_text, sanitize, warn_conversions

if TYPE_CHECKING:
    from tracklight.delivery import DeliveryReport

__all__ = ["WandbLogger", "wait_until_closed"]

_ID_ALPHABET = string.ascii_lowercase + string.digits


class WandbLogger(WandbArtifactLogger):
    r"""Log to a `Weights & Biases <https://wandb.ai>`_ run, online or offline.

    Takes Lightning's ``WandbLogger`` arguments and keeps its helpers (``log_image``, ``log_text``,
    ``log_table``, ``log_audio``, ``log_video``, ``watch``, ``use_artifact``, ``download_artifact``).
    ``experiment`` is the ``wandb`` run, created on first use (or the active ``wandb.run``, reused).

    Rows, hyperparameters, media and checkpoints are handed to the run by a background worker, in the
    order they were logged: the training thread only converts and queues them. ``experiment`` first
    waits until what was queued has reached the run, so your own ``logger.experiment.log(...)`` calls
    come after the values logged before them.

    Where it differs from Lightning's:

    * Steps: every row is logged without W&B's ``step=``, so W&B's own step only grows and no value is
      dropped with "Steps must be monotonically increasing" (validation after training, test runs,
      gradient accumulation, resumed runs, your own ``experiment.log`` calls). The trainer step goes into
      the row as ``trainer/global_step``, which ``define_metric`` makes the x-axis of every metric.
    * Checkpoints: with ``offline=True`` they are recorded in the offline run and uploaded by ``wandb
      sync`` instead of raising; after a failed run the checkpoints on disk are logged too.
    * ``finalize`` waits (at most ``delivery_timeout`` seconds) until everything queued reached the run,
      and leaves the run open, as Lightning does: ``trainer.test`` after ``trainer.fit`` logs to the same
      run, which W&B finishes when the process exits. To end it earlier, call ``wandb.finish()`` (or
      ``logger.experiment.finish()``); logging afterwards resumes the same run id.
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
        delivery_timeout: Seconds ``finalize`` (and ``experiment``) wait for the queue to reach the run.
        continue_run: ``load_state_dict`` (a resumed checkpoint) continues the run of the state it is given,
            rewound to the state's step; ``False`` ignores it, as Lightning's logger does.
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
        *,
        delivery_timeout: float = DEFAULT_TIMEOUT,
        continue_run: bool = True,
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
        self._attach_id: str | None = None
        self._delivery_timeout = float(delivery_timeout)
        self._remote: SdkDelivery | None = None
        self._checkpoint_name = checkpoint_name
        self.add_file_policy = add_file_policy
        self._logged_model_time: dict[str, float] = {}
        self._checkpoint_callbacks: dict[int, Any] = {}
        self._checkpoint_failures = 0
        self._resume = ResumeState(type(self).__name__, continue_run)
        self._last_step: int | None = None
        self._rows_queued = 0

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

        What was logged before is handed to the run first, so calls made on it come after those values.

        Example:
            >>> logger.experiment.summary["best_accuracy"] = 0.93  # doctest: +SKIP
        """
        run = self._run()
        assert self._remote is not None
        self._remote.wait()
        return run

    @starts_once  # threads making the first call at once: one run
    def _run(self) -> Any:
        """The run, started (or resumed) when needed; what is queued may not have reached it yet."""
        run = self._experiment
        if run is not None and getattr(run, "_is_finished", False) is not True:  # `is`: a stubbed SDK says anything
            if self._remote is not None:
                return run
        else:
            if run is not None:
                # finished by wandb.finish() or the user: resume it rather than fail on the next log
                self._id = self._wandb_init["id"] = run.id
                self._project = self._wandb_init["project"] = getattr(run, "project", self._project)
            run = self._experiment = self._open_run()
        if self._remote is None:
            sync = f"wandb sync {run_folder(run)}" if self._is_offline() and run_folder(run) else ""
            folder = run_folder(run) or self._save_dir or "."
            self._remote = SdkDelivery(
                type(self).__name__, WandbSink(), os.path.join(folder, "tracklight"), self._delivery_timeout, sync
            )
        sink = self._remote.sink
        assert isinstance(sink, WandbSink)
        sink.run = run
        self._remote.attached(run)
        return run

    def _open_run(self) -> Any:
        wandb = require("wandb", "wandb")
        if wandb.run is not None and wandb.run.id == self._id:  # this logger's run (a copy's, or resumed)
            self._attach_id = None
            return wandb.run
        if self._attach_id is not None:  # a copy made by pickling: the original's run, if it is still there
            attach_id, self._attach_id = self._attach_id, None
            try:
                run = wandb._attach(attach_id)
            except Exception:  # the parent's run is gone: resume it by id instead
                run = None
            if run is not None:
                return run
        if wandb.run is not None:
            warn(
                "There is a wandb run already in progress and newly created instances of `WandbLogger` will reuse "
                "this run. If this is not desired, call `wandb.finish()` before instantiating `WandbLogger`."
            )
            return wandb.run
        arguments = self._init_arguments()
        if arguments.get("dir"):
            # W&B resolves a relative dir against the working directory it had when first set up, not today's.
            arguments["dir"] = os.path.abspath(os.path.expanduser(os.fspath(arguments["dir"])))
            os.makedirs(arguments["dir"], exist_ok=True)
        run = init_run(wandb, arguments, self._resume)
        self._id = run.id
        self._wandb_init["id"] = run.id  # a run finished by finalize is resumed, not replaced
        define_metric = getattr(run, "define_metric", None)  # a stubbed run may lack it: Lightning checks too
        if define_metric is not None and self._wandb_init.get("sync_tensorboard"):
            define_metric("*", step_metric="global_step")
        elif define_metric is not None:
            define_metric(self.STEP_METRIC)
            define_metric("*", step_metric=self.STEP_METRIC, step_sync=True)
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
            return getattr(getattr(run, "settings", None), "mode", None) in OFFLINE_MODES
        return self._init_arguments().get("mode") in OFFLINE_MODES

    # ---- metrics and hyperparameters ---------------------------------------------------------------------

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log one history row; ``step`` goes into the row as ``trainer/global_step``.

        Values are numbers (or one-element tensors), W&B data types such as ``wandb.Image``, or lists of them.
        """
        check_step(metrics, step)
        if self._prefix:
            row = {self._key(key): _value(key, value) for key, value in metrics.items()}
        else:
            row = {key: _value(key, value) for key, value in metrics.items()}
        self._log_row(row, step)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any) -> None:
        """Add hyperparameters to the run's config (nested dicts stay nested); values may change later."""
        clean, notes = sanitize(params)
        warn_conversions(notes, type(self).__name__)
        self._run()
        assert self._remote is not None
        self._remote.put({"kind": "hyperparameter", "config": nan_as_text(clean)})

    def _key(self, key: str) -> str:
        return f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}" if self._prefix else key

    def _log_row(self, row: dict[str, Any], step: int | None, weight: int = 1, remove: list[str] | None = None) -> None:
        if step is not None and not self._wandb_init.get("sync_tensorboard"):
            row[self.STEP_METRIC] = int(step)
        self._last_step = next_last_step(self._last_step, step)
        self._rows_queued += 1
        self._run()
        item: dict[str, Any] = {"kind": "row", "row": row}
        if remove:
            item[REMOVE] = remove
        self._remote.put(item, weight)  # type: ignore[union-attr]  # _run() made it

    def _log_media(
        self, key: str, value: Any, step: int | None, weight: int = 64, remove: list[str] | None = None
    ) -> None:
        self._log_row({self._key(key): value}, step, weight, remove)

    # ---- resume -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The run to continue after a restart: ``id``, ``project``, ``entity``, the trainer's ``last_step`` and W&B's
        own step of the last row (``wandb_step``). Plain data; never waits for W&B."""
        sink = self._remote.sink if self._remote is not None else None
        return {
            "logger": type(self).__name__,
            "id": self.version,
            "project": self._project,
            "entity": self._wandb_init.get("entity"),
            "last_step": self._last_step,
            "wandb_step": wandb_step(sink if isinstance(sink, WandbSink) else None, self._rows_queued),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the run of ``state`` (from :meth:`state_dict`) when the run starts, rewound to the state's step
        (``wandb.init(resume_from=...)``): the rows the earlier process logged after it are dropped, by W&B itself.
        An explicit ``id``/``version`` wins; a state that cannot be used gives one warning and a new run."""
        self._resume.load(state, self._experiment is not None, ("id",))
        check(self._resume, self._id, self._project)
        if self._resume.state is not None:
            self._id = self._wandb_init["id"] = self._resume.state["id"]

    # ---- lifecycle ---------------------------------------------------------------------------------------

    @property
    def delivery_report(self) -> DeliveryReport | None:
        """What the last ``finalize`` handed to the run, and what it could not."""
        return self._remote.report if self._remote is not None else None

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Log the checkpoints ``log_model=True`` left for the end, then wait (at most ``delivery_timeout``
        seconds) until everything queued has reached the run.

        The run stays open, as with Lightning's logger: a later ``trainer.test`` logs to it, and W&B finishes
        it when the process exits (or when you call ``wandb.finish()``). Checkpoints are logged whatever the
        status: the files on disk are real even when training failed.
        """
        for callback in list(self._checkpoint_callbacks.values()):
            with contextlib.suppress(ReferenceError):  # the callback (held through a weak proxy) is gone
                self._log_checkpoints(callback)
        self._checkpoint_callbacks.clear()
        if self._remote is not None:
            self._remote.finish()

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
            state["_wandb_init"].update(id=run.id, project=getattr(run, "project", self._project))  # a stub may lack it
            state["_attach_id"] = getattr(run, "_attach_id", None)
        state.update(_experiment=None, _remote=None, _checkpoint_callbacks={})
        return state


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
    if type(value) in (float, int, bool):  # the common case first: no W&B type check for plain numbers
        return to_number(key, value)
    if wandb_media.is_wandb_value(value):
        return value
    if isinstance(value, Mapping):
        return {str(sub): _value(f"{key}/{sub}", item) for sub, item in value.items()}
    return to_number(key, value)
