"""Media in neutral forms: images become HWC uint8 arrays and PNG bytes, audio becomes WAV bytes,
histograms become flat float arrays, tables become columns and rows.

Pure conversion, no I/O: backends call these and then write what they get in their own way. Foreign
types (torch tensors, PIL images, matplotlib figures, pandas frames) are recognised by their class
name, so nothing here imports torch, PIL, matplotlib or pandas.
"""

from __future__ import annotations

import io
import math
import struct
import wave
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracklight._errors import TracklightError
from tracklight._imports import is_instance_by_name, module_prefix

_CHANNELS = (1, 3, 4)


@dataclass(frozen=True)
class Image:
    """One image: ``pixels`` is an ``(H, W, C)`` uint8 array with C in 1, 3 or 4."""

    pixels: np.ndarray
    caption: str | None = None

    def png(self) -> bytes:
        return png_bytes(self.pixels)


@dataclass(frozen=True)
class Audio:
    """One clip: float samples in [-1, 1] shaped ``(frames, channels)``."""

    samples: np.ndarray
    sample_rate: int
    caption: str | None = None

    def wav(self) -> bytes:
        return wav_bytes(self.samples, self.sample_rate)


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Any]]

    def markdown(self) -> str:
        head = "| " + " | ".join(self.columns) + " |"
        rule = "|" + "---|" * len(self.columns)
        body = ["| " + " | ".join(str(cell) for cell in row) + " |" for row in self.rows]
        return "\n".join([head, rule, *body])

    def csv(self) -> str:
        import csv

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return buffer.getvalue()


def to_numpy(value: Any) -> np.ndarray:
    """A numpy array from a torch tensor (any device or dtype), a PIL image, a list or a numpy array."""
    if module_prefix(value) == "torch" and hasattr(value, "detach"):
        value = value.detach()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        return np.asarray(value.cpu().numpy())
    return np.asarray(value)


def is_figure(value: Any) -> bool:
    return is_instance_by_name(value, "matplotlib.figure.Figure", "plotly.graph_objs._figure.Figure")


def close_figure(figure: Any) -> None:
    """Close a matplotlib figure (pyplot keeps every open one alive); anything else is left alone."""
    if is_instance_by_name(figure, "matplotlib.figure.Figure"):
        import matplotlib.pyplot as plt

        plt.close(figure)


def figure_png(figure: Any) -> bytes:
    """PNG bytes of a matplotlib figure (or a plotly figure, when kaleido is installed)."""
    buffer = io.BytesIO()
    if is_instance_by_name(figure, "matplotlib.figure.Figure"):
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    if hasattr(figure, "to_image"):
        return bytes(figure.to_image(format="png"))
    raise TracklightError(
        f"Cannot render a {type(figure).__name__} as a figure. Pass a matplotlib Figure (or an image array)."
    )


def to_images(images: Any, captions: Any = None, dataformats: str | None = None) -> list[Image]:
    """One image or a list of them (arrays, tensors, PIL images, figures) as :class:`Image` objects.

    A 4-D array or tensor is a batch. ``captions`` is one string or one per image.
    """
    items = list(images) if _is_batch(images) or isinstance(images, (list, tuple)) else [images]
    if captions is None or isinstance(captions, str):
        captions = [captions] * len(items)
    if len(captions) != len(items):
        raise TracklightError(f"Got {len(items)} images but {len(captions)} captions; pass one caption per image.")
    return [Image(image_pixels(item, dataformats), caption) for item, caption in zip(items, captions, strict=False)]


def _is_batch(value: Any) -> bool:
    return module_prefix(value) in ("torch", "numpy") and getattr(value, "ndim", 0) == 4


