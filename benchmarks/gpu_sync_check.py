"""No device-to-host synchronisation per step: the opt-in on CUDA, checked by CUDA's own sync detector.

200 training steps of a LightningModule that logs 10 values per step (tensors with on_step and on_epoch,
one with prog_bar, one Python float, one integer tensor) with ``log_every_n_steps=50``:

1. ``torch.cuda.set_sync_debug_mode("warn")`` over the whole run, for tracklight's opt-in and for
   Lightning's own path: every synchronising CUDA call is recorded with the training step it happened
   in. tracklight's must all fall on the logged steps (49, 99, 149, 199) or at the epoch end.
2. ``torch.cuda.set_sync_debug_mode("error")`` over the whole run of the opt-in, relaxed to "warn" only
   inside the two places allowed to move values to the host (sending a logged step to the loggers, and
   the epoch end): any other synchronisation raises and fails the check.

3. With ``--time-steps N``: wall time per training step of the same module, Lightning's ``self.log``
   against the opt-in, interleaved over ``--rounds`` rounds (the first is warm-up; the fastest of the
   rest counts), the device synchronised at both ends of the epoch.

Run (needs a CUDA device; ``--allow-cpu`` only checks that the script runs):
    python benchmarks/gpu_sync_check.py [--steps 200] [--time-steps 2000 --rounds 4] [--out results.json]

Exit status 0 when both checks pass. The summary is printed and, with ``--out`` (or ``$OUT`` set),
written as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import traceback
import warnings
from collections.abc import Iterator
from typing import Any

from selflog import _null_logger  # same folder: a logger that keeps nothing, shared with the benchmark

LOG_EVERY = 50
EPOCH_END = "epoch_end"


def _parts(device: str) -> tuple[type, type]:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class StepClock(pl.Callback):
        """Tells the recorder which training step is running."""

        step: Any = "setup"

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            StepClock.step = trainer.global_step

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            StepClock.step = EPOCH_END

    class Module(pl.LightningModule):
        def __init__(self, steps: int) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(32, 1)
            self.steps = steps

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            (x,) = batch
            loss = self.layer(x).pow(2).mean()
            for i in range(8):
                self.log(f"m{i}", loss + i, on_step=True, on_epoch=True, prog_bar=i == 0)
            self.log("lr", 0.01)  # a Python float: Lightning makes a CUDA tensor of it (a sync) every step
            self.log("count", torch.ones((), device=self.device, dtype=torch.int64) * batch_idx, on_epoch=True)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

        def train_dataloader(self) -> Any:
            data = torch.randn(self.steps * 8, 32, device=device)  # on the device: no host batches to copy
            return DataLoader(TensorDataset(data), batch_size=8)

    return Module, StepClock


def _trainer(callbacks: list[Any], device: str) -> Any:
    import lightning.pytorch as pl

    return pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_epochs=1,
        logger=_null_logger(),
        callbacks=callbacks,
        log_every_n_steps=LOG_EVERY,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )


@contextlib.contextmanager
def _sync_mode(mode: str) -> Iterator[None]:
    import torch

    if not torch.cuda.is_available():
        yield
        return
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode(mode)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def record_syncs(opt_in: bool, steps: int, device: str) -> dict[str, Any]:
    """Run with sync debug mode "warn"; return the steps at which synchronising calls happened."""
    from tracklight.reducer import LightningReducer

    module_class, clock = _parts(device)
    clock.step = "setup"
    callbacks = [clock(), *([LightningReducer()] if opt_in else [])]
    trainer = _trainer(callbacks, device)
    seen: dict[str, int] = {}
    where: dict[str, str] = {}
    original = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if "synchroniz" in str(message).lower():
            key = str(clock.step)
            seen[key] = seen.get(key, 0) + 1
            where.setdefault(key, "".join(traceback.format_stack(limit=8)[:-2]))
        else:
            original(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        try:
            with _sync_mode("warn"):
                trainer.fit(module_class(steps))
        finally:
            warnings.showwarning = original
    training = {k: v for k, v in seen.items() if k != "setup"}
    return {"syncs_by_step": training, "first_stack_by_step": {k: where[k] for k in list(training)[:3]}}


def strict_run(steps: int, device: str) -> dict[str, Any]:
    """Run the opt-in with sync debug mode "error", relaxed only where values may move to the host."""
    from tracklight.reducer import LightningReducer
    from tracklight.reducer._lightning_loop import ReducerConnector

    module_class, clock = _parts(device)
    allowed: list[str] = []
    patched = {}
    for name in ("log_metrics", "on_epoch_end", "update_train_epoch_metrics"):
        original = getattr(ReducerConnector, name)
        patched[name] = original

        @functools.wraps(original)
        def relaxed(self: Any, *args: Any, __original: Any = original, __name: str = name, **kwargs: Any) -> Any:
            allowed.append(f"{__name}@{clock.step}")
            with _sync_mode("warn"):
                return __original(self, *args, **kwargs)

        setattr(ReducerConnector, name, relaxed)
    trainer = _trainer([clock(), LightningReducer()], device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # "error" from the first training batch on: setup (moving the model, Lightning's checks) may sync
            stack = contextlib.ExitStack()

            class Strict(clock):  # type: ignore[misc, valid-type]
                def on_train_start(self, trainer: Any, pl_module: Any) -> None:
                    stack.enter_context(_sync_mode("error"))

                def on_train_end(self, trainer: Any, pl_module: Any) -> None:
                    stack.close()

            trainer.callbacks.insert(0, Strict())
            try:
                trainer.fit(module_class(steps))
                error = None
            except RuntimeError as err:
                error = f"step {clock.step}: {err}\n{traceback.format_exc(limit=12)}"
            finally:
                stack.close()
    finally:
        for name, original in patched.items():
            setattr(ReducerConnector, name, original)
    return {"error": error, "host_transfers_allowed_at": sorted(set(allowed))}


def step_microseconds(opt_in: bool, steps: int, device: str) -> float:
    """Wall time per training step (device synchronised at both ends of the epoch), in microseconds."""
    import time

    import torch

    from tracklight.reducer import LightningReducer

    module_class, clock = _parts(device)

    class EpochTimer(clock):  # type: ignore[misc, valid-type]
        seconds = 0.0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            EpochTimer.seconds = time.perf_counter() - self.start

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer([EpochTimer(), *([LightningReducer()] if opt_in else [])], device).fit(module_class(steps))
    return EpochTimer.seconds / steps * 1e6


def time_steps(steps: int, rounds: int, device: str) -> dict[str, Any]:
    """Lightning's path and the opt-in, interleaved; the first round warms up, the fastest other counts."""
    rounds_us: dict[str, list[float]] = {"lightning": [], "tracklight": []}
    for _ in range(rounds):
        for variant, runs in rounds_us.items():
            runs.append(step_microseconds(variant == "tracklight", steps, device))
    best = {variant: min(runs[1:] or runs) for variant, runs in rounds_us.items()}
    return {
        "steps": steps,
        "us_per_step_by_round": {k: [round(v) for v in runs] for k, runs in rounds_us.items()},
        "us_per_step_best": {k: round(v) for k, v in best.items()},
        "speedup": round(best["lightning"] / best["tracklight"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default=None)
    parser.add_argument("--time-steps", type=int, default=0, help="also time this many steps per round (0: no)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of the timing, the first a warm-up")
    parser.add_argument("--allow-cpu", action="store_true", help="run on CPU (no sync detection): a dry run")
    args = parser.parse_args()
    import logging

    import torch

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if torch.cuda.is_available():
        device = "cuda"
    elif args.allow_cpu:
        device = "cpu"
    else:
        print("No CUDA device: nothing to check (use --allow-cpu for a dry run).")
        return 2

    logged = {str(step) for step in range(LOG_EVERY - 1, args.steps, LOG_EVERY)} | {EPOCH_END}
    ours = record_syncs(True, args.steps, device)
    theirs = record_syncs(False, args.steps, device)
    strict = strict_run(args.steps, device)
    outside = sorted(set(ours["syncs_by_step"]) - logged, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0))
    summary = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run: no sync detection)",
        "torch": torch.__version__,
        "steps": args.steps,
        "log_every_n_steps": LOG_EVERY,
        "tracklight_syncs_by_step": ours["syncs_by_step"],
        "tracklight_syncs_outside_logged_steps": outside,
        "tracklight_first_stacks": ours["first_stack_by_step"] if outside else {},
        "lightning_steps_with_syncs": len([s for s in theirs["syncs_by_step"] if s.isdigit()]),
        "lightning_syncs_total": sum(theirs["syncs_by_step"].values()),
        "strict_error_mode": strict,
        "passed": not outside and strict["error"] is None,
    }
    if args.time_steps:
        summary["step_time"] = time_steps(args.time_steps, args.rounds, device)
    print(json.dumps({k: v for k, v in summary.items() if k != "tracklight_first_stacks"}, indent=2))
    if outside:
        print("First stacks of syncs outside logged steps:")
        for step, stack in ours["first_stack_by_step"].items():
            print(f"--- step {step}\n{stack}")
    out = args.out or (os.path.join(os.environ["OUT"], "gpu_sync_check.json") if os.environ.get("OUT") else None)
    if out:
        with open(out, "w") as fh:
            json.dump(summary, fh, indent=2)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
