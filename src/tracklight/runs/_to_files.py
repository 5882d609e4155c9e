"""Export into local formats: a CSV folder and a TensorBoard folder, laid out as the loggers lay them out
(``<DIR>/<run name>/version_<N>/``), so ``tracklight``, pandas, TensorBoard and Lightning read them as usual.

The writers use tracklight's own encoders (``formats.tfevents``), its hyperparameter YAML and its media
files, and write synchronously: an export is not a training loop.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import struct
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from tracklight._fs import claim_next_version
from tracklight._media_files import MediaFiles
from tracklight.params import to_yaml
from tracklight.runs._export import Exported, Progress, Source, extension, missing_times

__all__ = ["CSVWriter", "TensorBoardWriter"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@contextlib.contextmanager
def _log_dir(root: str, name: str) -> Iterator[str]:
    """A new version folder for one exported run; removed again if the export fails (no half run for ``ls``)."""
    folder = os.path.join(root, _UNSAFE.sub("_", name).strip("_") or "run")
    log_dir = os.path.join(folder, f"version_{claim_next_version(folder)}")
    try:
        yield log_dir
    except BaseException:
        shutil.rmtree(log_dir, ignore_errors=True)
        raise


def _write_hparams(log_dir: str, params: dict[str, Any]) -> None:
    with open(os.path.join(log_dir, "hparams.yaml"), "w", encoding="utf-8") as handle:
        handle.write(to_yaml(params) if params else "{}\n")


class CSVWriter:
    """``csv:DIR``: ``metrics.csv`` (a ``step`` column, one column per metric, one row per step and occurrence),
    ``hparams.yaml`` and ``media/`` with its index."""

    def __init__(self, root: str) -> None:
        self.root = root

    def write(self, source: Source, progress: Progress) -> Exported:
        with _log_dir(self.root, source.name) as log_dir:
            return self._write(source, progress, log_dir)

    def _write(self, source: Source, progress: Progress, log_dir: str) -> Exported:
        done = Exported(source.run.ref, log_dir, params=len(source.params))
        long = source.run.metrics()
        if len(long):
            long["n"] = long.groupby(["metric", "step"], observed=True).cumcount()
            wide = long.set_index(["step", "n", "metric"])["value"].unstack("metric").sort_index()
            wide = wide.reset_index().drop(columns="n")
            wide = wide[["step", *sorted(c for c in wide.columns if c != "step")]]
            wide.to_csv(os.path.join(log_dir, "metrics.csv"), index=False)
            nans = int(long["value"].isna().sum())
            if nans:
                done.refused.append(
                    f"CSV cannot tell a NaN from an empty cell: {nans} NaN point(s) read back as absent"
                )
        else:
            with open(os.path.join(log_dir, "metrics.csv"), "w", encoding="utf-8") as handle:
                handle.write("step\n")
        done.points = len(long)
        progress(done.points)
        timed = done.points - missing_times(source)
        if timed:
            done.refused.append(f"CSV keeps no timestamps: the times of {timed} point(s) are not written")
        _write_hparams(log_dir, source.params)
        done.media = _keep_media(log_dir, source)
        return done


class TensorBoardWriter:
    """``tensorboard:DIR``: one event file of scalars (and PNG images), ``hparams.yaml`` beside it, and the
    HPARAMS plugin's record when TensorBoard is installed; media TensorBoard cannot show are kept as files."""

    def __init__(self, root: str) -> None:
        self.root = root

    def write(self, source: Source, progress: Progress) -> Exported:
        with _log_dir(self.root, source.name) as log_dir:
            return self._write(source, progress, log_dir)

    def _write(self, source: Source, progress: Progress, log_dir: str) -> Exported:
        from tracklight.formats import tfevents

        done = Exported(source.run.ref, log_dir, params=len(source.params))
        now = time.time()
        rounded = untimed = 0
        with open(tfevents.event_file_name(log_dir), "wb") as handle:
            handle.write(tfevents.frame(tfevents.encode_file_version(now)))
            hparams = _hparams_event(source.params, now)
            if hparams is not None:
                handle.write(tfevents.frame(hparams))
            for name, points in source.points.items():
                values = points.value
                finite = np.isfinite(values)
                rounded += int((values[finite].astype(np.float32).astype(np.float64) != values[finite]).sum())
                times = np.where(np.isnan(points.time), now, points.time)
                untimed += int(np.isnan(points.time).sum())
                chunk = [
                    tfevents.frame(tfevents.encode_scalars(step, stamp, [(name, value)]))
                    for step, stamp, value in zip(points.step.tolist(), times.tolist(), values.tolist(), strict=True)
                ]
                handle.write(b"".join(chunk))
                done.points += len(points)
                progress(len(points))
            others = []
            for media in source.media:
                content = media.load()
                size = _png_size(content) if media.kind == "image" else None
                if size is None:
                    others.append(media)
                    continue
                step = media.step or 0
                handle.write(tfevents.frame(tfevents.encode_event(step, now, _image_summary(media.key, content, size))))
                done.media += 1
        if rounded:
            done.refused.append(f"TensorBoard stores 32-bit floats: {rounded} value(s) were rounded to float32")
        if untimed:
            done.refused.append(f"{untimed} point(s) had no timestamp; TensorBoard got the export time for them")
        _write_hparams(log_dir, source.params)
        if others:
            kept = _keep_media(log_dir, Source(source.run, source.name, {}, {}, others, None))
            done.media += kept
            kinds = ", ".join(sorted({media.kind for media in others}))
            done.refused.append(
                f"TensorBoard shows PNG images only: {kept} other media file(s) ({kinds}) are kept under "
                f"{os.path.join(log_dir, 'media')}"
            )
        return done


