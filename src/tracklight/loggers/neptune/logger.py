"""NeptuneLogger: Neptune runs through the ``neptune`` 1.x client, with the arguments Lightning's last version had."""

from __future__ import annotations

import math
import os
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracklight import __version__
from tracklight._errors import MissingDependencyError, TracklightError, warn
from tracklight._imports import is_available, is_instance_by_name, require
from tracklight._metrics import check_step, to_number
from tracklight._rank import global_rank, rank_zero_only
from tracklight.loggers import _checkpoints as checkpoints
from tracklight.loggers._remote_resume import ResumeState, next_last_step
from tracklight.loggers._sdk_delivery import DEFAULT_TIMEOUT, REMOVE, SdkDelivery
from tracklight.loggers._starting import starts_once
from tracklight.loggers.logger import rank_zero_experiment
from tracklight.loggers.neptune import values as neptune_values
from tracklight.loggers.neptune.media import NeptuneMediaLogger
from tracklight.loggers.neptune.resume import check, mark, with_id
from tracklight.loggers.neptune.sink import NeptuneSink, root_of
from tracklight.params import flatten, sanitize, warn_conversions

if TYPE_CHECKING:
    from tracklight.delivery import DeliveryReport

__all__ = ["NeptuneArgumentError", "NeptuneLogger"]

_RUN_TYPES = ("neptune.metadata_containers.run.Run", "neptune.handler.Handler")
_INTEGRATION_KEY = "source_code/integrations/tracklight"
#: Modes whose runs live on the Neptune server, so a stopped run can be continued by its id.
_SERVER_MODES = ("async", "sync")


class NeptuneArgumentError(TracklightError, ValueError):
    """NeptuneLogger got arguments that do not go together (Lightning raised ``ValueError`` for these too)."""


