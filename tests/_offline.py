"""Every backend offline, for tests that run several of them: quiet settings and one environment set-up."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _comet_neptune_readers import refuse_network, stop_started_runs
from _wandb_reader import offline_env

#: Comet without its system-metrics thread (joining it costs a second per experiment), code or environment capture.
COMET_QUIET: dict[str, Any] = {
    "display_summary_level": 0,
    "auto_output_logging": False,
    "log_code": False,
    "log_git_metadata": False,
    "log_git_patch": False,
    "log_env_details": False,
    "log_env_host": False,
    "log_env_cpu": False,
    "log_env_gpu": False,
    "log_env_network": False,
    "log_env_disk": False,
}
#: Neptune without capture threads or a copy of the test's source files.
NEPTUNE_QUIET: dict[str, Any] = {
    "capture_stdout": False,
    "capture_stderr": False,
    "capture_hardware_metrics": False,
    "capture_traceback": False,
    "source_files": [],
}


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def refuse_remote_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse every connection and name lookup beyond this machine and list the attempts; loopback stays open
    (local servers a test starts: moto's S3, an ``mlflow server``)."""
    attempts: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in _LOOPBACK:
            return real_getaddrinfo(host, *args, **kwargs)
        attempts.append(f"getaddrinfo({host!r})")
        raise OSError("network disabled in this test")

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family == socket.AF_UNIX or address[0] in _LOOPBACK:
            return real_connect(self, address)
        attempts.append(f"connect({address!r})")
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def offline_backends(monkeypatch: pytest.MonkeyPatch, root: Path, loopback: bool = False) -> list[Any]:
    """Work in ``root`` with W&B, Comet and Neptune offline (their files under ``root``), MLflow on its default
    store, and the network refused (``loopback``: but for this machine): returns the list of attempts, which a
    test expects to stay empty."""
    monkeypatch.chdir(root)
    offline_env(monkeypatch, root)
    for name in ("COMET_API_KEY", "COMET_OFFLINE_DIRECTORY", "MLFLOW_TRACKING_URI", "NEPTUNE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COMET_START_ONLINE", "false")
    monkeypatch.setenv("NEPTUNE_MODE", "offline")
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", str(root / ".neptune"))
    return refuse_remote_network(monkeypatch) if loopback else refuse_network(monkeypatch)


def runs_left_open(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call what this returns when the test ends: it ends the W&B run, the Comet experiment and the Neptune runs
    started from now on that are still open, as the process's exit would. Loggers leave their run open after
    ``finalize``, as Lightning's do; left open, a run would be reused by the next test's logger, and its SDK
    would end it only at interpreter exit, writing to streams pytest has closed by then."""
    stop_neptune_runs = stop_started_runs(monkeypatch)

    def end() -> None:
        stop_neptune_runs()
        wandb = _real_module("wandb")
        if wandb is not None and wandb.run is not None:
            wandb.run.finish()
        comet_ml = _real_module("comet_ml")
        running = comet_ml.get_running_experiment() if comet_ml is not None else None
        if running is not None and not running.ended:
            running.end()

    return end


def _real_module(name: str) -> Any:
    """The SDK module when it was imported and is not a test's stub (a stub's runs are its own business)."""
    module = sys.modules.get(name)
    return module if getattr(module, "__spec__", None) is not None else None
