"""W&B, Comet and Neptune on background delivery, with the real SDKs offline: order, faults, backpressure, finalize.

Every SDK logger queues values on the calling thread and a worker hands them to the SDK. Each backend
appends one :class:`Sdk` to ``SDKS``: how to make a logger, how a user calls the SDK directly, which SDK
method the worker calls once per logged value (wrapped only to inject a fault: slow, or raising), and
how to read back, in stored order, what reached the SDK's own files. The tests then run unchanged.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _backends import COMET_QUIET, NEPTUNE_QUIET, backend_fixtures
from _comet_neptune_readers import comet_archives, neptune_runs
from _wandb_reader import end_run, read_runs
from tracklight import TracklightWarning
from tracklight.loggers import CometLogger, NeptuneLogger, WandbLogger

#: What a backend stored, in order: (key, value); media entries have the value None.
Events = list[tuple[str, Any]]


@dataclasses.dataclass(frozen=True)
class Sdk:
    id: str
    #: A logger writing offline under the given directory.
    make: Callable[..., Any]
    #: The user's own call through ``logger.experiment``: log ``value`` under ``key`` at ``step``.
    user_log: Callable[[Any, str, float, int], None]
    #: Wrap the SDK method the worker calls once per logged value: ``before(args)`` runs first.
    wrap: Callable[[Any, pytest.MonkeyPatch, Callable[[tuple[Any, ...]], None]], None]
    #: Everything the logger's run stored, in order, once the run was ended (as at exit).
    read: Callable[[Any], Events]


# ---- W&B ----------------------------------------------------------------------------------------------


def _wandb_wrap(logger: Any, monkeypatch: pytest.MonkeyPatch, before: Callable[[tuple[Any, ...]], None]) -> None:
    run = logger.experiment
    log = run.log

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        before(args)
        return log(*args, **kwargs)

    monkeypatch.setattr(run, "log", wrapped)


def _wandb_read(logger: Any) -> Events:
    end_run()
    events: Events = []
    for run in read_runs(logger.save_dir, logger.version):
        for row in run.history:
            for key, value in row.items():
                if not key.startswith("_") and key != WandbLogger.STEP_METRIC:
                    events.append((key, value if isinstance(value, (int, float)) else None))
    return events


# ---- Comet --------------------------------------------------------------------------------------------


def _comet_wrap(logger: Any, monkeypatch: pytest.MonkeyPatch, before: Callable[[tuple[Any, ...]], None]) -> None:
    experiment = logger.experiment
    log_metrics = experiment.log_metrics

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        before(args)
        return log_metrics(*args, **kwargs)

    monkeypatch.setattr(experiment, "log_metrics", wrapped)


def _comet_read(logger: Any) -> Events:
    events: Events = []
    for archive in comet_archives(logger.save_dir):
        for message in archive.messages:
            payload = message["payload"]
            if message["type"] == "metric_msg":
                events.append((payload["metric"]["metricName"], payload["metric"]["metricValue"]))
            elif message["type"] == "file_upload" and payload["upload_type"] == "text-sample":
                events.append((payload["metadata"]["key"], None))
    return events


# ---- Neptune ------------------------------------------------------------------------------------------


def _neptune_wrap(logger: Any, monkeypatch: pytest.MonkeyPatch, before: Callable[[tuple[Any, ...]], None]) -> None:
    from neptune.handler import Handler

    append = Handler.append

    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        before(args)
        return append(self, *args, **kwargs)

    monkeypatch.setattr(Handler, "append", wrapped)


def _neptune_read(logger: Any) -> Events:
    events: Events = []
    for run in neptune_runs(logger.save_dir):
        for operation in run.operations:
            if operation["type"] in ("LogFloats", "LogStrings") and operation["path"][0] == "training":
                key = "/".join(operation["path"][1:])
                numeric = operation["type"] == "LogFloats"
                events.extend((key, entry["value"] if numeric else None) for entry in operation["values"])
    return events


SDKS: list[Sdk] = [
    Sdk(
        "wandb",
        lambda root, **kw: WandbLogger(save_dir=root, offline=True, **kw),
        lambda logger, key, value, step: logger.experiment.log({key: value}),
        _wandb_wrap,
        _wandb_read,
    ),
    Sdk(
        "comet",
        lambda root, **kw: CometLogger(save_dir=str(root), online=False, **COMET_QUIET, **kw),
        lambda logger, key, value, step: logger.experiment.log_metric(key, value, step=step),
        _comet_wrap,
        _comet_read,
    ),
    Sdk(
        "neptune",
        lambda root, **kw: NeptuneLogger(mode="offline", **NEPTUNE_QUIET, **kw),
        lambda logger, key, value, step: logger.experiment[f"training/{key}"].append(value, step=step),
        _neptune_wrap,
        _neptune_read,
    ),
]


@pytest.fixture(params=SDKS, ids=[sdk.id for sdk in SDKS])
def sdk(request: pytest.FixtureRequest) -> Sdk:
    return request.param


# Offline, files under tmp_path, no network, every run ended afterwards (as at exit); W&B's service once.
_every_backend, root, isolated, wandb_service = backend_fixtures()


def values_of(events: Events, key: str) -> list[Any]:
    return [value for name, value in events if name == key]


# ---- order ----------------------------------------------------------------------------------------------


def test_order_is_kept_across_log_metrics_media_and_experiment_calls(sdk: Sdk, root: Path) -> None:
    logger = sdk.make(root)
    expected: list[str] = []
    for step in range(30):
        logger.log_metrics({"a": float(step)}, step=step)
        expected.append("a")
        if step % 3 == 0:
            logger.log_text("t", f"text {step}", step=step)
            expected.append("t")
        if step % 5 == 0:
            sdk.user_log(logger, "user", float(step), step)  # the user's own SDK call, after what was queued
            expected.append("user")
    logger.finalize("success")
    events = [(key, value) for key, value in sdk.read(logger) if key in ("a", "t", "user")]
    assert [key for key, _ in events] == expected
    assert values_of(events, "a") == [float(step) for step in range(30)]
    assert values_of(events, "user") == [float(step) for step in range(0, 30, 5)]


def test_fit_then_test_is_one_run(sdk: Sdk, root: Path, tiny_model: type, make_trainer: Any) -> None:
    class WithTest(tiny_model):  # type: ignore[misc, valid-type]
        def test_step(self, batch: Any, batch_idx: int) -> None:
            self.log("test_loss", float(batch_idx))

        def test_dataloader(self) -> Any:
            return self.val_dataloader()

    before = set(threading.enumerate())
    logger = sdk.make(root)
    trainer = make_trainer(logger=logger)
    model = WithTest()
    trainer.fit(model)
    trainer.test(model, verbose=False)
    # finalize (after each stage) leaves no thread of tracklight's behind; the SDK's own run on until exit
    assert [t.name for t in set(threading.enumerate()) - before if t.name.startswith("tracklight")] == []
    events = sdk.read(logger)  # a reader sees one run only (W&B and Comet by id; Neptune: the data directory)
    assert len(values_of(events, "train_loss")) == 4 and len(values_of(events, "test_loss")) == 1


# ---- faults in the SDK ------------------------------------------------------------------------------------


def test_an_sdk_error_in_the_worker_is_reported_once_and_training_goes_on(
    sdk: Sdk, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = sdk.make(root)
    calls = []

    def fail_some(args: tuple[Any, ...]) -> None:
        calls.append(args)
        if len(calls) in (4, 8):  # the values of steps 3 and 7
            raise RuntimeError("the SDK broke")

    sdk.wrap(logger, monkeypatch, fail_some)
    with pytest.warns(TracklightWarning) as caught:
        for step in range(10):
            logger.log_metrics({"a": float(step)}, step=step)  # never raises here
        logger.finalize("success")
    messages = [str(warning.message) for warning in caught]
    assert [message for message in messages if "could not take" in message] == [  # said once, when it happened
        next(message for message in messages if "RuntimeError: the SDK broke" in message)
    ]
    report = logger.delivery_report
    assert report.rejected == {"row": 2}
    assert any(str(report) in message and "2 rows were refused" in message for message in messages)  # finalize
    kept = Path(report.rejected_path).read_text().splitlines()
    assert len(kept) == 2 and all("the SDK broke" in line for line in kept)
    assert values_of(sdk.read(logger), "a") == [float(step) for step in range(10) if step not in (3, 7)]


def test_a_slow_sdk_slows_logging_down_instead_of_growing_memory(
    sdk: Sdk, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracklight.loggers import _sdk_delivery

    monkeypatch.setattr(_sdk_delivery, "MAX_PENDING", 20)
    logger = sdk.make(root)
    sdk.wrap(logger, monkeypatch, lambda args: time.sleep(0.002))
    backlog = []
    for step in range(300):
        logger.log_metrics({"a": float(step)}, step=step)
        backlog.append(logger._remote.backlog)
    logger.finalize("success")
    assert max(backlog) <= 20  # the queue in memory never grew past its bound: logging waited instead
    assert logger.delivery_report.complete
    assert values_of(sdk.read(logger), "a") == [float(step) for step in range(300)]  # nothing dropped


# ---- finalize -------------------------------------------------------------------------------------------


def test_finalize_prints_progress_while_it_drains(
    sdk: Sdk, root: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    logger = sdk.make(root)
    sdk.wrap(logger, monkeypatch, lambda args: time.sleep(0.1))
    for step in range(35):  # 3.5 s of SDK time, so finalize waits over 2 s
        logger.log_metrics({"a": float(step)}, step=step)
    logger.finalize("success")
    assert logger.delivery_report.complete
    err = capfd.readouterr().err
    assert "still to deliver to" in err and "waiting up to 60 s" in err
    assert len(values_of(sdk.read(logger), "a")) == 35


def test_finalize_says_what_is_left_and_how_to_send_it(
    sdk: Sdk, root: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    logger = sdk.make(root, delivery_timeout=0.3)
    sdk.wrap(logger, monkeypatch, lambda args: time.sleep(0.1))
    for step in range(20):
        logger.log_metrics({"a": float(step)}, step=step)
    left = r"still queued .*still being handed to the SDK in the background"
    hint = r"What the SDK has is kept by it: (wandb sync|comet upload|neptune sync)"
    with pytest.warns(TracklightWarning, match=rf"{left}.*{hint}"):
        logger.finalize("success")
    assert logger.delivery_report.queued  # what was left when finalize gave up
    # The worker goes on; the next wait (here, experiment) gets the rest there, in order.
    logger._remote.timeout = 60
    _ = logger.experiment
    assert values_of(sdk.read(logger), "a") == [float(step) for step in range(20)]


EXIT_SCRIPT = """
import sys, time, types
import pytest
from test_sdk_delivery import SDKS

sdk = next(candidate for candidate in SDKS if candidate.id == sys.argv[1])
logger = sdk.make(sys.argv[2])
sdk.wrap(logger, pytest.MonkeyPatch(), lambda args: time.sleep(0.005))  # a slow SDK: 1 s for what follows
for step in range(200):
    logger.log_metrics({"a": float(step)}, step=step)
print("LOGGED", logger.save_dir, logger.version, logger._remote.backlog > 0, flush=True)
# no finalize: the process ends with values still queued, and the SDK ends its run in its exit hook
"""


def test_values_still_queued_at_exit_reach_the_run_before_the_sdk_ends_it(sdk: Sdk, root: Path) -> None:
    import os
    import subprocess
    import types

    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
    env.pop("WANDB_SERVICE", None)  # a W&B service of its own, as a script has, not this process's
    result = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, sdk.id, str(root)], capture_output=True, text=True, timeout=240, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("LOGGED ")]
    save_dir, version, queued = line.split(" ")[1:]
    assert queued == "True"  # the exit came while values were still queued
    logged = types.SimpleNamespace(save_dir=save_dir, version=version)
    assert values_of(sdk.read(logged), "a") == [float(step) for step in range(200)]
