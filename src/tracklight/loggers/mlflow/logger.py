"""MLFlowLogger: Lightning's arguments and semantics, with every request sent in the background.

What reaches MLflow goes through :mod:`tracklight.delivery`: the training thread queues values and
returns; a worker batches them to MLflow's limits, retries while the server is away, keeps them in a
spill file when it stays away, and sends them when it returns. MLflow's own rules (which metric keys it
takes, how long a value may be, how a run ends) live here and in ``tracklight.loggers.mlflow.sink``.
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from tracklight._errors import MissingDependencyError, TracklightWarning
from tracklight._imports import is_available
from tracklight._metrics import check_step, to_number
from tracklight._rank import global_rank, rank_zero_only
from tracklight.loggers._checkpoints import check_log_model, logs_every_save
from tracklight.loggers._remote_resume import ResumeState
from tracklight.loggers._starting import start_lock
from tracklight.loggers.logger import rank_zero_experiment
from tracklight.loggers.mlflow.backends import mlflow_module
from tracklight.loggers.mlflow.keys import KeyMap, mlflow_key
from tracklight.loggers.mlflow.media import MlflowMediaLogger
from tracklight.loggers.mlflow.store import resolve, use_as_default
from tracklight.params import flatten, sanitize, warn_conversions

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from tracklight.delivery import Delivery, DeliveryReport
    from tracklight.loggers.mlflow.artifacts import ArtifactStager
    from tracklight.loggers.mlflow.sink import MlflowSink

__all__ = ["MLFlowLogger", "mlflow_key"]

LOCAL_FILE_URI_PREFIX = "file:"

#: Seconds the first look at ``run_id``/``version``/``name`` (Lightning reads them at setup) waits, in all, for a
#: tracking *server* to create the run, so that it takes at most 2 s (MLflow is imported when the logger is made);
#: after that the run is created in the background.
RUN_WAIT = 1.8


class MLFlowLogger(MlflowMediaLogger):
    """Log to `MLflow <https://mlflow.org>`_ without ever making training wait on the tracking server.

    Takes Lightning's ``MLFlowLogger`` arguments with the same meaning. ``experiment`` is an
    ``mlflow.tracking.MlflowClient``; ``name`` is the experiment id and ``version`` the run id.
    Every value is queued and sent by a background worker in batches (see :mod:`tracklight.delivery`);
    when the server is away values are kept on disk and sent when it returns. ``finalize`` waits up to
    ``delivery_timeout`` seconds for the rest and then reports what is kept and the command that sends it.

    Without a tracking URI (argument or ``MLFLOW_TRACKING_URI``) runs go to an SQLite store,
    ``<save_dir>/mlflow.db``, with artifacts in ``<save_dir>/artifacts``: ``mlflow ui --backend-store-uri
    sqlite:///<save_dir>/mlflow.db`` shows them.

    Args:
        experiment_name: The experiment to log to (created when missing).
        run_name: The new run's name (the ``mlflow.runName`` tag).
        tracking_uri: ``http(s)://`` server, ``sqlite:///`` file, ``file:`` store or ``databricks``. Defaults to
            ``MLFLOW_TRACKING_URI``, else the SQLite store under ``save_dir``.
        tags: Tags of the new run.
        save_dir: Local directory: the embedded store when there is no tracking URI, and always the place
            for the spill file (``tracklight-spill/``) and files waiting to be uploaded (``tracklight-staging/``).
        log_model: Upload checkpoints that ``ModelCheckpoint`` saves as run artifacts, as they are saved:
            ``True`` the best and the last ones, ``"all"`` every one; ``False`` none.
        prefix: Put at the start of every metric key, joined with ``-``.
        artifact_location: Artifact location of a new experiment. With a local ``sqlite:///`` store it
            defaults to ``artifacts/`` next to the database file.
        run_id: Resume this run: values are appended to it.
        synchronous: ``True`` makes every logging call wait until its values are delivered (at most
            ``delivery_timeout`` seconds), like Lightning's logger; the default sends in the background.
        delivery_timeout: Seconds ``finalize`` (and a synchronous call) waits for delivery.
        continue_run: ``load_state_dict`` (a resumed checkpoint) continues the run of the state it is given;
            ``False`` ignores it and starts a new run, as Lightning's logger does.

    Example:
        >>> import tempfile
        >>> from tracklight.loggers.mlflow import MLFlowLogger
        >>> logger = MLFlowLogger(experiment_name="demo", save_dir=tempfile.mkdtemp())
        >>> logger.log_hyperparams({"lr": 0.1})
        >>> logger.log_metrics({"loss": 0.5}, step=1)
        >>> logger.finalize("success")
        >>> logger.experiment.get_run(logger.run_id).info.status
        'FINISHED'
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        experiment_name: str = "lightning_logs",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, Any] | None = None,
        save_dir: str | None = "./mlruns",
        log_model: Literal[True, False, "all"] = False,
        prefix: str = "",
        artifact_location: str | None = None,
        run_id: str | None = None,
        synchronous: bool | None = None,
        *,
        delivery_timeout: float = 60.0,
        continue_run: bool = True,
    ) -> None:
        if not is_available("mlflow"):
            raise MissingDependencyError(
                "MLFlowLogger needs the 'mlflow' package. Install it with: pip install 'tracklight[mlflow]'"
            )
        check_log_model(log_model)
        if global_rank() == 0:
            # As Lightning's logger does, here rather than inside the first wait for the run: importing MLflow takes
            # seconds, which would leave a tracking server almost none of RUN_WAIT.
            mlflow_module("tracking")
        self._save_dir = save_dir
        self._local_dir = os.path.abspath(os.path.expanduser(save_dir or "./mlruns"))
        tracking_uri, self._embedded, artifact_location = resolve(tracking_uri, self._local_dir, artifact_location)
        self._experiment_name = experiment_name
        self._tracking_uri = tracking_uri
        self._run_name = run_name
        self._run_id = run_id
        self.tags = dict(tags) if tags else None
        self._log_model = log_model
        self._prefix = prefix
        self._artifact_location = artifact_location
        self._synchronous = bool(synchronous)
        self._synchronous_argument = synchronous  # passed on to MlflowClient.log_batch when given, as Lightning does
        self._delivery_timeout = float(delivery_timeout)
        self._local_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._metric_keys = KeyMap("metric")
        self._param_keys = KeyMap("hyperparameter")
        self._delivery: Delivery | None = None
        self._sink: MlflowSink | None = None
        self._client: MlflowClient | None = None
        self._artifacts: ArtifactStager | None = None
        self._waited_for_run = False
        self._checkpoint_callback: Any = None
        self._said: set[str] = set()
        self._report: DeliveryReport | None = None
        self._last_step: int | None = None
        self._resume = ResumeState(type(self).__name__, continue_run)

    # ---- what Lightning reads -----------------------------------------------------------------------

    @property
    @rank_zero_experiment
    def experiment(self) -> MlflowClient:
        """The ``mlflow.tracking.MlflowClient`` of this logger's tracking URI; the run is created in the background.

        Example::

            self.logger.experiment.log_dict(self.logger.run_id, {"a": 1}, "config.json")
        """
        delivery = self._started()
        if delivery.inline:  # a stubbed MLflow: the run is made now, as Lightning's logger makes it here
            delivery.wait_open(0)
        use_as_default(self._tracking_uri)  # as Lightning does here: the user's mlflow.* calls reach this store
        if self._client is None:
            self._client = mlflow_module("tracking").MlflowClient(self._tracking_uri)
        return self._client

    @property
    def run_id(self) -> str | None:
        """The run id. The first time it is needed it waits (at most ``delivery_timeout``) for the run to be
        created; while the server cannot be reached it is ``None``."""
        if global_rank() > 0:
            return self._run_id
        return self._wait_for_run().run_id

    @property
    def experiment_id(self) -> str | None:
        """The experiment id (``None`` while the server cannot be reached)."""
        if global_rank() > 0:
            return None
        return self._wait_for_run().experiment_id

    @property
    def name(self) -> str | None:
        """The experiment id, as Lightning's MLFlowLogger names it; the experiment's name while the tracking
        server cannot be reached (so Lightning's checkpoint directory does not become ``None/...``)."""
        if global_rank() > 0:
            return None
        return self.experiment_id or self._experiment_name

    @property
    def version(self) -> str | None:
        """The run id; ``local-<time>-<pid>-<random>`` while the run cannot be created (server unreachable), so
        that runs started then still get checkpoint directories of their own."""
        if global_rank() > 0:
            return self._run_id
        return self.run_id or f"local-{self._local_id}"

    @property
    def save_dir(self) -> str | None:
        """The local directory runs are stored in: ``save_dir`` for the embedded store, the path of a ``file:``
        tracking URI, else ``None`` (Lightning then puts checkpoints under ``default_root_dir``)."""
        if self._embedded:
            return self._save_dir
        if self._tracking_uri.startswith(LOCAL_FILE_URI_PREFIX):
            return self._tracking_uri[len(LOCAL_FILE_URI_PREFIX) :]
        return None

    @property
    def delivery_report(self) -> DeliveryReport | None:
        """What the last ``finalize`` (or :meth:`flush`) delivered and kept."""
        return self._report

    # ---- logging --------------------------------------------------------------------------------------

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any) -> None:
        """Log hyperparameters, flattened with ``/``. Values are kept up to MLflow's limit (6000 characters);
        logging a key again with the same value does nothing, with another value keeps the first and warns."""
        clean, notes = sanitize(params)
        warn_conversions(notes, type(self).__name__)
        items = [
            {"kind": "param", "key": self._param_keys(key), "value": str(value)}
            for key, value in flatten(clean).items()
        ]
        self._put(items)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        check_step(metrics, step)  # MLflow's step is an int64: the server would refuse a larger one, later
        timestamp = int(time.time() * 1000)
        step = int(step or 0)
        if self._last_step is None or step > self._last_step:
            self._last_step = step
        prefix = f"{self._prefix}{self.LOGGER_JOIN_CHAR}" if self._prefix else ""
        items = []
        for key, value in metrics.items():
            number = float(to_number(key, value))
            items.append(
                {
                    "kind": "metric",
                    "key": self._metric_keys(prefix + key),
                    "value": number,
                    "step": step,
                    "timestamp": timestamp,
                }
            )
        self._put(items)

    @rank_zero_only
    def save(self) -> None:
        """Lightning calls this after every ``log_metrics``: the values are queued already, so it does not wait
        (except with ``synchronous=True``)."""
        if self._synchronous and self._delivery is not None:
            self._report = self._delivery.drain(self._delivery_timeout)

    def flush(self, timeout: float | None = None) -> DeliveryReport | None:
        """Wait until everything logged so far is delivered (at most ``timeout`` seconds, by default
        ``delivery_timeout``) and return the report; ``None`` when nothing was logged."""
        if self._delivery is None:
            return None
        self._report = self._delivery.drain(self._delivery_timeout if timeout is None else timeout)
        return self._report

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """Upload the checkpoints ``log_model=True`` waits for, end the run (``success`` -> FINISHED, ``failed`` ->
        FAILED, ``aborted`` -> KILLED) and wait up to ``delivery_timeout`` for delivery (a few seconds when the
        tracking server was never reached); what is left is kept on disk and reported with the command that
        sends it. The worker thread stops; logging again (``trainer.test`` after ``fit``) starts it again, on the
        same run."""
        from tracklight.loggers.mlflow.sink import terminal_status

        if self._delivery is None:
            return
        if self._checkpoint_callback is not None:
            try:
                self._log_checkpoints(self._checkpoint_callback)
            except ReferenceError:  # Lightning passes a weak proxy; its ModelCheckpoint is gone
                self._checkpoint_callback = None
        self._delivery.put({"kind": "status", "status": terminal_status(status), "end_time": int(time.time() * 1000)})
        self._report = report = self._delivery.close(self._delivery_timeout)
        if self._artifacts is not None:
            self._artifacts.tidy()  # "created only when needed": no empty staging folder stays behind
        if not report.complete:
            warnings.warn(f"MLFlowLogger: {report}", TracklightWarning, stacklevel=3)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """As Lightning's logger: ``log_model="all"`` (or ``True`` with ``save_top_k=-1``) uploads the new
        checkpoints now, during training; ``True`` uploads the last, best and top-k ones once, at ``finalize``.
        Checkpoints are linked or copied aside first, so ``ModelCheckpoint`` may delete or replace them."""
        if logs_every_save(self._log_model, checkpoint_callback):
            self._log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callback = checkpoint_callback

    # ---- resume -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The run to continue after a restart: ``run_id``, ``experiment_id`` (``None`` while the run is not created
        yet), the logger's local id (which finds the run, and the spill file, when it was not) and ``last_step``.
        Plain data; never waits for the server."""
        from tracklight.loggers.mlflow.resume import state_of

        sink = self._sink
        return state_of(
            type(self).__name__,
            run_id=sink.run_id if sink is not None and sink.run_id else self._run_id,
            experiment_id=sink.experiment_id if sink is not None else None,
            experiment_name=self._experiment_name,
            tracking_uri=self._tracking_uri,
            local_id=self._local_id,
            last_step=self._last_step,
        )

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the run of ``state`` (from :meth:`state_dict`) when the run starts: values are appended to it,
        and those the earlier process logged after ``state["last_step"]`` are superseded by this process's (the run
        gets the tag ``tracklight.resumed.<time>``, which ``tracklight`` honours; MLflow's UI still shows both).
        What the earlier process kept in its spill file is sent first. An explicit ``run_id`` wins; a state
        that cannot be used gives one warning and a new run."""
        from tracklight.loggers.mlflow.resume import check

        self._resume.load(state, self._delivery is not None, ("run_id", "local_id"))
        check(self._resume, self._run_id, self._tracking_uri)

    # ---- internals ----------------------------------------------------------------------------------

    def _started(self) -> Delivery:
        delivery = self._delivery
        if delivery is not None:  # the common case, without the lock
            return delivery
        with start_lock(self):  # threads making the first call at once: one delivery, so one run
            return self._start()

    def _start(self) -> Delivery:
        if self._delivery is None:
            from tracklight.delivery import Delivery
            from tracklight.loggers.mlflow.backends import client_is_mocked
            from tracklight.loggers.mlflow.resume import continued
            from tracklight.loggers.mlflow.sink import MlflowSink

            resumed = continued(self._resume, self._run_id)
            if resumed is not None:
                self._run_id = self._run_id or resumed.run_id
                self._local_id = resumed.local_id
            tags = {str(key): str(value) for key, value in (self.tags or {}).items()}
            if self._run_name is not None and self._run_id is None:
                if "mlflow.runName" in tags:
                    self._say_once(
                        "runName", f"MLFlowLogger: run_name={self._run_name!r} replaces the mlflow.runName tag."
                    )
                tags["mlflow.runName"] = self._run_name
            sink = MlflowSink(
                self._tracking_uri,
                self._experiment_name,
                run_id=self._run_id,
                run_name=self._run_name,
                tags=tags,
                artifact_location=self._artifact_location,
                resume=self._run_id is not None,
                local_id=self._local_id,
                find_existing=resumed is not None and self._run_id is None,
                before_open=use_as_default,
                resume_state=self._resume if resumed is not None else None,
                synchronous=self._synchronous_argument,
            )
            spill = os.path.join(self._local_dir, "tracklight-spill", f"mlflow-{self._local_id}.jsonl")
            if resumed is not None:
                resumed.announce_spill(spill, sink.describe())
            self._sink = sink
            self._delivery = Delivery(sink, spill, inline=client_is_mocked())
            if resumed is not None:
                self._delivery.put(resumed.tag())
        return self._delivery

    def _wait_for_run(self) -> MlflowSink:
        delivery = self._started()
        sink = self._sink
        assert sink is not None
        if not self._waited_for_run:
            with start_lock(self):  # the others wait for the first one's wait, then see the run it waited for
                self._wait_once(delivery, sink)
        if sink.run_id is not None:
            self._run_id = sink.run_id
        return sink

    def _wait_once(self, delivery: Delivery, sink: MlflowSink) -> None:
        if not self._waited_for_run:
            self._waited_for_run = True
            # A tracking server gets RUN_WAIT seconds in all to create the run, so one that accepts connections and
            # never answers holds nobody. A local store gets its time (it may be migrating its tables).
            remote = self._tracking_uri.partition(":")[0].lower() in ("http", "https")
            delivery.wait_open(min(RUN_WAIT, self._delivery_timeout) if remote else self._delivery_timeout)

    def _put(self, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        delivery = self._started()
        delivery.put_many(items)
        if self._synchronous:
            self._report = delivery.drain(self._delivery_timeout)

    def _say_once(self, topic: str, message: str) -> None:
        if topic not in self._said:
            self._said.add(topic)
            warnings.warn(message, TracklightWarning, stacklevel=5)

    def __getstate__(self) -> dict[str, Any]:
        # ddp_spawn pickles the logger before training: the run is created here, so that the copy that
        # logs appends to it rather than starting another (when the server cannot be reached, it does).
        if global_rank() == 0:
            _ = self.run_id
        state = dict(self.__dict__)
        state.update(_delivery=None, _sink=None, _client=None, _waited_for_run=False, _checkpoint_callback=None)
        return state
