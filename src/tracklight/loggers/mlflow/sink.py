"""The MLflow sink of background delivery: creates or resumes the run, sends batches, uploads artifacts.

Runs on the delivery worker thread (and in ``python -m tracklight.delivery replay``), never on the
training thread. MLflow is imported here, the first time the worker needs it; requests go through
``tracklight.loggers.mlflow.backends``.

A run created here is tagged ``tracklight.local_id`` with the logger's local id (the one in the spill
file's name). Replaying a spill file whose run was not created yet first looks for a run with that
tag, so replaying a copy of an already replayed file sends into the same run, where MLflow ignores
the metric points and parameter values it already has, rather than making a second run.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import threading
import time
import warnings
from collections.abc import Callable
from numbers import Real
from typing import Any

from tracklight._errors import TracklightError, TracklightWarning
from tracklight.delivery.spill import Item
from tracklight.loggers._remote_resume import ResumeState
from tracklight.loggers.mlflow.backends import LOCAL_ID_TAG, Backend, connect, mlflow_module, upload

__all__ = ["InvalidItem", "MlflowSink", "sink_from_target", "terminal_status"]

#: MLflow error codes that mean "these items are wrong" rather than "try again later".
_PERMANENT_CODES = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "MALFORMED_REQUEST"})

_MLFLOW_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")

#: What MLflow says of a run that was deleted (or is otherwise not active) when asked to log to it.
_NOT_ACTIVE = "must be in the 'active' state"

_SAFE_LOCAL_ID = re.compile(r"[A-Za-z0-9_.-]+")


class InvalidItem(TracklightError):
    """An item lacks what MLflow needs (a spill file line edited or damaged): it can never be sent."""


class MlflowSink:
    """Delivers items of kind ``metric``, ``param``, ``tag`` (batched), ``artifact`` and ``status`` to one run.

    Args:
        tracking_uri: Where the run lives.
        experiment_name: The experiment to create the run in (created when missing).
        run_id: Resume this run instead of creating one.
        run_name: The new run's name.
        tags: The new run's tags (MLflow's context tags such as ``mlflow.user`` are added).
        artifact_location: Where a new experiment keeps its artifacts.
        start_time: The new run's start, in milliseconds since the epoch.
        resume: ``run_id`` is a run the user resumes: mark it RUNNING again when it opens.
        local_id: Tagged on a new run; with ``find_existing``, a run already tagged so is used instead.
        find_existing: Look for the run of ``local_id`` before creating one (replaying a spill file).
        before_open: Called with ``tracking_uri`` on the worker before the first attempt to open (the logger
            makes it MLflow's default there).
        resume_state: The state the logger continues (``load_state_dict``): when its run is gone, say so once
            and create a new run rather than retry.
    """

    factory = "tracklight.loggers.mlflow.sink:sink_from_target"
    # MLflow's log_batch limits (mlflow.utils.validation): 1000 metrics, 100 params, 100 tags, 1000 in all.
    limits = {"metric": 1000, "param": 100, "tag": 100}
    max_items = 1000
    # The server refuses requests over 1 MB; the batcher's estimate leaves room for JSON escaping.
    max_bytes = 400_000

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        *,
        run_id: str | None = None,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        artifact_location: str | None = None,
        start_time: int | None = None,
        resume: bool = False,
        local_id: str | None = None,
        find_existing: bool = False,
        before_open: Callable[[str], None] | None = None,
        resume_state: ResumeState | None = None,
        synchronous: bool | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.synchronous = synchronous
        self.experiment_name = experiment_name
        self.run_id = run_id
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.artifact_location = artifact_location
        self.start_time = start_time if start_time is not None else int(time.time() * 1000)
        self.local_id = local_id
        self._resume = resume
        self._find_existing = find_existing and local_id is not None and _SAFE_LOCAL_ID.fullmatch(local_id)
        self._before_open = before_open
        self._resume_state = resume_state
        self.experiment_id: str | None = None
        self.artifact_uri: str | None = None
        #: Set once the first attempt to open is about to reach the server (MLflow is imported by then), or
        #: failed before: from then on, waiting for the run is waiting for the server.
        self.connecting = threading.Event()
        self._backend: Backend | None = None
        self._params: dict[str, str] = {}
        self._said: set[str] = set()

    # ---- the Sink protocol ------------------------------------------------------------------------------

    def describe(self) -> str:
        return f"MLflow at {_without_credentials(self.tracking_uri)}"

    def target(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.tracking_uri,
            "experiment_name": self.experiment_name,
            "run_id": self.run_id,
            "run_name": self.run_name,
            "tags": self.tags,
            "artifact_location": self.artifact_location,
            "start_time": self.start_time,
            "local_id": self.local_id,
        }

    def open(self) -> None:
        try:
            if self._before_open is not None:
                before, self._before_open = self._before_open, None
                before(self.tracking_uri)
            backend = self._connect()
        finally:
            self.connecting.set()
        if self.run_id is None:
            self._create_run(backend)
            return
        try:
            run = backend.get_run(self.run_id)
        except Exception as error:
            if self._resume_state is None or getattr(error, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":
                raise
            self._resume_state.give_up(f"MLflow has no run {self.run_id} in {self.describe()}")
            self._resume_state = None
            self.run_id, self._resume = None, False
            self._create_run(backend)
            return
        self.experiment_id, self.artifact_uri = run["experiment_id"], run["artifact_uri"]
        self._params.update(run["params"])
        if self._resume and run["status"] != "RUNNING":
            self._resume = False
            backend.update_run(self.run_id, "RUNNING", None)

    def send(self, items: list[Item]) -> None:
        for item in items:
            _check(item)
        backend = self._connect()
        assert self.run_id is not None, "open() comes first"
        kind = items[0]["kind"]
        if kind == "artifact":
            self._upload(items[0])
        elif kind == "status":
            backend.update_run(self.run_id, items[0]["status"], items[0].get("end_time"))
        else:
            params = self._new_params([item for item in items if item["kind"] == "param"])
            metrics = [item for item in items if item["kind"] == "metric"]
            tags = [item for item in items if item["kind"] == "tag"]
            if metrics or params or tags:
                backend.log_batch(self.run_id, metrics, params, tags)
            self._params.update((param["key"], param["value"]) for param in params)

    def is_permanent(self, error: BaseException) -> bool:
        if isinstance(error, (FileNotFoundError, IsADirectoryError, InvalidItem)):
            return True  # an artifact's file is gone, or the item lacks a field: no retry helps
        return getattr(error, "error_code", None) in _PERMANENT_CODES

    def refuses_everything(self, error: BaseException) -> str | None:
        """Why the run takes no item at all any more (it was deleted), or ``None`` when ``error`` is about the
        items. MLflow answers a deleted run with INVALID_PARAMETER_VALUE, as for a bad value, so the message
        tells them apart."""
        if getattr(error, "error_code", None) != "INVALID_PARAMETER_VALUE" or _NOT_ACTIVE not in str(error):
            return None
        return (
            f"its run {self.run_id} was deleted ({error}). Restore it (mlflow runs restore --run-id {self.run_id}) "
            "to log to it again"
        )

    # ---- internals ----------------------------------------------------------------------------------

    def _connect(self) -> Backend:
        if self._backend is None:
            self._backend = connect(self.tracking_uri, self.synchronous)
        return self._backend

    def _create_run(self, backend: Backend) -> None:
        experiment_id = backend.experiment_id(self.experiment_name, self.artifact_location)
        found = backend.find_run(experiment_id, str(self.local_id)) if self._find_existing else None
        if found is not None:  # replayed before: the same run, not a second one
            self.run_id = found
            run = backend.get_run(found)
            self.artifact_uri = run["artifact_uri"]
            self._params.update(run["params"])
        else:
            self.tags = _with_context_tags(self.tags)
            if self.local_id is not None:
                self.tags.setdefault(LOCAL_ID_TAG, self.local_id)
            self.run_id, self.artifact_uri = backend.create_run(
                experiment_id, self.tags, self.run_name, self.start_time
            )
        self.experiment_id = experiment_id

    def _new_params(self, params: list[Item]) -> list[Item]:
        """Params MLflow does not have yet. MLflow refuses a changed value, so the first one is kept."""
        try:
            limit = mlflow_module("utils.validation").MAX_PARAM_VAL_LENGTH
        except ImportError:  # a stubbed mlflow without it
            limit = None
        limit = limit if isinstance(limit, int) else 6000  # a stubbed mlflow: MLflow's own limit
        fresh: dict[str, Item] = {}
        for param in params:
            key, value = param["key"], str(param["value"])
            if len(value) > limit:
                self._say(
                    f"long:{key}",
                    f"MLFlowLogger: the hyperparameter {key!r} is {len(value)} characters long; MLflow keeps at most "
                    f"{limit}, so it is cut there. To keep all of it, log it with "
                    "logger.log_text(key, value).",
                )
                value = value[:limit]
            first = self._params.get(key, fresh[key]["value"] if key in fresh else None)
            if first is None:
                fresh[key] = {"kind": "param", "key": key, "value": value}
            elif first != value:
                self._say(
                    f"changed:{key}",
                    f"MLFlowLogger: the hyperparameter {key!r} was logged as {first!r} and now as {value!r}; "
                    "MLflow keeps one value per run, so the first one stays. Log the new value under another "
                    "key, or start a new run, to keep both.",
                )
        return list(fresh.values())

    def _upload(self, item: Item) -> None:
        assert self.artifact_uri is not None and self.run_id is not None
        path = item["path"]
        folder = item.get("artifact_path") or None
        if not os.path.isfile(path):
            # Uploaded (and its copy removed) by an earlier replay of this spill file: nothing left to do.
            remote = posixpath.join(folder or "", os.path.basename(path))
            if item.get("remove") and self._connect().has_artifact(self.run_id, remote):
                return
            raise FileNotFoundError(f"{path} is gone, so it cannot be uploaded to run {self.run_id}")
        upload(self.artifact_uri, self.tracking_uri, path, folder)
        if item.get("remove"):  # a copy tracklight made for the upload, in a directory of its own
            os.remove(path)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(path))

    def _say(self, topic: str, message: str) -> None:
        if topic not in self._said:
            self._said.add(topic)
            warnings.warn(message, TracklightWarning, stacklevel=2)


def sink_from_target(
    target: dict[str, Any], *, tracking_uri: str | None = None, experiment: str | None = None
) -> MlflowSink:
    """Rebuild a sink from :meth:`MlflowSink.target` (what a spill file records), for the replay command.

    ``tracking_uri`` and ``experiment`` send to another server or experiment: the run is then created there
    (or found, when a copy of this file was replayed there before), with the file's run name and tags.
    """
    run_id = target.get("run_id")
    artifact_location = target.get("artifact_location")
    if tracking_uri is not None and tracking_uri != target["tracking_uri"]:
        run_id = artifact_location = None  # the run and its artifact location belong to the other server
    if experiment is not None and experiment != target["experiment_name"]:
        run_id = None  # a run cannot change experiments: a new one is made in this one
    return MlflowSink(
        tracking_uri or target["tracking_uri"],
        experiment or target["experiment_name"],
        run_id=run_id,
        run_name=target.get("run_name"),
        tags=target.get("tags"),
        artifact_location=artifact_location,
        start_time=target.get("start_time"),
        local_id=target.get("local_id"),
        find_existing=True,
    )


def terminal_status(status: str) -> str:
    """The MLflow run status for a Lightning ``finalize`` status (``success``, ``failed``, ``aborted``...)."""
    mapped = {"success": "FINISHED", "finished": "FINISHED", "failed": "FAILED", "aborted": "KILLED"}.get(status)
    if mapped is not None:
        return mapped
    if status.upper() in _MLFLOW_STATUSES:
        return status.upper()
    warnings.warn(
        f"MLFlowLogger.finalize got the status {status!r}; expected 'success', 'failed', 'aborted' or an MLflow "
        "status (FINISHED, FAILED, KILLED). The run is marked FAILED.",
        TracklightWarning,
        stacklevel=3,
    )
    return "FAILED"


# ---- helpers ------------------------------------------------------------------------------------------

#: What each kind of item needs, and of which type, for MLflow to take it.
_FIELDS: dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    "metric": (("key", str), ("value", Real), ("step", int), ("timestamp", int)),
    "param": (("key", str), ("value", str)),
    "tag": (("key", str),),
    "artifact": (("path", str),),
    "status": (("status", str),),
}


#: MLflow keeps steps and timestamps as signed 64-bit integers (its SQL stores' BIGINT, its API's int64).
_INT64 = range(-(2**63), 2**63)


def _check(item: Item) -> None:
    """Raise :class:`InvalidItem` naming what is missing, or the value MLflow cannot hold, when ``item`` cannot
    be sent to MLflow. (Sent as it is, a step beyond int64 failed the whole batch with a server error, again
    and again, so nothing after it was delivered.)"""
    fields = _FIELDS.get(item["kind"])
    if fields is None:
        raise InvalidItem(f"MLflow takes no item of kind {item['kind']!r}")
    for name, types in fields:
        value = item.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise InvalidItem(f"a {item['kind']} needs {name!r} ({_type_names(types)}); this one has {value!r}")
        if types is int and value not in _INT64:
            raise InvalidItem(
                f"its {name} {value} is beyond what MLflow holds (a 64-bit integer, -2**63 to 2**63 - 1); "
                f"send it again with another {name} if it matters"
            )


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {"str": "text", "int": "an integer", "Real": "a number"}
    kinds = types if isinstance(types, tuple) else (types,)
    return " or ".join(names.get(kind.__name__, kind.__name__) for kind in kinds)


def _with_context_tags(tags: dict[str, str]) -> dict[str, str]:
    """MLflow's own run tags (user, source file, git commit) under the user's tags, as mlflow.start_run adds."""
    try:
        resolve_tags = mlflow_module("tracking.context.registry").resolve_tags

        return {key: str(value) for key, value in resolve_tags(tags).items()}
    except Exception:  # context tags are a courtesy: a broken git or provider must not stop the run
        return dict(tags)


def _without_credentials(uri: str) -> str:
    return re.sub(r"//[^/@]*@", "//", uri)
