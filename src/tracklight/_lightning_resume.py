"""Resume through Lightning's Trainer: the record in every checkpoint, and the loggers continued from it.

Saving uses a public extension point: a ``Callback`` whose ``on_save_checkpoint`` puts the record under
``checkpoint["tracklight"]``; Lightning calls it for every checkpoint the Trainer writes (``ModelCheckpoint``,
``trainer.save_checkpoint``, SLURM's hpc checkpoints on ``SIGUSR1``).

Loading has no public point early enough: the loggers must hear the record before Lightning first asks one for its
``experiment`` (``_call_setup_hook``, before the checkpoint is restored), its ``log_dir`` (the profiler's setup)
or its ``version``. So ``Trainer._run`` (private; the same call in every Lightning the ``lightning`` extra allows,
tested on the oldest and the newest) is wrapped: with the checkpoint path already chosen (``"last"`` and SLURM's
``"hpc"`` resolved), before anything else, it reads the record and gives each tracklight logger its state, and it
adds the callback when a tracklight logger is attached. Nothing here raises into training: a failure is one warning.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from tracklight import _checkpoint_record
from tracklight._errors import warn

_CALLBACK_NAME = "TracklightResumeRecord"
_callback_classes: dict[str, type] = {}


def patch_trainer(module: ModuleType) -> None:
    """Wrap ``Trainer._run`` of a Lightning ``trainer.trainer`` module (once)."""
    trainer_class = getattr(module, "Trainer", None)
    original = getattr(trainer_class, "_run", None)
    if original is None or getattr(original, "__tracklight_wrapped__", False):
        return
    package = module.__name__.split(".trainer.")[0]  # lightning.pytorch or pytorch_lightning

    @functools.wraps(original)
    def _run(self: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
        ckpt_path = kwargs.get("ckpt_path", args[0] if args else None)
        try:
            _before_run(self, ckpt_path, package)
        except Exception as err:  # resume is a convenience: training goes on as without it
            warn(
                f"tracklight could not prepare its loggers to resume ({type(err).__name__}: {err}); they start new "
                "runs. Please report this with your Lightning version."
            )
        return original(self, model, *args, **kwargs)

    _run.__tracklight_wrapped__ = True  # type: ignore[attr-defined]
    trainer_class._run = _run  # type: ignore[union-attr]


def _before_run(trainer: Any, ckpt_path: Any, package: str) -> None:
    from tracklight.loggers import Logger
    from tracklight.loggers._resume import load_into

    loggers = list(getattr(trainer, "loggers", []))
    if not any(isinstance(logger, Logger) for logger in loggers):
        return
    callback_class = _callback_class(package)
    if not any(isinstance(callback, callback_class) for callback in trainer.callbacks):
        trainer.callbacks.append(callback_class())
    state_fn = getattr(getattr(trainer.state, "fn", None), "value", None)
    if state_fn != "fit" or not ckpt_path:
        return
    try:
        record = _checkpoint_record.read(ckpt_path)
    except Exception as err:
        warn(
            f"tracklight could not read its record in the checkpoint {ckpt_path} ({type(err).__name__}: {err}); the "
            "loggers start new runs. Lightning itself loads the checkpoint as usual."
        )
        return
    if record is None:
        return  # a checkpoint written without tracklight's loggers (or before this feature): resume as before
    states = _checkpoint_record.loggers_in(record, str(ckpt_path))
    if states is not None:
        load_into(loggers, states)


def _callback_class(package: str) -> type:
    """The record-writing ``Callback`` subclass of ``package``'s ``Callback`` (made once per Lightning package)."""
    found = _callback_classes.get(package)
    if found is None:
        import importlib

        base = importlib.import_module(f"{package}.callbacks").Callback
        found = _callback_classes[package] = type(_CALLBACK_NAME, (_RecordWriter, base), {"__module__": __name__})
    return found


class _RecordWriter:
    """Puts tracklight's record into every checkpoint the Trainer saves (its state is the record, not a callback
    state: the callback itself keeps nothing)."""

    @property
    def state_key(self) -> str:
        return _CALLBACK_NAME

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        try:
            checkpoint[_checkpoint_record.RECORD_KEY] = _checkpoint_record.build(trainer.loggers, _logged_step(trainer))
        except Exception as err:
            warn(
                f"tracklight could not record its loggers' runs in this checkpoint ({type(err).__name__}: {err}); a "
                "resume from it starts new runs. The checkpoint itself is saved as usual."
            )


def _logged_step(trainer: Any) -> int | None:
    """The last step this checkpoint covers: the resumed Trainer logs its values from the next step on.

    Lightning logs at a step counter that it advances after each batch. A batch's values are logged after its
    ``on_train_batch_end`` (where ``ModelCheckpoint`` saves), and a validation's before the counter moves on, so a
    checkpoint saved there covers the counter's step; one saved between batches (an epoch's end, SLURM's signal)
    covers the step before it. That is how Lightning 2.5 and later restart. Lightning before 2.5 does not move the
    counter on when it restarts, so its resumed run logs its first batch at the counter's step: the checkpoint
    covers the step before it in every case (a step the killed process had logged past it is logged again).
    None: the Trainer is not fitting, or its loop is not the one described here (each logger's own last step).
    """
    if getattr(getattr(trainer.state, "fn", None), "value", None) != "fit":
        return None
    try:
        loop = trainer.fit_loop.epoch_loop
        stepped = int(loop._batches_that_stepped)
        progress = loop.batch_progress.current
        mid_batch = progress.processed > progress.completed
    except (AttributeError, TypeError, ValueError):
        return None
    moves_on_at_restart = hasattr(type(loop), "restarted_on_train_batch_end")  # Lightning >= 2.5
    if moves_on_at_restart and (trainer.validating or mid_batch):
        return stepped
    return stepped - 1
