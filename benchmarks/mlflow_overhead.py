"""Training step time with no logger, with Lightning's MLFlowLogger and with tracklight's, one local server.

A small Lightning model logs 10 values per step with ``log_every_n_steps=10``, against one real
``mlflow server`` on 127.0.0.1 (SQLite backend) started by this script. Lightning's logger sends one
HTTP request from the training loop at every logging step; tracklight's queues the values and a
background worker sends them. Configurations run in turns (``--rounds`` times each) and the median
step time of each is reported, with its overhead over no logger. The target is tracklight at most 10%
over no logger.

The step time is measured inside training (after ``--warmup`` steps), so setup is excluded; the CPU
time this process spent per step in the same window (training thread plus tracklight's worker; the
server is another process) and the total ``fit`` time, which includes run creation and tracklight's
final wait for delivery, are printed too. On a busy machine single rounds vary a lot: compare medians.

Run:
    python benchmarks/mlflow_overhead.py [--steps 600] [--rounds 3]
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
from pathlib import Path
from typing import Any

# Before anything imports mlflow (its telemetry client starts at import): no calls to MLflow's servers.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _mlflow_server import MlflowServer  # the tests' helper: one server subprocess


def make_module(values_per_step: int) -> Any:
    import torch
    from lightning.pytorch import LightningModule

    class SmallModel(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train/loss", loss)
            for index in range(values_per_step - 1):
                self.log(f"train/value_{index}", loss.detach() * index)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return SmallModel()


def make_loader(steps: int) -> Any:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(steps * 16, 32, generator=generator), torch.randn(steps * 16, 1, generator=generator)
    )
    return DataLoader(data, batch_size=16)


def run_once(kind: str, server: MlflowServer, workdir: str, steps: int, warmup: int) -> tuple[float, float, float]:
    """One ``fit``: (mean step time after warmup, this process's CPU time per step then, total fit time), in s."""
    from lightning.pytorch import Callback, Trainer

    class StepClock(Callback):
        def __init__(self) -> None:
            self.start = self.end = self.cpu_start = self.cpu_end = 0.0

        def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == warmup:
                self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == steps:
                self.end, self.cpu_end = time.perf_counter(), time.process_time()

    experiment = f"bench-{kind}-{time.time_ns()}"
    if kind == "none":
        logger: Any = False
    elif kind == "lightning":
        from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger

        logger = LightningMLFlowLogger(experiment_name=experiment, tracking_uri=server.url)
    else:
        from tracklight.loggers.mlflow import MLFlowLogger

        logger = MLFlowLogger(experiment_name=experiment, tracking_uri=server.url, save_dir=workdir)
    clock = StepClock()
    trainer = Trainer(
        max_steps=steps,
        max_epochs=1,
        logger=logger,
        log_every_n_steps=10,
        callbacks=[clock],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=workdir,
    )
    started = time.perf_counter()
    trainer.fit(make_module(10), make_loader(steps))
    total = time.perf_counter() - started
    if kind == "tracklight":
        report = logger.delivery_report
        assert report is not None and report.complete, report
        assert report.delivered["metric"] >= (steps // 10) * 10, report
    measured = steps - warmup
    return (clock.end - clock.start) / measured, (clock.cpu_end - clock.cpu_start) / measured, total


def call_cost(kind: str, server: MlflowServer, workdir: str, calls: int = 200) -> float:
    """Seconds the training thread spends in one ``log_metrics`` + ``save`` of 11 values, as the Trainer calls them."""
    experiment = f"calls-{kind}-{time.time_ns()}"
    if kind == "lightning":
        from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger

        logger: Any = LightningMLFlowLogger(experiment_name=experiment, tracking_uri=server.url)
    else:
        from tracklight.loggers.mlflow import MLFlowLogger

        logger = MLFlowLogger(experiment_name=experiment, tracking_uri=server.url, save_dir=workdir)
    metrics = {f"train/value_{index}": 0.5 * index for index in range(10)}
    metrics["epoch"] = 0
    logger.log_metrics(metrics, step=0)  # creates the run: not part of the steady state
    _ = logger.version
    start = time.perf_counter()
    for step in range(1, calls + 1):
        logger.log_metrics(metrics, step=step)
        logger.save()
    elapsed = (time.perf_counter() - start) / calls
    logger.finalize("success")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import torch

    # One intra-op thread: a model this small gains nothing from more, and on a busy machine thread
    # contention would swamp the difference being measured.
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

    kinds = ("none", "lightning", "tracklight")
    step_times: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu_times: dict[str, list[float]] = {kind: [] for kind in kinds}
    fit_times: dict[str, list[float]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as workdir, MlflowServer(Path(workdir) / "server") as server:
        print(f"mlflow server at {server.url}; {args.steps} steps, 10 values per step, log_every_n_steps=10")
        costs = {kind: call_cost(kind, server, workdir) for kind in ("lightning", "tracklight")}
        for kind in kinds:  # imports and first-call costs, outside the measurement
            run_once(kind, server, workdir, 60, 10)
        for round_number in range(args.rounds):
            for kind in kinds:
                step, cpu, total = run_once(kind, server, workdir, args.steps, args.warmup)
                step_times[kind].append(step)
                cpu_times[kind].append(cpu)
                fit_times[kind].append(total)
                print(
                    f"  round {round_number + 1} {kind:>10}: {step * 1e3:7.3f} ms/step "
                    f"(cpu {cpu * 1e3:6.3f} ms/step), fit {total:6.2f} s"
                )

    base = statistics.median(step_times["none"])
    print("\nmedian over rounds")
    cpu_base = statistics.median(cpu_times["none"])
    print(f"{'logger':>12} {'ms/step':>9} {'overhead':>9} {'cpu ms/step':>12} {'cpu over':>9} {'fit s':>7}")
    for kind in kinds:
        step, cpu = statistics.median(step_times[kind]), statistics.median(cpu_times[kind])
        print(
            f"{kind:>12} {step * 1e3:9.3f} {100 * (step / base - 1):+8.1f}% {cpu * 1e3:12.3f} "
            f"{100 * (cpu / cpu_base - 1):+8.1f}% {statistics.median(fit_times[kind]):7.2f}"
        )
    print("\ntraining-thread time of one log_metrics + save (11 values), the call the Trainer makes every 10 steps:")
    for kind, cost in costs.items():
        print(f"{kind:>12} {cost * 1e6:10.1f} us")
    tracklight, lightning = statistics.median(step_times["tracklight"]), statistics.median(step_times["lightning"])
    print(f"\nLightning MLFlowLogger / tracklight MLFlowLogger step time: {lightning / tracklight:.2f}x")
    print(f"tracklight over no logger: {100 * (tracklight / base - 1):+.1f}% (target: at most +10%)")


if __name__ == "__main__":
    main()
