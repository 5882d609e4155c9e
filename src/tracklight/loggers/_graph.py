"""The model graph for TensorBoard: the checks and warnings of ``log_graph``, and tracing a model that is wrapped
(Fabric, ``torch.compile``) or a LightningModule outside its Trainer. A graph the tracer cannot make is a warning,
never an error: training goes on without it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from tracklight._errors import warn
from tracklight._imports import is_instance_by_name

__all__ = ["add_graph", "shorten"]


def add_graph(experiment: Callable[[], Any], model: Any, input_array: Any = None) -> None:
    """Add ``model``'s graph to the ``SummaryWriter`` that ``experiment()`` gives, traced with ``input_array``
    (default: ``model.example_input_array``); warn and return when it cannot be traced."""
    if input_array is None:
        input_array = getattr(model, "example_input_array", None)
    model = _unwrap_model(model)
    # Each message starts with Lightning's own sentence, so a `match=` written for Lightning's logger holds.
    if input_array is None:
        warn(
            "Could not log computational graph to TensorBoard: The `model.example_input_array` attribute is not "
            "set or `input_array` was not given. Fix: set `model.example_input_array` to an input of the "
            "model's `forward()` (a tensor, or a tuple of its positional arguments), or pass `input_array` to "
            "log_graph."
        )
        return
    if not (isinstance(input_array, tuple) or is_instance_by_name(input_array, "torch.Tensor")):
        warn(
            "Could not log computational graph to TensorBoard: The `input_array` or `model.example_input_array` "
            f"has type {type(input_array)} which can't be traced by TensorBoard. Make the input array a tuple "
            "representing the positional arguments to the model's `forward()` implementation (or one tensor)."
        )
        return
    if hasattr(model, "_apply_batch_transfer_handler"):  # a LightningModule: move the input like a batch
        input_array = model._apply_batch_transfer_handler(model._on_before_batch_transfer(input_array))
    try:
        with _tracing(model), _quiet_stdout():
            experiment().add_graph(model, input_array)
    except Exception as error:  # the graph is a nicety: a model the tracer cannot follow still trains
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        warn(
            f"Could not log computational graph to TensorBoard: tracing {type(model).__name__}.forward() with "
            f"the example input failed ({shorten(reason)}). Training goes on without the graph. Fix: make "
            "`forward()` traceable by torch.jit.trace (tensors, or tuples, lists or dicts of tensors, in and "
            "out), or make the logger with log_graph=False."
        )


def _unwrap_model(model: Any) -> Any:
    """The user's module inside Fabric's wrapper and ``torch.compile``'s, which tracing cannot go through."""
    while True:
        if is_instance_by_name(
            model, "lightning.fabric.wrappers._FabricModule", "lightning_fabric.wrappers._FabricModule"
        ):
            model = model._forward_module
        elif is_instance_by_name(model, "torch._dynamo.eval_frame.OptimizedModule"):
            model = model._orig_mod
        else:
            return model


@contextlib.contextmanager
def _tracing(model: Any) -> Iterator[None]:
    """Tracing reads every attribute of the module, and a LightningModule's ``trainer`` raises outside a
    Trainer; Lightning's ``_jit_is_scripting`` class flag silences it while the graph is traced."""
    owner = next((cls for cls in type(model).__mro__ if "_jit_is_scripting" in vars(cls)), None)
    if owner is None:
        yield
        return
    before = vars(owner)["_jit_is_scripting"]
    setattr(owner, "_jit_is_scripting", True)  # noqa: B010
    try:
        yield
    finally:
        setattr(owner, "_jit_is_scripting", before)  # noqa: B010


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """SummaryWriter.add_graph prints "Error occurs, No graph saved" on stdout when tracing fails; the warning
    says it better. What it prints otherwise is passed on."""
    import io
    import sys

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        yield
    if captured.getvalue():
        sys.stdout.write(captured.getvalue())


def shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
