"""Two ways the MLflow sink talks to MLflow: its REST API over HTTP, or an ``MlflowClient`` for other stores.

Over HTTP the MLflow client would retry a refused connection for minutes inside one call; the delivery
worker retries on its own schedule instead, so HTTP tracking servers are spoken to through MLflow's
REST helpers with ``max_retries=0`` and a timeout. Every other tracking URI (``sqlite:///``, ``file:``,
``databricks``) goes through an ``MlflowClient``. Both offer the same methods; MLflow is imported
inside them, on the worker thread.
"""

from __future__ import annotations

import math
import mimetypes
import os
import posixpath
import sys
from typing import Any

from tracklight._errors import TracklightError
from tracklight._imports import is_mock, is_stubbed, require
from tracklight.delivery.spill import Item

__all__ = ["LOCAL_ID_TAG", "REQUEST_TIMEOUT", "Backend", "client_is_mocked", "connect", "mlflow_module", "upload"]

#: Seconds one HTTP request may take (connecting, and between bytes of the answer).
REQUEST_TIMEOUT = 15.0

#: The run tag that names the local id of the logger (or spill file) a run was created for.
LOCAL_ID_TAG = "tracklight.local_id"


def mlflow_module(name: str) -> Any:
    """MLflow's submodule ``mlflow.<name>``, imported on first use (through a stub put in ``sys.modules``
    for ``mlflow``, as test suites do, when there is one)."""
    return require(f"mlflow.{name}", "mlflow")


def client_is_mocked() -> bool:
    """Whether MLflow is a test suite's stand-in (a stub ``mlflow``, or a mocked ``MlflowClient`` in an
    ``mlflow.tracking`` imported already), told without importing MLflow."""
    tracking = sys.modules.get("mlflow.tracking")
    return is_stubbed("mlflow") or is_mock(getattr(tracking, "MlflowClient", None))


def connect(uri: str, synchronous: bool | None = None) -> Backend:
    """The backend for a tracking URI; ``synchronous`` is passed to ``MlflowClient.log_batch`` when given."""
    scheme = uri.partition(":")[0].lower()
    return _RestBackend(uri) if scheme in ("http", "https") else _ClientBackend(uri, synchronous)