def image_pixels(image: Any, dataformats: str | None = None) -> np.ndarray:
    """An ``(H, W, C)`` uint8 array for one image.

    Float values are taken to lie in [0, 1] (as TensorBoard does) and scaled to 0..255. Without
    ``dataformats``, a 3-D tensor is read as CHW (torch's convention) and a 3-D numpy array as HWC,
    unless only the other reading has 1, 3 or 4 channels.
    """
    if is_figure(image):
        return decode_png(figure_png(image))
    if is_instance_by_name(image, "PIL.Image.Image"):
        image = image.convert("RGBA") if image.mode in ("P", "LA", "PA") else image
        if image.mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGB")
        array = np.asarray(image)
        return array[:, :, None] if array.ndim == 2 else array
    channels_first = module_prefix(image) == "torch"
    array = to_numpy(image)
    array = _to_hwc(array, dataformats, channels_first)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        array = np.clip(np.nan_to_num(array) * 255.0, 0, 255).round().astype(np.uint8)
    else:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def _to_hwc(array: np.ndarray, dataformats: str | None, channels_first: bool) -> np.ndarray:
    if dataformats is not None:
        layout = dataformats.upper()
        if sorted(layout) != sorted("HWC"[: array.ndim]) and sorted(layout) != sorted("HW"):
            raise TracklightError(f"dataformats={dataformats!r} does not describe an array of shape {array.shape}.")
        if len(layout) != array.ndim:
            raise TracklightError(f"dataformats={dataformats!r} does not describe an array of shape {array.shape}.")
        if layout == "HW":
            return array[:, :, None]
        return np.transpose(array, [layout.index(axis) for axis in "HWC"])
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim != 3:
        raise TracklightError(
            f"An image must have 2 or 3 dimensions (HW, CHW or HWC), got shape {array.shape}. "
            "Pass one image, a list of images or a 4-D batch."
        )
    first, last = array.shape[0] in _CHANNELS, array.shape[-1] in _CHANNELS
    if first and (channels_first or not last):
        return np.transpose(array, (1, 2, 0))
    if last:
        return array
    raise TracklightError(
        f"Cannot tell the channel axis of an image of shape {array.shape}: pass dataformats='CHW' or 'HWC'."
    )


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode an ``(H, W, C)`` uint8 array as PNG (grayscale, gray+alpha, RGB or RGBA) with zlib alone."""
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4) or pixels.dtype != np.uint8:
        raise TracklightError(f"png_bytes needs an (H, W, C) uint8 array, got {pixels.shape} {pixels.dtype}.")
    height, width, channels = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = np.concatenate([np.zeros((height, 1), dtype=np.uint8), pixels.reshape(height, width * channels)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)),
            chunk(b"IEND", b""),
        ]
    )


def decode_png(data: bytes) -> np.ndarray:
    """Decode a PNG (through Pillow) into an ``(H, W, C)`` uint8 array."""
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as image:
        return image_pixels(image.copy())


def to_audio(audio: Any, sample_rate: int, caption: str | None = None) -> Audio:
    """A clip from a 1-D array (mono) or a 2-D array shaped (channels, frames) or (frames, channels)."""
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise TracklightError(f"sample_rate must be a positive int (samples per second), got {sample_rate!r}.")
    samples = to_numpy(audio).astype(np.float64)
    if samples.ndim == 1:
        samples = samples[:, None]
    elif samples.ndim == 2:
        if samples.shape[0] < samples.shape[1] and samples.shape[0] <= 8:
            samples = samples.T
    else:
        raise TracklightError(f"Audio must be 1-D or 2-D, got shape {samples.shape}.")
    if np.issubdtype(to_numpy(audio).dtype, np.integer):
        samples = samples / 32768.0
    return Audio(np.clip(np.nan_to_num(samples), -1.0, 1.0), sample_rate, caption)


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes of float samples shaped (frames, channels)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(pcm.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())
    return buffer.getvalue()


def histogram_values(values: Any, key: str) -> np.ndarray:
    """The values of a histogram as a flat float64 array; non-finite values are an error naming the key."""
    array = to_numpy(values).astype(np.float64).ravel()
    if array.size == 0:
        raise TracklightError(f"log_histogram({key!r}) got no values; pass a non-empty array or tensor.")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise TracklightError(
            f"log_histogram({key!r}) got {bad} NaN or infinite value(s); drop them first, "
            "e.g. values[torch.isfinite(values)]."
        )
    return array


def histogram_counts(values: np.ndarray, bins: int | str | Sequence[float] = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin edges of a histogram."""
    counts, edges = np.histogram(values, bins=bins)
    return counts, edges


def to_table(columns: Sequence[str] | None = None, data: Any = None, dataframe: Any = None) -> Table:
    """A table from ``columns`` and ``data`` (a list of rows) or from a pandas ``dataframe``."""
    if dataframe is not None:
        # pandas 3 reports DataFrame's module as "pandas", earlier versions as "pandas.core.frame".
        if not is_instance_by_name(dataframe, "pandas.core.frame.DataFrame", "pandas.DataFrame"):
            raise TracklightError(f"dataframe must be a pandas DataFrame, got {type(dataframe).__name__}.")
        return Table([str(c) for c in dataframe.columns], [list(row) for row in dataframe.itertuples(index=False)])
    if data is None:
        raise TracklightError("A table needs data=[[...], ...] (a list of rows) or dataframe=pandas.DataFrame(...).")
    rows = [list(row) for row in data]
    if columns is None:
        columns = [f"column_{i}" for i in range(len(rows[0]) if rows else 0)]
    columns = [str(c) for c in columns]
    for index, row in enumerate(rows):
        if len(row) != len(columns):
            raise TracklightError(
                f"Row {index} of the table has {len(row)} cells but there are {len(columns)} columns."
            )
    return Table(columns, rows)


def to_text(text: Any) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, float) and math.isnan(text):
        return "nan"
    return str(text)
