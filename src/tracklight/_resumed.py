"""Names both sides of resume agree on: the marks a continued run carries (written by the loggers, honoured by
the readers in :mod:`tracklight.runs`, which never import a logger)."""

from __future__ import annotations

__all__ = ["MLFLOW_TAG_PREFIX", "NEPTUNE_FROM", "SDK_MARK"]

#: An MLflow run continued after a restart gets the tag ``tracklight.resumed.<ms>`` = ``<last_step>``: the time
#: (milliseconds since the epoch) the new process took over and the last step of the state it continued.
MLFLOW_TAG_PREFIX = "tracklight.resumed."

#: The W&B config, Comet "other" value and Neptune field of a process that continued a run: the
#: ``last_step`` it took over at (``-1`` when nothing was logged before).
SDK_MARK = "tracklight/resumed_after_step"

#: The field of an offline Neptune run that continues another (offline runs cannot be reopened): the local id of
#: the offline run it continues.
NEPTUNE_FROM = "tracklight/resumed_from"
