"""The Comet sink of background delivery: metrics, parameters and media, handed to one experiment in order.

Runs on the delivery worker thread. ``CometLogger`` starts the experiment and converts values on the
calling thread; here they are handed to ``experiment.log_metrics``, ``log_parameters`` and, for
media and checkpoints, to the call the logger prepared.
"""

from __future__ import annotations

from typing import Any

from tracklight.loggers._sdk_delivery import SdkSink

__all__ = ["CometSink"]


class CometSink(SdkSink):
    """Delivers items of kind ``row`` (``log_metrics``), ``hyperparameter`` (``log_parameters``) and, for everything
    else, ``item["call"](experiment)`` to :attr:`experiment`, which the logger sets whenever it starts or
    continues the experiment."""

    sdk = "comet_ml"
    limits = {"row": 100, "hyperparameter": 100}

    def __init__(self) -> None:
        self.experiment: Any = None

    def describe(self) -> str:
        experiment = self.experiment
        if experiment is None:
            return "Comet"
        where = getattr(experiment, "offline_directory", None)
        return f"Comet experiment {experiment.get_key()}" + (f" (offline, in {where})" if where else "")

    def send_one(self, item: dict[str, Any]) -> None:
        kind = item["kind"]
        if kind == "row":
            self.experiment.log_metrics(item["values"], prefix=item["prefix"], step=item["step"], epoch=item["epoch"])
        elif kind == "hyperparameter":
            self.experiment.log_parameters(item["params"], nested_support=True)
        else:
            item["call"](self.experiment)
