"""Where MLFlowLogger's runs go: the tracking URI from the argument, the environment or the embedded store,
and making it MLflow's default as Lightning's logger does."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tracklight._errors import TracklightError
from tracklight._rank import global_rank

__all__ = ["resolve", "use_as_default"]


def resolve(tracking_uri: str | None, local_dir: str, artifact_location: str | None) -> tuple[str, bool, str | None]:
    """The tracking URI, whether it is the embedded store, and the artifact location of new experiments.

    Without a tracking URI (argument, else ``MLFLOW_TRACKING_URI``) runs go to the embedded
    SQLite store ``<local_dir>/mlflow.db``, whose folder must take files: MLflow would otherwise retry
    opening it for minutes, so a folder that cannot be written is an error at once. A local ``sqlite:///``
    store keeps new experiments' artifacts in ``artifacts/`` next to its database.
    """
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    embedded = tracking_uri is None
    if tracking_uri is None:
        tracking_uri = "sqlite:///" + os.path.join(local_dir, "mlflow.db")
        if global_rank() == 0:
            _check_writable(local_dir)
    database = _sqlite_file(tracking_uri)
    if artifact_location is None and database is not None:
        artifact_location = Path(os.path.dirname(database), "artifacts").as_uri()
    return tracking_uri, embedded, artifact_location


def use_as_default(uri: str) -> None:
    """Make ``uri`` MLflow's default tracking URI, as Lightning's logger does, so the user's own ``mlflow.*``
    calls in this process (``mlflow.log_artifact`` after training) reach the same store.

    ``mlflow.set_tracking_uri`` also exports the URI as ``MLFLOW_TRACKING_URI``; the environment is put back
    as it was, so a later logger without a tracking URI, and child processes, see what the user set.
    """
    import mlflow

    current = getattr(mlflow, "get_tracking_uri", None)  # a stubbed mlflow may have set_tracking_uri only
    if current is not None and current() == uri:
        return
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def _sqlite_file(uri: str) -> str | None:
    """The database path of a local ``sqlite:///`` URI, else ``None``."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if path in ("", ":memory:") else os.path.abspath(path)


def _check_writable(folder: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tracklight-probe-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        raise TracklightError(
            f"MLFlowLogger cannot write its embedded MLflow store in {folder} ({type(error).__name__}: "
            f"{error.strerror or error}). Pass save_dir= a folder it can write, or tracking_uri= a tracking server "
            "or database."
        ) from error
