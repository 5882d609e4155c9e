"""Ctrl-C twice under a real ``Trainer`` while the MLflow server is down (issue 17 item 10).

Lightning, on the first Ctrl-C, ignores SIGINT and calls ``finalize("failed")`` itself; ``finalize`` then waits
up to ``delivery_timeout`` (60 s) for a server that went away. A second Ctrl-C must end that wait at once, keep
what is left in the spill file and print the replay command, as it does in a plain loop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _mlflow_server import MlflowServer
from _tcp_gate import Gate

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(300)]


@pytest.fixture
def server(mlflow_server: MlflowServer) -> MlflowServer:
    return mlflow_server.running()


def test_a_second_ctrl_c_under_a_trainer_ends_the_wait_for_a_server_that_went_down(
    server: MlflowServer, tmp_path: Path
) -> None:
    gate = Gate(server.port)
    gate.forward()  # the server answers at first: the run is created, then it goes away
    script = f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import _tiny_module_class
        from lightning.pytorch import Trainer
        from lightning.pytorch.callbacks import Callback
        from tracklight.loggers.mlflow import MLFlowLogger

        class Announce(Callback):
            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step == 20:
                    print("training", flush=True)
                time.sleep(0.02)

        logger = MLFlowLogger("interrupted", tracking_uri={gate.url!r}, save_dir={str(tmp_path)!r})
        Trainer(logger=logger, max_epochs=-1, max_steps=100_000, limit_val_batches=0, log_every_n_steps=1,
                callbacks=[Announce()], enable_progress_bar=False, enable_checkpointing=False,
                enable_model_summary=False, default_root_dir={str(tmp_path)!r}).fit(_tiny_module_class()())
        """
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning"),
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        assert child.stdout.readline().strip() == "training", child.communicate(timeout=60)[1][-3000:]
        gate.down()
        time.sleep(1.0)  # the worker meets the closed port; what is logged now waits in the spill file
        child.send_signal(signal.SIGINT)  # Lightning: "attempting graceful shutdown", then finalize waits
        seen = []
        for line in child.stderr:  # finalize says how the wait goes every 2 s
            seen.append(line)
            if "still to deliver" in line:
                break
        else:
            raise AssertionError("finalize did not wait: " + "".join(seen)[-3000:])
        child.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        for line in child.stderr:  # finalize's warning: what is kept, and the command that sends it
            seen.append(line)
            if "could not be delivered" in line:
                break
        returned_after = time.monotonic() - interrupted
        _, rest = child.communicate(timeout=120)  # then Lightning exits (the interpreter takes seconds to end)
    finally:
        gate.down()
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=60)
    stderr = "".join(seen) + rest
    assert returned_after < 5, f"the second Ctrl-C left finalize waiting {returned_after:.0f} s"  # it was 60 s
    assert child.returncode == 1  # Lightning's exit after a Ctrl-C
    (spill,) = (tmp_path / "tracklight-spill").glob("mlflow-*.jsonl")
    assert f"python -m tracklight.delivery replay {spill}" in stderr
    kept = [json.loads(line) for line in spill.read_text().splitlines()[1:]]
    # Lightning finalizes with "failed"; metrics that were in flight when the Ctrl-C came may be kept after it
    statuses = [item for item in kept if item.get("kind") == "status"]
    assert statuses and statuses[-1]["status"] == "FAILED", kept[-5:]
    assert any(item.get("key") == "train_loss" for item in kept)
