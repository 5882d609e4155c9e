"""TensorBoard's HPARAMS tab, encoded with TensorBoard's own protobufs: no torch needed.

The tab reads three summaries from a run's event files: the experiment (which hyperparameters and metrics
there are), the session start (the values) and the session end. They hold what
``torch.utils.tensorboard.summary.hparams`` writes, so a run reads the same either way; only the
``tensorboard`` package is needed to encode them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tracklight._imports import require
from tracklight.formats.tfevents import varint

__all__ = ["hparams_summaries"]


def hparams_summaries(hparams: Mapping[str, bool | int | float | str | None], metrics: Iterable[str]) -> list[bytes]:
    """The ``summary`` fields (for ``EventFile.add_summary``) of the experiment, session start and session end.

    Numbers and booleans are shown as numbers and strings as strings, as ``SummaryWriter`` shows them; a
    ``None`` value is left out.

    Example:
        >>> experiment, start, end = hparams_summaries({"lr": 0.01, "optimizer": "adam"}, ["hp_metric"])
        >>> experiment[:1] == start[:1] == end[:1] == b"\\x2a"  # Event.summary, field 5
        True
    """
    api = require("tensorboard.plugins.hparams.api_pb2", "tensorboard")
    plugin_data = require("tensorboard.plugins.hparams.plugin_data_pb2", "tensorboard")
    metadata = require("tensorboard.plugins.hparams.metadata", "tensorboard")
    summary_pb2 = require("tensorboard.compat.proto.summary_pb2", "tensorboard")

    start = plugin_data.SessionStartInfo()
    infos = []
    for key, value in hparams.items():
        if value is None:
            continue
        if isinstance(value, str):
            start.hparams[key].string_value = value
            kind = "DATA_TYPE_STRING"
        else:  # bool is an int: SummaryWriter shows it as a number too
            start.hparams[key].number_value = float(value)
            kind = "DATA_TYPE_FLOAT64"
        infos.append(api.HParamInfo(name=key, type=api.DataType.Value(kind)))
    experiment = api.Experiment(
        hparam_infos=infos, metric_infos=[api.MetricInfo(name=api.MetricName(tag=tag)) for tag in metrics]
    )
    end = plugin_data.SessionEndInfo(status=api.Status.Value("STATUS_SUCCESS"))
    parts = [
        (metadata.EXPERIMENT_TAG, plugin_data.HParamsPluginData(experiment=experiment)),
        (metadata.SESSION_START_INFO_TAG, plugin_data.HParamsPluginData(session_start_info=start)),
        (metadata.SESSION_END_INFO_TAG, plugin_data.HParamsPluginData(session_end_info=end)),
    ]
    fields = []
    for tag, content in parts:
        content.version = metadata.PLUGIN_DATA_VERSION
        plugin = summary_pb2.SummaryMetadata.PluginData(
            plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString()
        )
        value = summary_pb2.Summary.Value(tag=tag, metadata=summary_pb2.SummaryMetadata(plugin_data=plugin))
        encoded = summary_pb2.Summary(value=[value]).SerializeToString()
        fields.append(b"\x2a" + varint(len(encoded)) + encoded)
    return fields
