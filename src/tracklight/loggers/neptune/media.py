"""``NeptuneLogger``'s base: each media kind through Neptune's series and ``File`` uploads."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from tracklight import media
from tracklight.loggers._sdk_delivery import media_weight
from tracklight.loggers.logger import Logger
from tracklight.loggers.neptune import values as neptune_values

if TYPE_CHECKING:
    import numpy as np

__all__ = ["NeptuneMediaLogger"]


class NeptuneMediaLogger(Logger):
    """``NeptuneLogger``'s base: images and text appended to series, other kinds uploaded as one file per call."""

    #: How many files each ``<key>/step_<step>`` path holds, so a repeated step gets its own name.
    _file_labels: dict[str, int]

    @abstractmethod
    def _put(self, item: dict[str, Any], weight: int = 1) -> None:
        """Queue one item for the worker; ``weight`` counts against the queue's bound."""

    @abstractmethod
    def _path(self, key: str) -> str:
        """The key's path in the run, under the logger's prefix."""

    @abstractmethod
    def _say(self, topic: str, message: str) -> None:
        """Warn once per ``topic``."""

    def _write_images(self, key: str, images: list[media.Image], step: int | None) -> None:
        for index, image in enumerate(images):
            self._append_image(key, image.png(), step, image.caption, quiet=index > 0)

    def _append_image(
        self, key: str, png: bytes, step: int | None, caption: str | None = None, quiet: bool = False
    ) -> None:
        item = {"kind": "image", "op": "append", "path": self._path(key), "value": png, "extension": "png"}
        self._put({**item, "step": step, "name": caption, "quiet": quiet}, media_weight(len(png)))

    def _write_histogram(self, key: str, values: np.ndarray, step: int | None, bins: Any) -> None:
        # Neptune has no histogram type: the bins go in a CSV file, which the app shows as a table and a chart.
        counts, edges = media.histogram_counts(values, bins)
        rows = [[float(a), float(b), int(c)] for a, b, c in zip(edges[:-1], edges[1:], counts, strict=False)]
        self._upload_file("histogram", key, step, media.Table(["left", "right", "count"], rows).csv(), "csv")

    def _write_text(self, key: str, text: str, step: int | None) -> None:
        path = self._path(key)
        chunks = neptune_values.text_chunks(text)
        if len(chunks) > 1:
            self._say(
                f"text:{path}",
                f"NeptuneLogger: a text logged under {key!r} is longer than the {neptune_values.MAX_TEXT} characters a "
                "Neptune string series keeps per entry, so it was split over consecutive entries "
                "(reported once per key).",
            )
        for index, chunk in enumerate(chunks):
            self._put({"kind": "text", "op": "append", "path": path, "value": chunk, "step": step, "quiet": index > 0})

    def _write_audio(self, key: str, audio: media.Audio, step: int | None) -> None:
        self._upload_file("audio", key, step, audio.wav(), "wav")

    def _write_figure(self, key: str, figure: Any, step: int | None) -> None:
        png = media.figure_png(figure) if media.is_figure(figure) else media.png_bytes(media.image_pixels(figure))
        self._append_image(key, png, step)

    def _write_table(self, key: str, table: media.Table, step: int | None) -> None:
        self._upload_file("table", key, step, table.csv(), "csv")

    def _upload_file(self, kind: str, key: str, step: int | None, content: str | bytes, extension: str) -> None:
        """One file per call at ``<prefix>/<key>/step_<step>`` (``_1``, ``_2``... when a step repeats)."""
        base = f"{self._path(key)}/" + ("unstepped" if step is None else f"step_{step}")
        count = self._file_labels.get(base, 0)
        self._file_labels[base] = count + 1
        item = {"kind": kind, "op": "file", "path": base if count == 0 else f"{base}_{count}", "content": content}
        self._put({**item, "extension": extension}, media_weight(len(content)))