class NeptuneLogger(NeptuneMediaLogger):
    r"""Log to a `Neptune <https://neptune.ai>`_ run with the ``neptune`` client (1.x).

    Takes the arguments of Lightning's last ``NeptuneLogger`` (Lightning dropped the class in 2.6.4).
    Metrics go under ``prefix`` (``training/train_loss``) with steps that always increase within a
    series, as Neptune requires; hyperparameters under ``<prefix>/hyperparams``; checkpoints under
    ``<prefix>/model/checkpoints``. The connection mode is ``mode=`` or ``NEPTUNE_MODE``: ``"async"``
    (default), ``"sync"``, ``"offline"`` (written under ``.neptune/``, sent later with ``neptune sync``)
    or ``"debug"`` (kept in memory).

    Values are handed to the run by a background worker, in the order they were logged; ``run`` and
    ``experiment`` first wait until what was queued has reached it. ``finalize`` records the status and
    waits for the queue, and leaves the run open, as Lightning's logger did: ``trainer.test`` after
    ``trainer.fit`` logs to the same run, which the client stops when the process exits. To stop it
    earlier, call ``logger.run.stop()``; logging afterwards continues it by its id (async and sync
    modes) or, offline, starts a new run (offline runs cannot be reopened).

    Args:
        api_key: Neptune API token; defaults to ``NEPTUNE_API_TOKEN``.
        project: ``"workspace-name/project-name"``; defaults to ``NEPTUNE_PROJECT``.
        name: The run's name in the Neptune app.
        run: A run (``neptune.init_run(...)``) or a namespace of one (``run["finetuning"]``) to log into
            instead of starting a new run.
        log_model_checkpoints: Upload ``ModelCheckpoint``'s files as they are saved, and remove those it deleted.
        prefix: The namespace everything goes under (``""`` for the root of the run).
        delivery_timeout: Seconds ``finalize`` (and ``run``) wait for the queue to reach the run.
        continue_run: ``load_state_dict`` (a resumed checkpoint) continues the run of the state it is given;
            ``False`` ignores it and starts a new run.
        \**neptune_run_kwargs: Passed to ``neptune.init_run``: ``mode``, ``tags``, ``description``,
            ``with_id`` (continue a run), ``capture_stdout``...

    Example:
        >>> from tracklight.loggers.neptune import NeptuneLogger
        >>> logger = NeptuneLogger(name="experiment-1", mode="debug")
        >>> logger.log_metrics({"loss": 0.5}, step=10)
        >>> logger.run["training/loss"].fetch_last()
        0.5
        >>> logger.finalize("success")
        >>> logger.run.stop()  # or at exit
        [neptune] [info   ] Shutting down background jobs, please wait a moment...
        [neptune] [info   ] Done!
    """

    LOGGER_JOIN_CHAR = "/"
    PARAMETERS_KEY = "hyperparams"
    ARTIFACTS_KEY = "artifacts"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        project: str | None = None,
        name: str | None = None,
        run: Any = None,
        log_model_checkpoints: bool | None = True,
        prefix: str = "training",
        delivery_timeout: float = DEFAULT_TIMEOUT,
        continue_run: bool = True,
        **neptune_run_kwargs: Any,
    ) -> None:
        if not is_available("neptune"):
            raise MissingDependencyError(
                "NeptuneLogger needs the 'neptune' client (1.x), which is not installed. "
                "Install it with: pip install 'tracklight[neptune]'"
            )
        if run is not None:
            if not is_instance_by_name(run, *_RUN_TYPES):
                raise NeptuneArgumentError(
                    f"NeptuneLogger(run=...) takes a neptune.Run or a namespace of one (run['name']), "
                    f"got {type(run).__name__}."
                )
            given = [key for key, value in (("api_key", api_key), ("project", project), ("name", name)) if value]
            if given or neptune_run_kwargs:
                raise NeptuneArgumentError(
                    f"NeptuneLogger got run=... together with {', '.join(given + sorted(neptune_run_kwargs))}, "
                    "which only apply when the logger starts the run. Fix: pass them to neptune.init_run(...) "
                    "instead, or leave run out."
                )
        self._api_key = api_key
        self._project = project
        self._run_name = name
        self._log_model_checkpoints = bool(log_model_checkpoints)
        self._prefix = prefix
        self._neptune_run_kwargs = neptune_run_kwargs
        self._run_instance = run
        self._owns_run = False
        self._run_short_id: str | None = None
        self._stopped_id: str | None = None  # the server id of a run that was stopped, to continue it
        self._reopened = False
        self._delivery_timeout = float(delivery_timeout)
        self._remote: SdkDelivery | None = None
        self._uploaded: dict[str, float] = {}  # checkpoint name -> modification time of the file staged for it
        self._file_labels: dict[str, int] = {}
        self._said: set[str] = set()
        self._resume = ResumeState(type(self).__name__, continue_run)
        self._continued_id: str | None = None  # the run continued by its id (load_state_dict)
        self._last_step: int | None = None
        if run is not None:
            self._identify(run)
            if global_rank() == 0:
                root_of(run)[_INTEGRATION_KEY] = __version__

    # ---- the run -----------------------------------------------------------------------------------------

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The Neptune run (or the namespace passed as ``run``), as in Lightning: ``logger.experiment["x"] = 1``."""
        return self.run

    @property
    @rank_zero_experiment
    def run(self) -> Any:
        """The Neptune run, started on first use on rank zero; a no-op stand-in on other ranks.

        What was logged before is handed to it first, so calls made on it come after those values.
        """
        run = self._live()
        assert self._remote is not None
        self._remote.wait()
        return run

    @starts_once  # threads making the first call at once: one run
    def _live(self) -> Any:
        """The run, started (or continued) when needed; what is queued may not have reached it yet."""
        run = self._run_instance
        if run is not None and not (self._owns_run and root_of(run).get_state() == "stopped"):
            if self._remote is not None:
                return run
        else:
            if run is not None:  # stopped by the user (run.stop()): continue it by its id where Neptune can
                self._stopped_id = self._run_short_id if self.mode in _SERVER_MODES else None
                self._reopened = True
            run = self._run_instance = self._start()
        if self._remote is None:
            project = self._project or os.environ.get("NEPTUNE_PROJECT") or "WORKSPACE/PROJECT"
            hint = f"neptune sync --path {os.path.dirname(self.save_dir)} --project {project}"
            hint = hint if self.mode == "offline" else ""
            directory = os.path.join(self.save_dir, "tracklight")
            self._remote = SdkDelivery(type(self).__name__, NeptuneSink(), directory, self._delivery_timeout, hint)
        sink = self._remote.sink
        assert isinstance(sink, NeptuneSink)
        resumed = not self._owns_run or "with_id" in self._neptune_run_kwargs or self._stopped_id is not None
        resumed = resumed or self._continued_id is not None
        sink.attach(run, resumed, same_run=sink.run is None or self._stopped_id is not None)
        self._remote.attached(run)
        return run

    def _start(self) -> Any:
        neptune = require("neptune", "neptune")
        kwargs = self._init_kwargs()
        continued, self._resume.state = self._resume.state, None  # once: a run stopped later is continued as usual
        if continued is not None:
            self._continued_id = with_id(continued, self.mode)
            if self._continued_id is not None:
                kwargs.pop("custom_run_id", None)
                kwargs["with_id"] = self._continued_id
        if self._stopped_id is not None:
            kwargs.pop("custom_run_id", None)  # with_id and custom_run_id cannot go together
            kwargs["with_id"] = self._stopped_id
        elif self._reopened:
            self._say(
                "reopen",
                f"NeptuneLogger: the {self.mode} run was stopped, and {self.mode} runs cannot be reopened, so what "
                "is logged now goes to a new run. To keep one run, stop it only when you are done logging.",
            )
        run = neptune.init_run(**kwargs)
        self._owns_run = True
        self._identify(run)
        run[_INTEGRATION_KEY] = __version__
        if continued is not None:
            mark(run, continued)
        return run

    def _init_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self._neptune_run_kwargs)
        if self._project is not None:
            kwargs["project"] = self._project
        if self._api_key is not None:
            kwargs["api_token"] = self._api_key
        if self._run_name is not None:
            kwargs["name"] = self._run_name
        return kwargs

    def _identify(self, run: Any) -> None:
        root = root_of(run)
        mode = _mode_of(root) or self.mode
        if mode in _SERVER_MODES:
            self._run_short_id = str(getattr(root, "_sys_id", None) or root["sys/id"].fetch())
        else:  # offline and debug runs have no server id; their local id is unique
            self._run_short_id = str(getattr(root, "_id", None) or "OFFLINE")
        if self._run_name is None and mode != "offline" and root.exists("sys/name"):
            self._run_name = str(root["sys/name"].fetch()) or None

    # ---- identity ----------------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """The connection mode: the run's, else ``mode=``, else ``NEPTUNE_MODE``, else ``"async"``."""
        run = self._run_instance
        mode = _mode_of(root_of(run)) if run is not None else None
        return str(mode or self._neptune_run_kwargs.get("mode") or os.environ.get("NEPTUNE_MODE") or "async")

    @property
    def name(self) -> str | None:
        """The run's name (``name=``, or the name of the run passed in)."""
        return self._run_name

    @property
    def version(self) -> str | None:
        """The run's id (``PROJ-123``; offline and debug runs have a local id); rank zero starts the run to learn it."""
        if self._run_short_id is None and self._run_instance is None and global_rank() == 0:
            self._live()
        return self._run_short_id

    @property
    def save_dir(self) -> str:
        """Where the client keeps runs: ``NEPTUNE_DATA_DIRECTORY``, else ``.neptune`` in the working directory."""
        return os.path.abspath(os.environ.get("NEPTUNE_DATA_DIRECTORY") or ".neptune")

    # ---- metrics and hyperparameters ---------------------------------------------------------------------

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Append each value to the series ``<prefix>/<key>``, at a step that increases within the series."""
        # Every value is checked before any is queued: a bad one must not leave the call half-logged.
        check_step(metrics, step)
        nested = any(isinstance(value, Mapping) for value in metrics.values())
        prefix = f"{self._prefix}{self.LOGGER_JOIN_CHAR}" if self._prefix else ""
        flat = flatten(metrics) if nested else metrics
        values = [(key, prefix + key, to_number(key, value)) for key, value in flat.items()]
        self._last_step = next_last_step(self._last_step, step)
        self._put({"kind": "row", "op": "metrics", "values": values, "step": step})

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any) -> None:
        """Store hyperparameters under ``<prefix>/hyperparams``, nested dicts as namespaces; values Neptune has
        no type for (lists, ``None``...) are stored as their text."""
        clean, notes = sanitize(params)
        warn_conversions(notes, type(self).__name__)
        converted = neptune_values.hyperparams(clean)
        if converted:
            path = self._path(self.PARAMETERS_KEY)
            self._put({"kind": "hyperparameter", "op": "assign", "path": path, "value": converted})

    @rank_zero_only
    def log_model_summary(self, model: Any, max_depth: int = -1) -> None:
        """Upload Lightning's ``ModelSummary`` of ``model`` as ``<prefix>/model/summary`` (a text file)."""
        summary = require("lightning.pytorch.utilities.model_summary", "lightning").ModelSummary
        text = str(summary(model=model, max_depth=max_depth))
        self._put(
            {"kind": "summary", "op": "file", "path": self._path("model/summary"), "content": text, "extension": "txt"}
        )

    def _put(self, item: dict[str, Any], weight: int = 1) -> None:
        self._live()
        self._remote.put(item, weight)  # type: ignore[union-attr]  # _live() made it

    # ---- checkpoints -------------------------------------------------------------------------------------

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Upload the checkpoints saved since the last call and delete from the run those the callback deleted.

        The files go under ``<prefix>/model/checkpoints/<name>``; the best path and score under ``<prefix>/model``.
        Each new file is set aside first (a hard link), so Lightning may replace or delete it before the upload.
        """
        if not self._log_model_checkpoints:
            return
        self._live()
        assert self._remote is not None
        kept = neptune_values.checkpoint_names(checkpoint_callback)
        uploads, staged = [], []
        for name, path in kept.items():
            mtime = os.stat(path).st_mtime
            if self._uploaded.get(name, -1.0) >= mtime:
                continue
            copy = checkpoints.stage(path, os.path.join(self._remote.directory, "staging"))
            uploads.append((name, copy))
            staged.append(os.path.dirname(copy))
            self._uploaded[name] = mtime
        for name in set(self._uploaded) - set(kept):
            del self._uploaded[name]
        atoms: dict[str, Any] = {}
        best = getattr(checkpoint_callback, "best_model_path", "")
        if best:
            atoms[self._path("model/best_model_path")] = best
        score = getattr(checkpoint_callback, "best_model_score", None)
        if score is not None:
            score = float(score.item() if hasattr(score, "item") else score)
            if math.isfinite(score):
                atoms[self._path("model/best_model_score")] = score
        item = {"kind": "checkpoint", "op": "checkpoints", "namespace": self._path("model/checkpoints")}
        self._remote.put({**item, "uploads": uploads, "kept": set(kept), "atoms": atoms, REMOVE: staged})

    # ---- lifecycle ---------------------------------------------------------------------------------------

    @property
    def delivery_report(self) -> DeliveryReport | None:
        """What the last ``finalize`` handed to the run, and what it could not."""
        return self._remote.report if self._remote is not None else None

    @rank_zero_only
    def save(self) -> None:
        """Nothing to do: values are queued, and the client writes to disk and sends in the background."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Record ``status`` under ``<prefix>/status``, then wait (at most ``delivery_timeout`` seconds) until
        everything queued reached the run and the client has it on disk. The run stays open: the client stops
        it at exit, or call ``logger.run.stop()``."""
        if self._run_instance is None:
            return
        if status:
            self._put({"kind": "status", "op": "assign", "path": self._path("status"), "value": status})
        self._put({"kind": "flush", "op": "call", "call": lambda run: root_of(run).wait(disk_only=True)})
        self._remote.finish()  # type: ignore[union-attr]  # _put() made it

    # ---- resume -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The run to continue after a restart: ``run_id`` (``PROJ-123``; offline, the run's local id), ``mode``,
        ``project`` and ``last_step``. Plain data; never waits for Neptune."""
        return {
            "logger": type(self).__name__,
            "run_id": self._run_short_id,
            "mode": self.mode,
            "project": self._project or os.environ.get("NEPTUNE_PROJECT"),
            "last_step": self._last_step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the run of ``state`` (from :meth:`state_dict`) when it starts: by its id in ``async``/``sync``
        mode; offline (where Neptune cannot reopen a run) as a new offline run that names it, which ``tracklight``
        reads as one run with it. Values the earlier process logged after ``state["last_step"]`` are superseded in
        ``tracklight``'s readers; Neptune keeps them (see the docs' resume table). A ``run``, ``with_id`` or
        ``custom_run_id`` given to the constructor wins; a state that cannot be used gives one warning."""
        self._resume.load(state, self._run_instance is not None, ("run_id",))
        check(self._resume, self.mode, self._neptune_run_kwargs, self._run_instance is not None)

    def __getstate__(self) -> dict[str, Any]:
        # A run holds threads and files; a copy in another process continues it by its id where Neptune can.
        state = dict(self.__dict__)
        if self._run_instance is not None and self._owns_run and self.mode in _SERVER_MODES:
            state["_stopped_id"] = self._run_short_id
        state.update(_run_instance=None, _owns_run=False, _remote=None)
        return state

    # ---- internals ---------------------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}" if self._prefix else key

    def _say(self, topic: str, message: str) -> None:
        if topic not in self._said:
            self._said.add(topic)
            warn(message)


def _mode_of(root: Any) -> str | None:
    mode = getattr(getattr(root, "_mode", None), "value", None)
    return str(mode) if mode else None