def _keep_media(log_dir: str, source: Source) -> int:
    files = MediaFiles(log_dir)
    for media in source.media:
        files.keep(media.kind, media.key, media.step, [(extension(media.name), media.load())], name=media.name)
    return len(source.media)


def _png_size(content: bytes) -> tuple[int, int] | None:
    if content[:8] != b"\x89PNG\r\n\x1a\n" or len(content) < 24:
        return None
    width, height = struct.unpack(">II", content[16:24])
    return width, height


def _image_summary(tag: str, png: bytes, size: tuple[int, int]) -> bytes:
    """The ``summary`` field of an Event holding one ``Summary.Value{tag, image{height, width, colorspace,
    encoded_image_string}}``."""
    from tracklight.formats.tfevents import varint

    width, height = size
    image = b"\x08" + varint(height) + b"\x10" + varint(width) + b"\x18" + varint(4) + b"\x22" + varint(len(png)) + png
    tag_bytes = tag.encode("utf-8")
    value = b"\x0a" + varint(len(tag_bytes)) + tag_bytes + b"\x22" + varint(len(image)) + image
    summary = b"\x0a" + varint(len(value)) + value
    return b"\x2a" + varint(len(summary)) + summary


def _hparams_event(params: dict[str, Any], now: float) -> bytes | None:
    """TensorBoard's HPARAMS record (``session_start_info``), built with TensorBoard's protos when installed."""
    if not params:
        return None
    try:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.hparams import plugin_data_pb2
    except ImportError:
        return None
    from tracklight.formats.tfevents import encode_event, varint

    data = plugin_data_pb2.HParamsPluginData(version=0)
    for key, value in params.items():
        slot = data.session_start_info.hparams[key]
        if isinstance(value, bool):
            slot.bool_value = value
        elif isinstance(value, (int, float)):
            slot.number_value = float(value)
        else:
            slot.string_value = str(value)
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="hparams", content=data.SerializeToString())
    )
    summary = summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag="_hparams_/session_start_info", metadata=metadata)]
    )
    content = summary.SerializeToString()
    return encode_event(0, now, b"\x2a" + varint(len(content)) + content)
