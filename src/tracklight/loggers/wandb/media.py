"""Media as W&B data types: tracklight's neutral media forms in, ``wandb.Image``/``Audio``/... objects out.

Pure conversion: nothing here logs. ``WandbLogger`` puts what these return into a history row.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from tracklight import media
from tracklight._errors import TracklightError
from tracklight._imports import is_available, is_instance_by_name, is_stubbed, module_prefix

#: W&B keeps at most this many bins per histogram.
MAX_HISTOGRAM_BINS = 512


class MediaArgumentError(TracklightError, ValueError):
    """Per-item media arguments do not match the items (a ``ValueError``, as Lightning raises)."""


class MediaTypeError(TracklightError, TypeError):
    """A media argument that must be a list is not one (a ``TypeError``, as Lightning raises)."""


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
    # Lightning's keywords, dataframe=None included: a suite that mocks wandb.Table checks them.
    return wandb.Table(columns=list(value.columns), data=[list(row) for row in value.rows], dataframe=None)


def figure(wandb: Any, value: Any) -> Any:
    """A plotly figure as ``wandb.Plotly`` (interactive); a matplotlib figure as a ``wandb.Image``."""
    if is_instance_by_name(value, "plotly.graph_objs._figure.Figure"):
        return wandb.Plotly(value)
    return wandb.Image(media.image_pixels(value))


class ItemFiles:
    """Files one logged item needs until the delivery worker has handed it to W&B, in a folder of their own.

    W&B copies a media file into the run only when the row is logged, which happens later, on the
    worker: so the user's files are copied here first (they may be changed or deleted meanwhile), and
    clips given as samples are written as 16-bit WAV files (W&B would need ``soundfile`` to take samples).
    :meth:`keep` hands the folder over for the worker to remove; otherwise leaving the ``with`` block removes it.

    Example:
        >>> import numpy as np, wandb  # doctest: +SKIP
        >>> with ItemFiles(wandb) as files:  # doctest: +SKIP
        ...     clip = files.clip(np.zeros(800), sample_rate=8000)
        ...     folders = files.keep()
    """

    def __init__(self, wandb: Any) -> None:
        self._wandb = wandb
        self._folder: str | None = None
        self._count = 0

    def __enter__(self) -> ItemFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def keep(self) -> list[str]:
        """The folders to remove once the item is delivered (none when no file was written)."""
        folder, self._folder = self._folder, None
        return [folder] if folder is not None else []

    def path(self, value: Any) -> Any:
        """A copy of the file at ``value`` when it is a path (its extension kept); anything else as it is.

        A stubbed ``wandb`` (a test suite's ``MagicMock`` or bare module) reads no file and is called at once: it
        gets the path as given.
        """
        if not isinstance(value, (str, os.PathLike)) or is_stubbed("wandb"):
            return value
        source = os.fspath(value)
        copy = self._new_file(os.path.splitext(source)[1])
        shutil.copyfile(source, copy)
        return copy

    def clip(self, value: Any, sample_rate: int | None = None, caption: str | None = None) -> Any:
        """A ``wandb.Audio`` from a path, a ``wandb.Audio``, or a 1-D/2-D array or tensor of samples."""
        if is_instance_by_name(value, "wandb.sdk.data_types.audio.Audio"):
            return value
        if isinstance(value, (str, os.PathLike)):
            # Only the options given, as Lightning passes them (a suite that mocks wandb.Audio checks the call).
            given = {"sample_rate": sample_rate, "caption": caption}
            return self._wandb.Audio(self.path(value), **{key: v for key, v in given.items() if v is not None})
        return self.neutral(media.to_audio(value, int(sample_rate or 44100), caption))

    def neutral(self, audio: media.Audio) -> Any:
        path = self._new_file(".wav")
        with open(path, "wb") as handle:
            handle.write(audio.wav())
        return self._wandb.Audio(path, sample_rate=audio.sample_rate, caption=audio.caption)

    def _new_file(self, extension: str) -> str:
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="tracklight-wandb-")
        self._count += 1
        return os.path.join(self._folder, f"{self._count}{extension}")


def weight(values: list[Any]) -> int:
    """How much of the delivery queue media built from ``values`` take: their size in KiB, 64 when unknown."""
    total = 0
    for value in values:
        size = getattr(value, "nbytes", None)
        if size is None and isinstance(value, (str, os.PathLike)):
            try:
                size = os.path.getsize(value)
            except OSError:
                size = None
        if size is None and isinstance(value, media.Image):
            size = value.pixels.nbytes
        total += int(size) if size is not None else 64 * 1024
    return max(1, total // 1024)


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
    """W&B refuses to log any ``wandb.Audio`` (even a file) unless ``soundfile`` can be imported; a stubbed
    ``wandb`` takes anything."""
    return is_stubbed("wandb") or is_available("soundfile")
