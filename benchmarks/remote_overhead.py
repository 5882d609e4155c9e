"""What each remote logger costs the training thread: tracklight against Lightning's logger of the same name.

Part 1, per backend: ``--calls`` calls of ``log_metrics`` with ``--keys`` float values each (what Lightning's
Trainer passes), the training thread's CPU time (``time.thread_time``) and wall time per call, for
tracklight's logger and for the anchor in the same run: Lightning's ``WandbLogger``, ``CometLogger`` and
``MLFlowLogger``, and for Neptune (Lightning 2.6 has no ``NeptuneLogger``) the SDK's own
``run[key].append``. Every backend runs offline (W&B, Comet, Neptune) or on an SQLite store (MLflow). Each
value tracklight logged is then read back from the backend's own stored data (W&B's ``run-*.wandb`` file,
Comet's offline archive, Neptune's operation log, MLflow's ``MlflowClient``) and compared.

Part 2: a small Lightning model trained ``--steps`` steps with ``log_every_n_steps=1`` and 10 values per
step; the step time with each logger against no logger (median over ``--rounds``).

The SDKs work on their own threads and processes too: the wall time per call shows what a busy 2-core
machine adds. Compare ratios within one run, not absolute numbers across runs.

Run:
    python benchmarks/remote_overhead.py [--calls 2000] [--keys 10] [--steps 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from mlflow_overhead import make_loader, make_module  # the same small model and data

from _backends import COMET_QUIET, NEPTUNE_QUIET
from _comet_neptune_readers import comet_archives, neptune_runs  # the tests' readers of the SDKs' files
from _wandb_reader import read_runs

BACKENDS = ("wandb", "comet", "neptune", "mlflow")


def offline_environment() -> None:
    """Before anything imports an SDK: offline, quiet, no telemetry, no key that could make a run go online."""
    os.environ.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DISABLE_GIT="true",
        WANDB_DISABLE_CODE="true",
        WANDB_X_DISABLE_STATS="true",
        WANDB_X_DISABLE_MACHINE_INFO="true",
        COMET_START_ONLINE="false",
        COMET_DISABLE_AUTO_LOGGING="1",
        COMET_ERROR_TRACKING_ENABLE="false",
        NEPTUNE_MODE="offline",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
    )
    for name in ("COMET_API_KEY", "NEPTUNE_API_TOKEN", "MLFLOW_TRACKING_URI"):
        os.environ.pop(name, None)


# ---- the loggers, each with a way to end its run and read back what it stored -----------------------------


class Subject:
    """One logger under test: ``log(metrics, step)`` is what is timed; ``close()`` ends the run; ``stored()``
    returns ``{key: {step: value}}`` as the backend's own files hold it (tracklight's loggers only)."""

    def __init__(self, logger: Any, end: Callable[[], None], read: Callable[[], dict[str, dict[int, float]]]) -> None:
        self.logger = logger
        self.log = logger.log_metrics
        self._end = end
        self._read = read

    def close(self) -> float:
        """finalize (the training thread's last wait) then end the run; returns finalize's seconds."""
        started = time.perf_counter()
        self.logger.finalize("success")
        seconds = time.perf_counter() - started
        self._end()
        return seconds

    def stored(self) -> dict[str, dict[int, float]]:
        return self._read()


def _wandb_end() -> None:
    import wandb

    from tracklight.loggers.wandb import wait_until_closed

    run = wandb.run
    if run is not None:
        run.finish()
        wait_until_closed(run.settings.log_internal)


def _wandb_values(root: str, run_id: str) -> dict[str, dict[int, float]]:
    found: dict[str, dict[int, float]] = {}
    for run in read_runs(root, run_id):
        for row in run.history:
            step = row.get("trainer/global_step")
            for key, value in row.items():
                if not key.startswith(("_", "trainer/")) and isinstance(value, (int, float)):
                    found.setdefault(key, {})[int(step)] = float(value)
    return found


def _comet_end() -> None:
    import comet_ml

    running = comet_ml.get_running_experiment()
    if running is not None and not running.ended:
        running.end()


def _comet_values(directory: str, key: str) -> dict[str, dict[int, float]]:
    found: dict[str, dict[int, float]] = {}
    for archive in comet_archives(directory):
        if archive.key == key:
            for name, values in _comet_metrics(archive).items():
                found.setdefault(name, {}).update(values)
    return found


def _comet_metrics(archive: Any) -> dict[str, dict[int, float]]:
    found: dict[str, dict[int, float]] = {}
    for payload in archive.of_type("metric_msg"):
        metric = payload["metric"]
        found.setdefault(metric["metricName"], {})[int(metric["step"])] = float(metric["metricValue"])
    return found


def _neptune_values(directory: str) -> dict[str, dict[int, float]]:
    found: dict[str, dict[int, float]] = {}
    for run in neptune_runs(directory):
        for operation in run.operations:
            if operation["type"] == "LogFloats" and operation["path"][0] == "training":
                series = found.setdefault("/".join(operation["path"][1:]), {})
                for entry in operation["values"]:
                    series[int(entry["step"])] = float(entry["value"])
    return found


def _mlflow_values(uri: str, run_id: str) -> dict[str, dict[int, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    return {
        key: {metric.step: metric.value for metric in client.get_metric_history(run_id, key)}
        for key in run.data.metrics
    }


def tracklight(backend: str, workdir: str) -> Subject:
    if backend == "wandb":
        from tracklight.loggers.wandb import WandbLogger

        logger = WandbLogger(save_dir=workdir, offline=True)
        return Subject(logger, _wandb_end, lambda: _wandb_values(workdir, logger.version))
    if backend == "comet":
        from tracklight.loggers.comet import CometLogger

        logger = CometLogger(save_dir=workdir, online=False, **COMET_QUIET)
        return Subject(logger, _comet_end, lambda: _comet_values(workdir, logger.version))
    if backend == "neptune":
        from tracklight.loggers.neptune import NeptuneLogger

        os.environ["NEPTUNE_DATA_DIRECTORY"] = os.path.join(workdir, ".neptune")
        logger = NeptuneLogger(**NEPTUNE_QUIET)
        data = os.environ["NEPTUNE_DATA_DIRECTORY"]
        return Subject(logger, lambda: logger.run.stop(), lambda: _neptune_values(data))
    from tracklight.loggers.mlflow import MLFlowLogger

    # The URI explicitly (the default store's): Lightning's MLFlowLogger sets MLFLOW_TRACKING_URI for the process.
    uri = "sqlite:///" + os.path.join(workdir, "mlflow.db")
    logger = MLFlowLogger(tracking_uri=uri, save_dir=workdir)
    return Subject(logger, lambda: None, lambda: _mlflow_values(uri, logger.run_id))


def anchor(backend: str, workdir: str) -> Subject:
    if backend == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        logger = WandbLogger(save_dir=workdir, offline=True)
        return Subject(logger, _wandb_end, dict)
    if backend == "comet":
        from lightning.pytorch.loggers import CometLogger

        # Lightning turns online=False into a disabled experiment; COMET_START_ONLINE=false gives a real offline one
        logger = CometLogger(offline_directory=workdir, **COMET_QUIET)
        return Subject(logger, _comet_end, dict)
    if backend == "neptune":
        os.environ["NEPTUNE_DATA_DIRECTORY"] = os.path.join(workdir, ".neptune")
        return Subject(RawNeptune(), lambda: None, dict)
    from lightning.pytorch.loggers import MLFlowLogger

    logger = MLFlowLogger(tracking_uri="sqlite:///" + os.path.join(workdir, "lightning.db"))
    return Subject(logger, lambda: None, dict)


class RawNeptune:
    """The neptune SDK's own calls, as Lightning's last NeptuneLogger made them: ``run[key].append(value, step)``.

    Also a Lightning logger (for part 2), built on first use so that ``import`` costs nothing here.
    """

    def __init__(self) -> None:
        import neptune

        self.run = neptune.init_run(**NEPTUNE_QUIET)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.run[f"training/{key}"].append(value, step=step)

    def finalize(self, status: str) -> None:
        self.run.stop()


def raw_neptune_lightning_logger() -> Any:
    from lightning.pytorch.loggers import Logger

    class RawNeptuneLogger(Logger):
        name, version = "raw-neptune", "0"

        def __init__(self) -> None:
            super().__init__()
            self.raw = RawNeptune()

        def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
            self.raw.log_metrics(metrics, step)

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            self.raw.run["training/hyperparams"] = {key: str(value) for key, value in dict(params).items()}

        def finalize(self, status: str) -> None:
            self.raw.finalize(status)

    return RawNeptuneLogger()


# ---- part 1: the cost of one log_metrics call ----------------------------------------------------------------


def call_cost(subject: Subject, calls: int, keys: int) -> tuple[float, float, float]:
    """(CPU s per call on this thread, wall s per call, finalize s)."""
    subject.log({f"train/value_{index}": float(index) for index in range(keys)}, step=0)  # starts the run
    batches = [{f"train/value_{index}": step + index / 100 for index in range(keys)} for step in range(1, calls + 1)]
    cpu, wall = time.thread_time(), time.perf_counter()
    for step, metrics in enumerate(batches, start=1):
        subject.log(metrics, step=step)
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    return cpu / calls, wall / calls, subject.close()


def check_stored(subject: Subject, calls: int, keys: int) -> int:
    """Every value tracklight logged, read back from the backend's own data; returns how many were checked."""
    stored = subject.stored()
    checked = 0
    for index in range(keys):
        series = stored.get(f"train/value_{index}", {})
        for step in range(1, calls + 1):
            got = series.get(step)
            assert got is not None and abs(got - (step + index / 100)) < 1e-6, (index, step, got)
            checked += 1
    return checked


# ---- part 2: a Lightning Trainer, log_every_n_steps=1 --------------------------------------------------------


def trainer_logger(backend: str, kind: str, workdir: str) -> tuple[Any, Callable[[], None]]:
    if backend == "none":
        return False, lambda: None
    if kind == "tracklight":
        subject = tracklight(backend, workdir)
        return subject.logger, subject._end
    if backend == "neptune":
        os.environ["NEPTUNE_DATA_DIRECTORY"] = os.path.join(workdir, ".neptune")
        return raw_neptune_lightning_logger(), lambda: None
    subject = anchor(backend, workdir)
    return subject.logger, subject._end


def step_time(backend: str, kind: str, workdir: str, steps: int, warmup: int) -> tuple[float, float]:
    """(wall s per step, training-thread CPU s per step), after ``warmup`` steps."""
    from lightning.pytorch import Callback, Trainer

    class StepClock(Callback):
        start = end = cpu_start = cpu_end = 0.0

        def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == warmup:
                self.start, self.cpu_start = time.perf_counter(), time.thread_time()

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == steps:
                self.end, self.cpu_end = time.perf_counter(), time.thread_time()

    logger, end = trainer_logger(backend, kind, workdir)
    clock = StepClock()
    trainer = Trainer(
        max_steps=steps,
        max_epochs=1,
        logger=logger,
        log_every_n_steps=1,
        callbacks=[clock],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=workdir,
    )
    trainer.fit(make_module(10), make_loader(steps))
    if backend != "none" and kind == "tracklight":
        report = logger.delivery_report
        assert report is None or report.complete, report
    end()
    measured = steps - warmup
    return (clock.end - clock.start) / measured, (clock.cpu_end - clock.cpu_start) / measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--parts", default="1,2", help="1: the cost of a call, 2: the Trainer's step time")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    backends = [name for name in args.backends.split(",") if name]
    offline_environment()

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "mlflow", "comet_ml", "neptune", "wandb", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)

    cost: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    checked: dict[str, int] = {}
    steps: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        for round_number in range(args.rounds if "1" in parts else 0):
            for backend in backends:
                for kind, make in (("tracklight", tracklight), ("anchor", anchor)):
                    folder = tempfile.mkdtemp(dir=workdir)
                    subject = make(backend, folder)
                    cost.setdefault((backend, kind), []).append(call_cost(subject, args.calls, args.keys))
                    if kind == "tracklight":
                        checked[backend] = check_stored(subject, args.calls, args.keys)
            print(f"round {round_number + 1}: part 1 done", file=sys.stderr, flush=True)
        for round_number in range(args.rounds if "2" in parts else 0):
            configurations = [("none", "none")] + [(b, k) for b in backends for k in ("tracklight", "anchor")]
            for backend, kind in configurations:
                measured = step_time(backend, kind, tempfile.mkdtemp(dir=workdir), args.steps, args.warmup)
                steps.setdefault((backend, kind), []).append(measured)
            print(f"round {round_number + 1}: part 2 done", file=sys.stderr, flush=True)
        os.chdir("/")

    anchors = {"wandb": "Lightning WandbLogger", "comet": "Lightning CometLogger", "mlflow": "Lightning MLFlowLogger"}
    if "1" in parts:
        print(f"\n## log_metrics, {args.keys} float values, {args.calls} calls, median of {args.rounds} rounds\n")
        print(
            "| backend | tracklight CPU us/call | wall us/call | finalize s | anchor | CPU us/call | wall us/call | "
            "CPU ratio | values read back |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for backend in backends:
            ours = [statistics.median(column) for column in zip(*cost[(backend, "tracklight")], strict=True)]
            theirs = [statistics.median(column) for column in zip(*cost[(backend, "anchor")], strict=True)]
            print(
                f"| {backend} | {ours[0] * 1e6:.1f} | {ours[1] * 1e6:.1f} | {ours[2]:.2f} | "
                f"{anchors.get(backend, 'neptune SDK run[key].append')} | {theirs[0] * 1e6:.1f} | "
                f"{theirs[1] * 1e6:.1f} | {theirs[0] / ours[0]:.1f}x | {checked[backend]} of {args.calls * args.keys} |"
            )
    if "2" in parts:
        base, cpu_base = (statistics.median(column) for column in zip(*steps[("none", "none")], strict=True))
        print(f"\n## Trainer, log_every_n_steps=1, 10 values per step, {args.steps} steps, median of {args.rounds}\n")
        print("| logger | ms/step | over no logger | training-thread CPU ms/step | over no logger |")
        print("|---|---|---|---|---|")
        print(f"| no logger | {base * 1e3:.3f} | | {cpu_base * 1e3:.3f} | |")
        for backend in backends:
            for kind in ("tracklight", "anchor"):
                wall, cpu = (statistics.median(column) for column in zip(*steps[(backend, kind)], strict=True))
                name = f"tracklight {backend}" if kind == "tracklight" else anchors.get(backend, "neptune SDK (raw)")
                print(
                    f"| {name} | {wall * 1e3:.3f} | {100 * (wall / base - 1):+.1f}% | {cpu * 1e3:.3f} | "
                    f"{100 * (cpu / cpu_base - 1):+.1f}% |"
                )


if __name__ == "__main__":
    main()
