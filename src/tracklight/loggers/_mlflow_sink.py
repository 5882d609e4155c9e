"""The MLflow sink of background delivery: creates or resumes the run, sends batches, uploads artifacts.

Runs on the delivery worker thread (and in ``python -m tracklight.delivery replay``), never on the
training thread. MLflow is imported here, the first time the worker needs it.

Over HTTP the MLflow client would retry a refused connection for minutes inside one call; the worker
retries on its own schedule instead, so HTTP tracking servers are spoken to through MLflow's REST
helpers with ``max_retries=0``. Every other tracking URI (``sqlite:///``, ``file:``, ``databricks``)
goes through an ``MlflowClient``.
"""

from __future__ import annotations

import contextlib
import math
import mimetypes
import os
import posixpath
import re
import time
import warnings
from typing import Any

from tracklight._errors import TracklightError, TracklightWarning
from tracklight.delivery.spill import Item

__all__ = ["MlflowSink", "sink_from_target"]

#: Seconds one HTTP request may take (connecting, and between bytes of the answer).
REQUEST_TIMEOUT = 15.0

#: MLflow error codes that mean "these items are wrong" rather than "try again later".
_PERMANENT_CODES = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "MALFORMED_REQUEST"})

_MLFLOW_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")


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
    """

    factory = "tracklight.loggers._mlflow_sink:sink_from_target"
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
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_id = run_id
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.artifact_location = artifact_location
        self.start_time = start_time if start_time is not None else int(time.time() * 1000)
        self._resume = resume
        self.experiment_id: str | None = None
        self.artifact_uri: str | None = None
        self._backend: _RestBackend | _ClientBackend | None = None
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
        }

    def open(self) -> None:
        backend = self._connect()
        if self.run_id is None:
            self.tags = _with_context_tags(self.tags)
            experiment_id = backend.experiment_id(self.experiment_name, self.artifact_location)
            self.run_id, self.artifact_uri = backend.create_run(
                experiment_id, self.tags, self.run_name, self.start_time
            )
            self.experiment_id = experiment_id
            return
        run = backend.get_run(self.run_id)
        self.experiment_id, self.artifact_uri = run["experiment_id"], run["artifact_uri"]
        self._params.update(run["params"])
        if self._resume and run["status"] != "RUNNING":
            self._resume = False
            backend.update_run(self.run_id, "RUNNING", None)

    def send(self, items: list[Item]) -> None:
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
        if isinstance(error, (FileNotFoundError, IsADirectoryError)):
            return True  # an artifact's file is gone: no retry brings it back
        return getattr(error, "error_code", None) in _PERMANENT_CODES

    # ---- internals ----------------------------------------------------------------------------------

    def _connect(self) -> _RestBackend | _ClientBackend:
        if self._backend is None:
            scheme = self.tracking_uri.partition(":")[0].lower()
            self._backend = (
                _RestBackend(self.tracking_uri) if scheme in ("http", "https") else _ClientBackend(self.tracking_uri)
            )
        return self._backend

    def _new_params(self, params: list[Item]) -> list[Item]:
        """Params MLflow does not have yet. MLflow refuses a changed value, so the first one is kept."""
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        fresh: dict[str, Item] = {}
        for param in params:
            key, value = param["key"], str(param["value"])
            if len(value) > MAX_PARAM_VAL_LENGTH:
                self._say(
                    f"long:{key}",
                    f"MLFlowLogger: the hyperparameter {key!r} is {len(value)} characters long; MLflow keeps at most "
                    f"{MAX_PARAM_VAL_LENGTH}, so it is cut there. To keep all of it, log it with "
                    "logger.log_text(key, value).",
                )
                value = value[:MAX_PARAM_VAL_LENGTH]
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
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is gone, so it cannot be uploaded to run {self.run_id}")
        _upload(self.artifact_uri, self.tracking_uri, path, item.get("artifact_path") or None)
        if item.get("remove"):  # a copy tracklight made for the upload, in a directory of its own
            os.remove(path)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(path))

    def _say(self, topic: str, message: str) -> None:
        if topic not in self._said:
            self._said.add(topic)
            warnings.warn(message, TracklightWarning, stacklevel=2)


def sink_from_target(target: dict[str, Any]) -> MlflowSink:
    """Rebuild a sink from :meth:`MlflowSink.target` (what a spill file records)."""
    return MlflowSink(
        target["tracking_uri"],
        target["experiment_name"],
        run_id=target.get("run_id"),
        run_name=target.get("run_name"),
        tags=target.get("tags"),
        artifact_location=target.get("artifact_location"),
        start_time=target.get("start_time"),
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


# ---- two ways to talk to MLflow ---------------------------------------------------------------------


class _RestBackend:
    """MLflow's REST API 2.0 over HTTP, one attempt per call (the delivery worker does the retrying)."""

    def __init__(self, uri: str) -> None:
        from mlflow.utils.credentials import get_default_host_creds

        self.uri = uri
        self._creds = get_default_host_creds(uri)

    def _call(self, endpoint: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        path = f"/api/2.0/mlflow/{endpoint}"
        payload = {"params": body} if method == "GET" else {"json": body}
        response = http_request(self._creds, path, method, max_retries=0, timeout=REQUEST_TIMEOUT, **payload)
        verify_rest_response(response, path)
        return response.json() if response.text else {}

    def experiment_id(self, name: str, artifact_location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        try:
            experiment = self._call("experiments/get-by-name", "GET", {"experiment_name": name})["experiment"]
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        else:
            return _active(experiment["experiment_id"], experiment.get("lifecycle_stage"), name)
        body: dict[str, Any] = {"name": name}
        if artifact_location:
            body["artifact_location"] = artifact_location
        try:
            return str(self._call("experiments/create", "POST", body)["experiment_id"])
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":  # another process created it just now
                raise
            return str(
                self._call("experiments/get-by-name", "GET", {"experiment_name": name})["experiment"]["experiment_id"]
            )

    def create_run(
        self, experiment_id: str, tags: dict[str, str], run_name: str | None, start_time: int
    ) -> tuple[str, str]:
        body: dict[str, Any] = {
            "experiment_id": experiment_id,
            "start_time": start_time,
            "tags": [{"key": key, "value": str(value)} for key, value in tags.items()],
        }
        if run_name is not None:
            body["run_name"] = run_name
        info = self._call("runs/create", "POST", body)["run"]["info"]
        return info["run_id"], info["artifact_uri"]

    def get_run(self, run_id: str) -> dict[str, Any]:
        run = self._call("runs/get", "GET", {"run_id": run_id})["run"]
        params = {param["key"]: param["value"] for param in run.get("data", {}).get("params", [])}
        info = run["info"]
        return {
            "experiment_id": info["experiment_id"],
            "artifact_uri": info["artifact_uri"],
            "status": info.get("status"),
            "params": params,
        }

    def log_batch(self, run_id: str, metrics: list[Item], params: list[Item], tags: list[Item]) -> None:
        self._call(
            "runs/log-batch",
            "POST",
            {
                "run_id": run_id,
                "metrics": [
                    {"key": m["key"], "value": _json_number(m["value"]), "timestamp": m["timestamp"], "step": m["step"]}
                    for m in metrics
                ],
                "params": [{"key": p["key"], "value": p["value"]} for p in params],
                "tags": [{"key": t["key"], "value": str(t["value"])} for t in tags],
            },
        )

    def update_run(self, run_id: str, status: str, end_time: int | None) -> None:
        body: dict[str, Any] = {"run_id": run_id, "status": status}
        if end_time is not None:
            body["end_time"] = end_time
        self._call("runs/update", "POST", body)


class _ClientBackend:
    """An ``MlflowClient`` for every non-HTTP tracking URI (an ``sqlite:///`` file opened in this process)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.uri)  # opens (and migrates) the store: may fail, then is retried
        return self._client

    def experiment_id(self, name: str, artifact_location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return _active(experiment.experiment_id, experiment.lifecycle_stage, name)
        try:
            return str(self.client.create_experiment(name, artifact_location=artifact_location))
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return str(self.client.get_experiment_by_name(name).experiment_id)

    def create_run(
        self, experiment_id: str, tags: dict[str, str], run_name: str | None, start_time: int
    ) -> tuple[str, str]:
        if run_name is None and "mlflow.runName" not in tags:
            run_name = _run_name()
        run = self.client.create_run(experiment_id, start_time=start_time, tags=tags, run_name=run_name)
        return run.info.run_id, run.info.artifact_uri

    def get_run(self, run_id: str) -> dict[str, Any]:
        run = self.client.get_run(run_id)
        return {
            "experiment_id": run.info.experiment_id,
            "artifact_uri": run.info.artifact_uri,
            "status": run.info.status,
            "params": dict(run.data.params),
        }

    def log_batch(self, run_id: str, metrics: list[Item], params: list[Item], tags: list[Item]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        self.client.log_batch(
            run_id,
            metrics=[Metric(m["key"], float(m["value"]), int(m["timestamp"]), int(m["step"])) for m in metrics],
            params=[Param(p["key"], p["value"]) for p in params],
            tags=[RunTag(t["key"], str(t["value"])) for t in tags],
            synchronous=True,
        )

    def update_run(self, run_id: str, status: str, end_time: int | None) -> None:
        if status == "RUNNING":
            self.client.update_run(run_id, status=status)
        else:
            self.client.set_terminated(run_id, status, end_time)


# ---- helpers ------------------------------------------------------------------------------------------


def _upload(artifact_uri: str, tracking_uri: str, local_path: str, artifact_path: str | None) -> None:
    """Upload one file; HTTP artifact stores get one attempt, like every other request of the worker."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

    try:
        repository = get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)
    except TypeError:  # older MLflow: no tracking_uri, so resolve the server's mlflow-artifacts: URIs here
        if artifact_uri.startswith("mlflow-artifacts:"):
            from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

            artifact_uri = MlflowArtifactsRepository.resolve_uri(artifact_uri, tracking_uri)
        repository = get_artifact_repository(artifact_uri)
    if not isinstance(repository, HttpArtifactRepository):
        repository.log_artifact(local_path, artifact_path)
        return
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import augmented_raise_for_status, http_request

    name = os.path.basename(local_path)
    endpoint = posixpath.join("/", *([artifact_path] if artifact_path else []), name)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    with open(local_path, "rb") as handle:
        response = http_request(
            get_default_host_creds(repository.artifact_uri),
            endpoint,
            "PUT",
            data=handle,
            extra_headers={"Content-Type": content_type},
            max_retries=0,
            timeout=REQUEST_TIMEOUT,
        )
    augmented_raise_for_status(response)


def _active(experiment_id: Any, lifecycle_stage: str | None, name: str) -> str:
    if lifecycle_stage == "deleted":
        raise TracklightError(
            f"The MLflow experiment {name!r} (id {experiment_id}) is deleted. Restore it "
            f"(mlflow experiments restore --experiment-id {experiment_id}) or pass another experiment_name; "
            "what was logged is kept until then."
        )
    return str(experiment_id)


def _run_name() -> str | None:
    """A run name in MLflow's style (``bright-fox-123``), drawn from a generator of its own. MLflow's store would
    draw it from the global ``random`` module, on this worker thread: that moves a seeded script's random
    sequence at an unpredictable moment. ``None`` (MLflow names the run) if MLflow's word lists are not there."""
    import random

    from mlflow.utils import name_utils

    predicates, nouns = (getattr(name_utils, name, None) for name in ("_GENERATOR_PREDICATES", "_GENERATOR_NOUNS"))
    if not predicates or not nouns:
        return None
    generator = random.Random()
    return f"{generator.choice(predicates)}-{generator.choice(nouns)}-{generator.randint(0, 999)}".lower()[:20]


def _with_context_tags(tags: dict[str, str]) -> dict[str, str]:
    """MLflow's own run tags (user, source file, git commit) under the user's tags, as mlflow.start_run adds."""
    try:
        from mlflow.tracking.context.registry import resolve_tags

        return {key: str(value) for key, value in resolve_tags(tags).items()}
    except Exception:  # context tags are a courtesy: a broken git or provider must not stop the run
        return dict(tags)


def _json_number(value: float) -> float | str:
    """Numbers as MLflow's JSON API takes them: NaN and infinities spelled the protobuf way."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _without_credentials(uri: str) -> str:
    return re.sub(r"//[^/@]*@", "//", uri)
