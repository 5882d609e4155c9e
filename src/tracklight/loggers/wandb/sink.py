"""The W&B sink of background delivery: history rows, config updates and artifacts, handed to one run in order.

Runs on the delivery worker thread. ``WandbLogger`` makes the run and the W&B objects (``wandb.Image``,
``wandb.Artifact``...) on the calling thread; here they are only handed to ``run.log``,
``run.config.update`` and ``run.log_artifact``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from tracklight.loggers._sdk_delivery import SdkSink

__all__ = ["CLOSE_TIMEOUT", "WandbSink", "run_folder", "wait_until_closed"]

_STREAM_CLOSED = '"stream: all finished"'
#: Seconds :func:`wait_until_closed` waits for W&B to write out a finished run.
CLOSE_TIMEOUT = 10.0


class WandbSink(SdkSink):
    """Delivers items of kind ``row`` (one ``run.log`` each), ``hyperparameter`` (a config update) and
    ``checkpoint`` (an artifact) to :attr:`run`.

    ``run`` is set by the logger whenever it starts or resumes the run; items queued before that go to
    the run that is current when they are handed over.
    """

    sdk = "wandb"
    limits = {"row": 100, "hyperparameter": 100}

    def __init__(self) -> None:
        self.run: Any = None
        #: ``(rows handed to the run, W&B's step for the next row)`` after the last batch (one tuple, so the
        #: training thread reads a consistent pair): ``WandbLogger.state_dict`` works out the W&B step of its last
        #: row from it without asking W&B (``run.step`` is a round trip to W&B's service).
        self.progress: tuple[int, int | None] = (0, None)
        self._rows = 0

    def send(self, items: list[dict[str, Any]]) -> None:
        before = self._rows
        try:
            super().send(items)
        finally:
            if self._rows != before:
                self.progress = (self._rows, _step_of(self.run))

    def describe(self) -> str:
        run = self.run
        if run is None:
            return "W&B"
        mode = getattr(getattr(run, "settings", None), "mode", None)
        return f"W&B run {run.id}" + (f" ({mode})" if mode else "")

    def send_one(self, item: dict[str, Any]) -> None:
        kind = item["kind"]
        if kind == "row":
            # Never W&B's `step=`: its own step then only grows, so it drops nothing; the x-axis is the row's
            # trainer/global_step (WandbLogger.STEP_METRIC).
            self.run.log(item["row"])
            self._rows += 1
        elif kind == "hyperparameter":
            self.run.config.update(item["config"], allow_val_change=True)
        elif kind == "checkpoint":
            self.run.log_artifact(item["artifact"], aliases=item["aliases"])
        else:
            raise ValueError(f"WandbSink got an item of unknown kind {kind!r}")


def _step_of(run: Any) -> int | None:
    """W&B's step for the run's next row, or ``None`` when the SDK cannot say (a stubbed SDK, a closed run)."""
    try:
        step = run.step
    except Exception:
        return None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def run_folder(run: Any) -> str | None:
    """The folder W&B keeps a run in (``.../wandb/offline-run-<time>-<id>``), which ``wandb sync`` takes."""
    files = getattr(run, "dir", None)
    return os.path.dirname(files) if isinstance(files, str) and files else None


def wait_until_closed(internal_log: str, timeout: float = CLOSE_TIMEOUT) -> bool:
    """Wait until W&B's service has closed a finished run's files; ``False`` if it took over ``timeout`` s.

    ``run.finish()`` returns once the exit record is handled, but the service writes the run's
    ``run-<id>.wandb`` file through a buffer it flushes when it closes the run's stream, a moment
    later. Its internal log says when that happened.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(internal_log, encoding="utf-8", errors="replace") as handle:
                if _STREAM_CLOSED in handle.read():
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
