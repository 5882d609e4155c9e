"""``self.log`` overhead: Lightning's own path against tracklight's opt-in, same module, same run.

A LightningModule logs 10 values per training step with ``on_step=True, on_epoch=True``. Each variant
runs the same steps; the overhead per call is ``(step time with logging - step time without) / 10``.
The variants run interleaved, several rounds, and each variant's fastest round counts: load from other
processes only ever adds time, and tracklight's overhead is small enough that noise would otherwise swamp
it. A second measurement does the same for the plain-loop :class:`~tracklight.reducer.MetricReducer`.

Run:
    python benchmarks/selflog.py [--steps 400] [--rounds 11] [--calls-per-step 10] [--wall]
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

#: CPU time of the training thread: other processes on a shared machine barely move it, and on CPU the
#: training thread never waits for a device. ``--wall`` switches to wall-clock time.
clock = time.thread_time


def _module_class() -> Any:
    import lightning.pytorch as pl
    import torch

    class Module(pl.LightningModule):
        def __init__(self, calls: int) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(8, 1)
            self.calls = calls
            self.names = [f"metric_{i}" for i in range(calls)]

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            (x,) = batch
            loss = self.layer(x).pow(2).mean()
            for name in self.names:
                self.log(name, loss, on_step=True, on_epoch=True)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return Module


def _null_logger() -> Any:
    from tracklight.loggers import Logger

    class NullLogger(Logger):
        name = "null"
        version = 0

        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            pass

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

    return NullLogger()


def _timer() -> Any:
    import lightning.pytorch as pl

    class Timer(pl.Callback):
        """Wall time of the training epochs only: setup and teardown are the same for every variant."""

        def __init__(self) -> None:
            self.start = 0.0
            self.seconds = 0.0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.start = clock()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self.seconds += clock() - self.start

    return Timer()


def lightning_step_seconds(variant: str, steps: int, calls: int) -> float:
    """Seconds per training step of one variant: ``"none"`` (no logging), ``"lightning"`` or ``"tracklight"``."""
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from tracklight.reducer import LightningReducer

    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(steps * 4, 8)), batch_size=4)
    module = _module_class()(0 if variant == "none" else calls)
    timer = _timer()
    callbacks = [timer] + ([LightningReducer()] if variant == "tracklight" else [])
    trainer = pl.Trainer(
        max_epochs=1,
        logger=_null_logger(),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(module, data)
    return timer.seconds / steps


def plain_step_seconds(log: bool, steps: int, calls: int) -> float:
    """Seconds per step of a plain PyTorch loop, with or without ``MetricReducer.log`` calls."""
    import torch

    from tracklight.reducer import MetricReducer

    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)
    batches = list(torch.randn(steps, 4, 8))
    reducer = MetricReducer(_null_logger(), log_every_n_steps=50)
    names = [f"metric_{i}" for i in range(calls)]
    start = clock()
    reducer.start_epoch("train")
    for x in batches:
        loss = layer(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if log:
            for name in names:
                reducer.log(name, loss, on_step=True, on_epoch=True, batch_size=4)
        reducer.step()
    reducer.end_epoch()
    return (clock() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--calls-per-step", type=int, default=10)
    parser.add_argument("--wall", action="store_true", help="time with the wall clock instead of thread CPU time")
    args = parser.parse_args()
    global clock
    if args.wall:
        clock = time.perf_counter
    import torch

    torch.set_num_threads(1)  # the tiny model gains nothing from threads; one thread keeps timings steady
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    steps, calls = args.steps, args.calls_per_step
    variants = ("none", "lightning", "tracklight")
    lightning_step_seconds("tracklight", 20, calls)  # warm up imports and allocator
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    plain: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for variant in variants:
            seconds[variant].append(lightning_step_seconds(variant, steps, calls))
        for log in (False, True):
            plain[log].append(plain_step_seconds(log, steps, calls))

    step = {v: min(s) for v, s in seconds.items()}
    per_call = {v: (step[v] - step["none"]) / calls for v in ("lightning", "tracklight")}
    plain_per_call = (min(plain[True]) - min(plain[False])) / calls
    print(f"{steps} steps x {calls} self.log calls (on_step and on_epoch), fastest of {args.rounds} rounds")
    print(f"  step without logging:        {step['none'] * 1e6:9.1f} us")
    print(f"  step with Lightning's log:   {step['lightning'] * 1e6:9.1f} us")
    print(f"  step with tracklight opt-in: {step['tracklight'] * 1e6:9.1f} us")
    print(f"  Lightning  overhead per call: {per_call['lightning'] * 1e6:8.2f} us")
    print(f"  tracklight overhead per call: {per_call['tracklight'] * 1e6:8.2f} us")
    ratio = per_call["lightning"] / per_call["tracklight"] if per_call["tracklight"] > 0 else float("inf")
    print(f"  ratio (Lightning / tracklight): {ratio:.1f}x")
    print(
        f"plain loop: {min(plain[False]) * 1e6:.1f} us per step without logging, "
        f"MetricReducer overhead {plain_per_call * 1e6:.2f} us per call"
    )


if __name__ == "__main__":
    main()
