"""Media as W&B data types: tracklight's neutral media forms in, ``wandb.Image``/``Audio``/... objects out.

Pure conversion: nothing here logs. ``WandbLogger`` puts what these return into a history row.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from tracklight import media
from tracklight._errors import TracklightError
from tracklight._imports import is_available, is_instance_by_name, module_prefix

#: W&B keeps at most this many bins per histogram.
MAX_HISTOGRAM_BINS = 512


class MediaArgumentError(TracklightError, ValueError):
    """Per-item media arguments do not match the items (a ``ValueError``, as Lightning raises)."""


def is_wandb_value(value: Any) -> bool:
    """Whether ``value`` is a W&B data type (or a list of them) that goes into a history row unchanged."""
    if isinstance(value, (list, tuple)):
        return bool(value) and all(is_wandb_value(item) for item in value)
    return module_prefix(value) == "wandb"


def items(values: Any) -> list[Any]:
    """The items of a media argument: a list or tuple as it is, a 4-D array or tensor as its first axis,
    anything else as a list of one (Lightning's helpers take lists; tracklight's media API also takes one)."""
    if isinstance(values, (list, tuple)):
        return list(values)
    if module_prefix(values) in ("torch", "numpy") and getattr(values, "ndim", 0) == 4:
        return list(values)
    return [values]


def per_item(kwargs: Mapping[str, Any], count: int, what: str) -> list[dict[str, Any]]:
    """Split ``caption=[...]``-style keyword arguments into one dict per item.

    A list or tuple gives one value per item and must have ``count`` entries; any other value is shared.
    """
    split: list[dict[str, Any]] = [{} for _ in range(count)]
    for key, value in kwargs.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            if len(value) != count:
                raise MediaArgumentError(
                    f"Expected {count} items but only found {len(value)} for {key} (one per {what}). "
                    f"Fix: pass {key}= a list of {count} values, or a single value shared by every {what}."
                )
            for index, item in enumerate(value):
                split[index][key] = item
        else:
            for entry in split:
                entry[key] = value
    return split


def image(wandb: Any, value: Any, dataformats: str | None = None, **kwargs: Any) -> Any:
    """A ``wandb.Image`` from a path, a ``wandb.Image``, a tensor, an array, a PIL image or a figure."""
    if is_instance_by_name(value, "wandb.sdk.data_types.image.Image"):
        return value
    if isinstance(value, (str, os.PathLike)):
        return wandb.Image(os.fspath(value), **kwargs)
    return wandb.Image(media.image_pixels(value, dataformats), **kwargs)


def neutral_image(wandb: Any, value: media.Image) -> Any:
    return wandb.Image(value.pixels, caption=value.caption)


def histogram(wandb: Any, values: np.ndarray, bins: Any) -> Any:
    """A ``wandb.Histogram`` with numpy's bins (``"auto"`` by default), capped at what W&B keeps."""
    counts, edges = media.histogram_counts(values, bins)
    if len(counts) > MAX_HISTOGRAM_BINS:
        counts, edges = media.histogram_counts(values, MAX_HISTOGRAM_BINS)
    return wandb.Histogram(np_histogram=(counts.tolist(), edges.tolist()))


def text_html(wandb: Any, text: str) -> Any:
    """Text as ``wandb.Html``: escaped and shown as preformatted, so it reads as it was written."""
    body = f'<pre style="white-space: pre-wrap">{html.escape(text)}</pre>'
    return wandb.Html(body, data_is_not_path=True)


def table(wandb: Any, value: media.Table) -> Any:
    return wandb.Table(columns=list(value.columns), data=[list(row) for row in value.rows])


def figure(wandb: Any, value: Any) -> Any:
    """A plotly figure as ``wandb.Plotly`` (interactive); a matplotlib figure as a ``wandb.Image``."""
    if is_instance_by_name(value, "plotly.graph_objs._figure.Figure"):
        return wandb.Plotly(value)
    return wandb.Image(media.image_pixels(value))


class AudioFiles:
    """Makes ``wandb.Audio`` objects, writing clips given as samples to 16-bit WAV files first.

    W&B would need ``soundfile`` to take samples; a file it takes as it is. The files live until the
    ``with`` block ends, by which time logging the clips has copied them into the run.

    Example:
        >>> import numpy as np, wandb  # doctest: +SKIP
        >>> with AudioFiles(wandb) as files:  # doctest: +SKIP
        ...     clip = files.clip(np.zeros(800), sample_rate=8000)
    """

    def __init__(self, wandb: Any) -> None:
        self._wandb = wandb
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._count = 0

    def __enter__(self) -> AudioFiles:
        self._folder = tempfile.TemporaryDirectory(prefix="tracklight-wandb-audio-")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def clip(self, value: Any, sample_rate: int | None = None, caption: str | None = None) -> Any:
        """A ``wandb.Audio`` from a path, a ``wandb.Audio``, or a 1-D/2-D array or tensor of samples."""
        if is_instance_by_name(value, "wandb.sdk.data_types.audio.Audio"):
            return value
        if isinstance(value, (str, os.PathLike)):
            return self._wandb.Audio(os.fspath(value), sample_rate=sample_rate, caption=caption)
        return self.neutral(media.to_audio(value, int(sample_rate or 44100), caption))

    def neutral(self, audio: media.Audio) -> Any:
        if self._folder is None:
            raise TracklightError("AudioFiles must be used in a `with` block.")
        path = os.path.join(self._folder.name, f"clip_{self._count}.wav")
        self._count += 1
        with open(path, "wb") as handle:
            handle.write(audio.wav())
        return self._wandb.Audio(path, sample_rate=audio.sample_rate, caption=audio.caption)


def video(wandb: Any, value: Any, **kwargs: Any) -> Any:
    """A ``wandb.Video`` from a path, a ``wandb.Video`` or a ``(time, channel, height, width)`` array."""
    if is_instance_by_name(value, "wandb.sdk.data_types.video.Video"):
        return value
    if isinstance(value, (str, os.PathLike)):
        return wandb.Video(os.fspath(value), **kwargs)
    if not is_available("moviepy"):
        raise TracklightError(
            "W&B needs moviepy to encode a video from an array. "
            "Fix: pip install moviepy imageio, or pass the path of a .mp4/.gif/.webm file."
        )
    return wandb.Video(media.to_numpy(value), **kwargs)


def can_log_audio() -> bool:
    """W&B refuses to log any ``wandb.Audio`` (even a file) unless ``soundfile`` can be imported."""
    return is_available("soundfile")