class _RestBackend:
    """MLflow's REST API 2.0 over HTTP, one attempt per call (the delivery worker does the retrying)."""

    def __init__(self, uri: str) -> None:
        get_default_host_creds = mlflow_module("utils.credentials").get_default_host_creds

        self.uri = uri
        self._creds = get_default_host_creds(uri)

    def _call(self, endpoint: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
        rest = mlflow_module("utils.rest_utils")
        path = f"/api/2.0/mlflow/{endpoint}"
        payload = {"params": body} if method == "GET" else {"json": body}
        response = rest.http_request(self._creds, path, method, max_retries=0, timeout=REQUEST_TIMEOUT, **payload)
        rest.verify_rest_response(response, path)
        return response.json() if response.text else {}

    def experiment_id(self, name: str, artifact_location: str | None) -> str:
        MlflowException = mlflow_module("exceptions").MlflowException

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

    def find_run(self, experiment_id: str, local_id: str) -> str | None:
        body = {"experiment_ids": [experiment_id], "filter": _local_id_filter(local_id), "max_results": 1}
        runs = self._call("runs/search", "POST", body).get("runs", [])
        return str(runs[0]["info"]["run_id"]) if runs else None

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

    def has_artifact(self, run_id: str, path: str) -> bool:
        folder = posixpath.dirname(path)
        body = {"run_id": run_id, **({"path": folder} if folder else {})}
        files = self._call("artifacts/list", "GET", body).get("files", [])
        return any(entry.get("path") == path and not entry.get("is_dir") for entry in files)


class _ClientBackend:
    """An ``MlflowClient`` for every non-HTTP tracking URI (an ``sqlite:///`` file opened in this process).

    The client is called as Lightning's logger calls it (keywords; ``synchronous`` only when the user gave it), so
    a suite that mocks ``MlflowClient`` sees the calls it expects; nothing beyond the client and ``entities`` is
    needed from a stubbed ``mlflow``.
    """

    def __init__(self, uri: str, synchronous: bool | None = None) -> None:
        self.uri = uri
        self._synchronous = synchronous
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            MlflowClient = mlflow_module("tracking").MlflowClient

            self._client = MlflowClient(self.uri)  # opens (and migrates) the store: may fail, then is retried
        return self._client

    def experiment_id(self, name: str, artifact_location: str | None) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return _active(experiment.experiment_id, experiment.lifecycle_stage, name)
        try:
            return str(self.client.create_experiment(name=name, artifact_location=artifact_location))
        except Exception as error:  # an MlflowException, told by its code (a stubbed mlflow has no exceptions)
            if getattr(error, "error_code", None) != "RESOURCE_ALREADY_EXISTS":  # another process created it
                raise
            return str(self.client.get_experiment_by_name(name).experiment_id)

    def create_run(
        self, experiment_id: str, tags: dict[str, str], run_name: str | None, start_time: int
    ) -> tuple[str, str]:
        if run_name is None and "mlflow.runName" not in tags:
            run_name = _run_name()
        run = self.client.create_run(experiment_id=experiment_id, start_time=start_time, tags=tags, run_name=run_name)
        return run.info.run_id, run.info.artifact_uri

    def find_run(self, experiment_id: str, local_id: str) -> str | None:
        runs = self.client.search_runs([experiment_id], filter_string=_local_id_filter(local_id), max_results=1)
        return str(runs[0].info.run_id) if runs else None

    def get_run(self, run_id: str) -> dict[str, Any]:
        run = self.client.get_run(run_id)
        return {
            "experiment_id": run.info.experiment_id,
            "artifact_uri": run.info.artifact_uri,
            "status": run.info.status,
            "params": dict(run.data.params),
        }

    def log_batch(self, run_id: str, metrics: list[Item], params: list[Item], tags: list[Item]) -> None:
        entities = mlflow_module("entities")
        batch: dict[str, Any] = {}
        if metrics:
            batch["metrics"] = [
                entities.Metric(
                    key=m["key"], value=float(m["value"]), timestamp=int(m["timestamp"]), step=int(m["step"])
                )
                for m in metrics
            ]
        if params:
            batch["params"] = [entities.Param(key=p["key"], value=p["value"]) for p in params]
        if tags:
            batch["tags"] = [entities.RunTag(key=t["key"], value=str(t["value"])) for t in tags]
        if self._synchronous is not None:
            batch["synchronous"] = self._synchronous
        self.client.log_batch(run_id=run_id, **batch)

    def update_run(self, run_id: str, status: str, end_time: int | None) -> None:
        if status == "RUNNING":
            self.client.update_run(run_id, status=status)
        else:
            self.client.set_terminated(run_id, status, end_time)

    def has_artifact(self, run_id: str, path: str) -> bool:
        folder = posixpath.dirname(path) or None
        return any(info.path == path and not info.is_dir for info in self.client.list_artifacts(run_id, folder))


Backend = _RestBackend | _ClientBackend


def upload(artifact_uri: str, tracking_uri: str, local_path: str, artifact_path: str | None) -> None:
    """Upload one file; HTTP artifact stores get one attempt, like every other request of the worker."""
    get_artifact_repository = mlflow_module("store.artifact.artifact_repository_registry").get_artifact_repository
    HttpArtifactRepository = mlflow_module("store.artifact.http_artifact_repo").HttpArtifactRepository

    try:
        repository = get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)
    except TypeError:  # older MLflow: no tracking_uri, so resolve the server's mlflow-artifacts: URIs here
        if artifact_uri.startswith("mlflow-artifacts:"):
            repositories = mlflow_module("store.artifact.mlflow_artifacts_repo")
            artifact_uri = repositories.MlflowArtifactsRepository.resolve_uri(artifact_uri, tracking_uri)
        repository = get_artifact_repository(artifact_uri)
    if not isinstance(repository, HttpArtifactRepository):
        repository.log_artifact(local_path, artifact_path)
        return
    get_default_host_creds = mlflow_module("utils.credentials").get_default_host_creds
    rest = mlflow_module("utils.rest_utils")

    name = os.path.basename(local_path)
    endpoint = posixpath.join("/", *([artifact_path] if artifact_path else []), name)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    with open(local_path, "rb") as handle:
        response = rest.http_request(
            get_default_host_creds(repository.artifact_uri),
            endpoint,
            "PUT",
            data=handle,
            extra_headers={"Content-Type": content_type},
            max_retries=0,
            timeout=REQUEST_TIMEOUT,
        )
    rest.augmented_raise_for_status(response)


def _active(experiment_id: Any, lifecycle_stage: str | None, name: str) -> str:
    if lifecycle_stage == "deleted":
        raise TracklightError(
            f"The MLflow experiment {name!r} (id {experiment_id}) is deleted. Restore it "
            f"(mlflow experiments restore --experiment-id {experiment_id}) or pass another experiment_name; "
            "what was logged is kept until then."
        )
    return str(experiment_id)


def _local_id_filter(local_id: str) -> str:
    return f"tags.`{LOCAL_ID_TAG}` = '{local_id}'"


def _json_number(value: float) -> float | str:
    """Numbers as MLflow's JSON API takes them: NaN and infinities spelled the protobuf way."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _run_name() -> str | None:
    """A run name in MLflow's style (``bright-fox-123``), drawn from a generator of its own. MLflow's store would
    draw it from the global ``random`` module, on this worker thread: that moves a seeded script's random
    sequence at an unpredictable moment. ``None`` (MLflow names the run) if MLflow's word lists are not there."""
    import random

    try:
        name_utils = mlflow_module("utils.name_utils")
    except ImportError:  # a stubbed mlflow without it
        return None

    predicates, nouns = (getattr(name_utils, name, None) for name in ("_GENERATOR_PREDICATES", "_GENERATOR_NOUNS"))
    if not (isinstance(predicates, list | tuple) and predicates and isinstance(nouns, list | tuple) and nouns):
        return None  # MLflow moved them, or a stubbed mlflow
    generator = random.Random()
    name = ""
    for _ in range(100):  # as MLflow does: draw again while the name is longer than 20 characters (never cut it)
        name = f"{generator.choice(predicates)}-{generator.choice(nouns)}-{generator.randint(0, 999)}".lower()
        if len(name) <= 20:
            break
    return name
