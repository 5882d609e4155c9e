"""Where ``self.log`` may be called, and what ``on_step``/``on_epoch`` default to there (Lightning's rules).

- ``training_step`` and the other hooks of one training batch (backward, optimizer, batch start/end):
  ``on_step`` defaults to True, ``on_epoch`` to False; both may be set.
- ``validation_step``, ``test_step`` and their batch start/end hooks: ``on_step`` False, ``on_epoch`` True
  by default; both may be set.
- ``on_{train,validation,test}_start`` and the ``*_epoch_start``/``*_epoch_end`` hooks: epoch-level only.
- everything else (``setup``, ``on_fit_start``, ``predict_step``, checkpoint and dataloader hooks ...):
  cannot log.

The plain-loop reducer uses the same rules through one hook per stage (see :data:`STAGE_HOOKS`).
"""

from __future__ import annotations

from typing import NamedTuple

from tracklight.reducer._errors import LoggingMisuseError

__all__ = ["HOOKS", "STAGE_HOOKS", "HookRule", "known_levels", "not_useful", "resolve_levels"]


class HookRule(NamedTuple):
    """What one hook allows: the ``on_step``/``on_epoch`` values it accepts and their defaults."""

    allowed_on_step: tuple[bool, ...]
    allowed_on_epoch: tuple[bool, ...]
    default_on_step: bool
    default_on_epoch: bool


_TRAIN_BATCH = HookRule((False, True), (False, True), True, False)
_EVAL_BATCH = HookRule((False, True), (False, True), False, True)
_EPOCH_ONLY = HookRule((False,), (True,), False, True)

_TRAIN_BATCH_HOOKS = (
    "training_step",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "optimizer_step",
    "configure_gradient_clipping",
    "clip_gradients",
    "on_before_zero_grad",
    "optimizer_zero_grad",
)
_EVAL_BATCH_HOOKS = (
    "validation_step",
    "test_step",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
)
_EPOCH_HOOKS = (
    "on_train_start",
    "on_validation_start",
    "on_test_start",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_test_epoch_start",
    "on_test_epoch_end",
)
_SILENT_HOOKS = (
    "lr_scheduler_step",
    "on_fit_start",
    "on_fit_end",
    "on_sanity_check_start",
    "on_sanity_check_end",
    "on_train_end",
    "on_validation_end",
    "on_test_end",
    "on_predict_start",
    "on_predict_end",
    "on_predict_epoch_start",
    "on_predict_epoch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
    "predict_step",
    "on_before_batch_transfer",
    "transfer_batch_to_device",
    "on_after_batch_transfer",
    "on_exception",
    "state_dict",
    "load_state_dict",
    "on_save_checkpoint",
    "on_load_checkpoint",
    "setup",
    "teardown",
    "prepare_data",
    "configure_sharded_model",
    "configure_model",
    "configure_optimizers",
    "configure_callbacks",
    "train_dataloader",
    "val_dataloader",
    "test_dataloader",
    "predict_dataloader",
    "on_validation_model_zero_grad",
    "on_validation_model_eval",
    "on_validation_model_train",
    "on_test_model_eval",
    "on_test_model_train",
)

#: Every hook Lightning calls, with its rule; ``None`` for hooks that cannot log.
HOOKS: dict[str, HookRule | None] = {
    **dict.fromkeys(_TRAIN_BATCH_HOOKS, _TRAIN_BATCH),
    **dict.fromkeys(_EVAL_BATCH_HOOKS, _EVAL_BATCH),
    **dict.fromkeys(_EPOCH_HOOKS, _EPOCH_ONLY),
    **dict.fromkeys(_SILENT_HOOKS, None),
}

#: The hook whose rule a plain-loop stage follows.
STAGE_HOOKS = {"train": "training_step", "validate": "validation_step", "test": "test_step"}

_UNKNOWN = HookRule((), (), False, False)
#: ``(hook, on_step, on_epoch) -> resolved levels`` for combinations already checked: the hot path reads it.
known_levels: dict[tuple[str, bool | None, bool | None], tuple[bool, bool]] = {}


def resolve_levels(
    fx: str,
    name: str,
    on_step: bool | None,
    on_epoch: bool | None,
    call: str = "self.log",
    error: type[Exception] = LoggingMisuseError,
) -> tuple[bool, bool]:
    """``(on_step, on_epoch)`` for a value logged in hook ``fx``: the hook's defaults where not given.

    Raises:
        LoggingMisuseError: when ``fx`` cannot log, when it does not accept the given level, or when both
            levels end up False; the message names the key and the fix.
    """
    cached = known_levels.get((fx, on_step, on_epoch))
    if cached is not None:
        return cached
    rule = HOOKS.get(fx, _UNKNOWN)
    # Each message opens with Lightning's sentence for the same mistake (a test's match= written for Lightning
    # still matches), then names the key and the fix.
    if rule is None:
        raise error(
            f"You can't `{call}()` inside `{fx}`. HINT: You can still log directly to the logger by using "
            f"`self.logger.experiment`. Nothing reduces or sends {name!r} from there. Fix: log it from a step or "
            f"epoch hook (e.g. on_train_epoch_end), or write it to the logger: "
            f"self.logger.log_metrics({{{name!r}: value}})."
        )
    if rule is _UNKNOWN:
        raise error(
            f"Logging inside `{fx}` is not implemented: {call}({name!r}, ...) was called in a hook tracklight has "
            "no logging rule for. Fix: log it from a step or epoch hook (training_step, validation_step, "
            "on_train_epoch_end ...)."
        )
    step = rule.default_on_step if on_step is None else on_step
    epoch = rule.default_on_epoch if on_epoch is None else on_epoch
    if step not in rule.allowed_on_step:
        raise error(
            f"You can't `{call}(on_step={step})` inside `{fx}`, must be one of {rule.allowed_on_step}: values "
            f"logged there, such as {name!r}, are epoch-level only. Fix: drop on_step (or pass on_step=False)."
        )
    if epoch not in rule.allowed_on_epoch:
        raise error(
            f"You can't `{call}(on_epoch={epoch})` inside `{fx}`, must be one of {rule.allowed_on_epoch}: values "
            f"logged there, such as {name!r}, are reduced over the epoch. Fix: drop on_epoch (or pass on_epoch=True)."
        )
    if not step and not epoch:
        raise error(not_useful(name, call))
    known_levels[(fx, on_step, on_epoch)] = (step, epoch)
    return step, epoch


def not_useful(name: str, call: str) -> str:
    """The error for ``on_step=False, on_epoch=False``."""
    return (
        f"`{call}(on_step=False, on_epoch=False)` is not useful: {name!r} would be neither sent per step nor "
        "reduced per epoch, so it logs nothing. Fix: set on_step=True, on_epoch=True, or both."
    )
