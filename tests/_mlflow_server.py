"""One real ``mlflow server`` subprocess on 127.0.0.1, for tests and benchmarks.

SQLite backend and a local artifact root in a directory of the caller's choosing, on a free port that
stays the same across restarts (so a killed server can come back where clients expect it).

Example:
    >>> server = MlflowServer(tmp_dir)  # doctest: +SKIP
    >>> server.start()  # returns once the server answers  # doctest: +SKIP
    >>> server.kill()  # SIGKILL, like a crash  # doctest: +SKIP
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    def __init__(self, root: str | os.PathLike[str], port: int | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, wait: bool = True, timeout: float = 180.0) -> None:
        """Start the server (in its own process group); with ``wait``, return once it answers."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"the MLflow server on port {self.port} is already running")
        self.starts += 1
        log = open(self.root / f"server-{self.starts}.log", "wb")  # the child writes to it
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", PYTHONWARNINGS="ignore")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_ready(timeout)

    def running(self) -> MlflowServer:
        """Start the server unless it answers already; return once it does."""
        if not self.answers():
            if self.process is None or self.process.poll() is not None:
                self.process = None
                self.start(wait=False)
            self.wait_ready()
        return self

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the MLflow server exited with {self.process.returncode}:\n{self.log_tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"the MLflow server did not answer within {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server and its workers: a crash, with no chance to answer in-flight requests."""
        self._signal_group(signal.SIGKILL)

    def stop(self) -> None:
        self._signal_group(signal.SIGTERM, then_kill_after=10.0)

    def log_tail(self, lines: int = 30) -> str:
        logs = sorted(self.root.glob("server-*.log"))
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:]) if logs else ""

    def _signal_group(self, signum: int, then_kill_after: float | None = None) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signum)
            process.wait(timeout=then_kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
        # The port must be free again before the next start.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.answers():
            time.sleep(0.1)

    def __enter__(self) -> MlflowServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
