"""Reader of runs on an MLflow tracking server, through its REST API with the standard library.

Not through ``MlflowClient``: the ``cli`` extra must read a server the demo points it at without MLflow
(a 100 MB install), and importing MLflow alone takes seconds, which ``ls`` cannot afford. The endpoints
used (``experiments/search``, ``runs/search``, ``runs/get``, ``metrics/get-history``) are MLflow's public REST
API, stable since 1.x. ``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` are sent as
MLflow's own client sends them.

References: ``http(s)://host:port`` lists every active run; ``http(s)://host:port#<run id>`` is one run.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tracklight.runs._run import Points, Run, RunError, RunInfo
from tracklight.runs._superseded import without_mlflow_superseded

__all__ = ["MlflowServerRun", "server_runs"]

_TIMEOUT = 30.0
_PAGE = 1000
_HISTORY_PAGE = 25000


def _call(uri: str, endpoint: str, body: dict[str, Any] | None = None, query: dict[str, Any] | None = None) -> Any:
    """One REST call: GET with ``query`` or POST with a JSON ``body``; the answer as JSON.

    Raises:
        RunError: the server cannot be reached or refuses the call (the message says which and why).
    """
    url = f"{uri.rstrip('/')}/api/2.0/mlflow/{endpoint}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    headers = {"Content-Type": "application/json"}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user and password:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as answer:
            return json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as err:
        detail = err.read(500).decode("utf-8", "replace").strip()
        raise RunError(uri, f"the MLflow server refused {endpoint} (HTTP {err.code}: {detail})") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise RunError(uri, f"no MLflow server answers there ({reason}); is it running, and is the URL right?") from err
    except ValueError as err:
        raise RunError(uri, f"answered {endpoint} with something that is not JSON: not an MLflow server?") from err


def _pages(uri: str, endpoint: str, body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token = None
    while True:
        answer = _call(uri, endpoint, {**body, **({"page_token": token} if token else {})})
        found.extend(answer.get(key, []))
        token = answer.get("next_page_token")
        if not token:
            return found


class MlflowServerRun(Run):
    """A run on a tracking server; ``data`` is the run as ``runs/get`` or ``runs/search`` gives it."""

    backend = "mlflow"

    def __init__(self, uri: str, run_id: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{uri}#{run_id}", uri)
        self.uri = uri
        self.run_id = run_id
        if data is None:
            data = _call(uri, "runs/get", query={"run_id": run_id}).get("run", {})
        self.data = data
        if not data:
            raise RunError(self.ref, f"no run {run_id} on the MLflow server {uri}")

    def _items(self, kind: str) -> dict[str, Any]:
        return {item["key"]: item.get("value") for item in self.data.get("data", {}).get(kind, [])}

    def info(self) -> RunInfo:
        info = self.data.get("info", {})
        latest = self.data.get("data", {}).get("metrics", [])
        stamps = [int(info.get(k) or 0) for k in ("start_time", "end_time")] + [
            int(m.get("timestamp") or 0) for m in latest
        ]
        return RunInfo(
            ref=self.ref,
            backend=self.backend,
            name=info.get("run_name") or None,
            version=self.run_id,
            status=str(info.get("status", "")).lower() or None,
            steps=max((int(m.get("step") or 0) for m in latest), default=None),
            updated=max(stamps) / 1000 or None,
            metrics=len(latest),
            params=len(self._items("params")),
        )

    def params(self) -> dict[str, Any]:
        return dict(sorted(self._items("params").items()))

    def _read(self) -> dict[str, Points]:
        found = {}
        for key in sorted(self._items("metrics")):
            history: list[dict[str, Any]] = []
            token = None
            while True:
                query = {"run_id": self.run_id, "metric_key": key, "max_results": _HISTORY_PAGE}
                answer = _call(
                    self.uri, "metrics/get-history", query={**query, **({"page_token": token} if token else {})}
                )
                history.extend(answer.get("metrics", []))
                token = answer.get("next_page_token")
                if not token:
                    break
            found[key] = Points.of(
                [int(m.get("step") or 0) for m in history],
                [float(m.get("value", "nan")) for m in history],
                [int(m.get("timestamp") or 0) / 1000 for m in history],
            )
        return without_mlflow_superseded(found, self._items("tags"))


def server_runs(uri: str) -> list[Run]:
    """Every active run on the server at ``uri``, oldest first."""
    experiments = _pages(uri, "experiments/search", {"max_results": _PAGE}, "experiments")
    ids = [e["experiment_id"] for e in experiments if e.get("lifecycle_stage", "active") == "active"]
    found: list[Run] = []
    for start in range(0, len(ids), 100):  # runs/search takes at most 100 experiments per call
        body = {
            "experiment_ids": ids[start : start + 100],
            "max_results": _PAGE,
            "order_by": ["attributes.start_time ASC"],
        }
        for data in _pages(uri, "runs/search", body, "runs"):
            found.append(MlflowServerRun(uri, data["info"]["run_id"], data))
    return found
