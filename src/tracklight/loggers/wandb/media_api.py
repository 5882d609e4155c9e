"""Lightning's ``WandbLogger`` media helpers (``log_image`` ... ``log_video``), which also serve tracklight's media API.

Arguments are checked and turned into W&B data types here, on the calling thread (``media`` does
the conversion); the logger's ``_log_media`` queues the row for the delivery worker. Files the row needs
until then (copies of the user's files, clips written as WAV) are removed once it was handed to W&B.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from tracklight import media
from tracklight._errors import TracklightError, warn
from tracklight._imports import require
from tracklight._rank import rank_zero_only
from tracklight.loggers.logger import Logger
from tracklight.loggers.wandb import media as wandb_media

if TYPE_CHECKING:
    import numpy as np

__all__ = ["WandbMediaLogger"]


class WandbMediaLogger(Logger):
    """``WandbLogger``'s base: media in, a history row out through :meth:`_log_media`."""

    @abstractmethod
    def _log_media(
        self, key: str, value: Any, step: int | None, weight: int = 64, remove: list[str] | None = None
    ) -> None:
        """Queue a history row ``{key: value}``; ``weight`` (KiB) counts against the queue's bound."""

    @rank_zero_only
    def log_image(self, key: str, images: Any, step: int | None = None, **kwargs: Any) -> None:
        """Log images: tensors, arrays, PIL images, figures, file paths or ``wandb.Image`` objects.

        ``images`` is a list (Lightning's form), a 4-D batch or one image (not a path: a path alone is
        refused, as by Lightning). Keyword arguments go to each ``wandb.Image`` (``caption``, ``masks``,
        ``boxes``...): a list gives one value per image, anything else is shared. ``dataformats``
        (``"CHW"``, ``"HWC"``...) says how to read arrays. Files are copied first, so they may change later.

        Example:
            >>> logger.log_image("samples", [img_a, img_b], caption=["cat", "dog"])  # doctest: +SKIP
        """
        wandb = require("wandb", "wandb")
        entries = _entries(images, "images")
        dataformats = kwargs.pop("dataformats", None)
        options = wandb_media.per_item(kwargs, len(entries), "image")
        with wandb_media.ItemFiles(wandb) as files:
            values = [
                wandb_media.image(wandb, files.path(entry), dataformats, **option)
                for entry, option in zip(entries, options, strict=True)
            ]
            self._log_media(key, values, step, wandb_media.weight(entries), files.keep())

    @rank_zero_only
    def log_text(  # type: ignore[override]  # Lightning's WandbLogger signature, plus the media API's form
        self,
        key: str,
        columns: Any = None,
        data: Any = None,
        dataframe: Any = None,
        step: int | None = None,
        *,
        text: Any = None,
    ) -> None:
        """Log text, in either form.

        * ``log_text(key, "some text", step)`` (tracklight's media API): a ``wandb.Html`` panel.
        * ``log_text(key, columns=[...], data=[[...]])`` or ``dataframe=...`` (Lightning's): a ``wandb.Table``.
        """
        if text is None and dataframe is None and not isinstance(columns, (list, tuple)):
            text = columns
            if step is None and isinstance(data, int):
                step, data = data, None
        if text is not None:
            self._write_text(key, media.to_text(text), step)
            return
        self.log_table(key, columns, data, dataframe, step)

    @rank_zero_only
    def log_table(
        self,
        key: str,
        columns: list[str] | None = None,
        data: list[list[Any]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        """Log a ``wandb.Table`` from ``columns`` and ``data`` (rows) or a pandas ``dataframe``.

        Cells may be any W&B data type (``wandb.Image``, ``wandb.Audio``, ``wandb.Html``...).
        """
        if dataframe is not None:
            wandb = require("wandb", "wandb")
            self._log_media(key, wandb.Table(columns=columns, data=data, dataframe=dataframe), step)
            return
        self._write_table(key, media.to_table(columns, [] if data is None and columns else data), step)

    @rank_zero_only
    def log_audio(  # type: ignore[override]  # Lightning's WandbLogger signature; `audio=` still works
        self, key: str, audios: Any = None, step: int | None = None, **kwargs: Any
    ) -> None:
        """Log audio clips: a list (Lightning's form) or one clip given as samples; file paths or 1-D/2-D arrays.

        ``sample_rate`` (44100 unless given) and ``caption`` may be single values or one per clip;
        ``audio=`` is taken for ``audios`` (the name in tracklight's media API).

        Example:
            >>> logger.log_audio("speech", [clip], sample_rate=[16000], caption=["hello"])  # doctest: +SKIP
        """
        if audios is None:
            audios = kwargs.pop("audio", None)
        if audios is None:
            raise TracklightError(f"log_audio({key!r}) got no audio. Fix: log_audio(key, [clip, ...], step).")
        wandb = require("wandb", "wandb")
        entries = _entries(audios, "audios")
        options = wandb_media.per_item(kwargs, len(entries), "clip")
        if not wandb_media.can_log_audio():
            for entry, option in zip(entries, options, strict=True):
                self._keep_audio(key, entry, step, **option)
            return
        with wandb_media.ItemFiles(wandb) as files:
            values = [files.clip(entry, **option) for entry, option in zip(entries, options, strict=True)]
            self._log_media(key, values, step, wandb_media.weight(entries), files.keep())

    @rank_zero_only
    def log_video(self, key: str, videos: Any, step: int | None = None, **kwargs: Any) -> None:
        """Log videos: a list of file paths (``.mp4``, ``.gif``...) or ``(time, channel, height, width)`` uint8
        arrays (one array alone is taken too). ``caption``, ``fps`` and ``format`` may be single values or one
        per video.
        """
        wandb = require("wandb", "wandb")
        entries = _entries(videos, "videos", batches=False)
        options = wandb_media.per_item(kwargs, len(entries), "video")
        with wandb_media.ItemFiles(wandb) as files:
            values = [
                wandb_media.video(wandb, files.path(entry), **option)
                for entry, option in zip(entries, options, strict=True)
            ]
            self._log_media(key, values, step, wandb_media.weight(entries), files.keep())

    def _write_images(self, key: str, images: list[media.Image], step: int | None) -> None:
        wandb = require("wandb", "wandb")
        values = [wandb_media.neutral_image(wandb, image) for image in images]
        self._log_media(key, values, step, wandb_media.weight(images))

    def _write_histogram(self, key: str, values: np.ndarray, step: int | None, bins: Any) -> None:
        self._log_media(key, wandb_media.histogram(require("wandb", "wandb"), values, bins), step)

    def _write_text(self, key: str, text: str, step: int | None) -> None:
        self._log_media(key, wandb_media.text_html(require("wandb", "wandb"), text), step)

    def _write_audio(self, key: str, audio: media.Audio, step: int | None) -> None:
        if not wandb_media.can_log_audio():
            self._keep_audio(key, audio, step)
            return
        with wandb_media.ItemFiles(require("wandb", "wandb")) as files:
            self._log_media(key, files.neutral(audio), step, remove=files.keep())

    def _keep_audio(
        self, key: str, clip: Any, step: int | None, sample_rate: int | None = None, caption: str | None = None
    ) -> None:
        """Without ``soundfile`` W&B logs no audio at all: keep the clip as a WAV file and say how to fix it."""
        if "_audio_fallback_said" not in self.__dict__:
            self._audio_fallback_said = True
            warn(
                "W&B needs the 'soundfile' package to log audio, and it is not installed: WandbLogger keeps the "
                "clips as WAV files instead. Fix: pip install soundfile"
            )
        if isinstance(clip, (str, os.PathLike)):
            extension = os.path.splitext(os.fspath(clip))[1].lstrip(".") or "audio"
            with open(clip, "rb") as handle:
                self._keep_media("audio", key, step, [(extension, handle.read())], caption=caption)
            return
        if not isinstance(clip, media.Audio):
            clip = media.to_audio(clip, int(sample_rate or 44100), caption)
        self._keep_media("audio", key, step, [("wav", clip.wav())], sample_rate=clip.sample_rate, caption=clip.caption)

    def _write_figure(self, key: str, figure: Any, step: int | None) -> None:
        self._log_media(key, wandb_media.figure(require("wandb", "wandb"), figure), step)

    def _write_table(self, key: str, table: media.Table, step: int | None) -> None:
        self._log_media(key, wandb_media.table(require("wandb", "wandb"), table), step)


def _entries(values: Any, what: str, batches: bool = True) -> list[Any]:
    """The items of one of Lightning's list arguments: a path alone is refused, as Lightning refuses it."""
    if isinstance(values, (str, bytes, os.PathLike)):
        raise wandb_media.MediaTypeError(
            f'Expected a list as "{what}", found {type(values)}. Fix: pass a list, e.g. [{values!r}].'
        )
    if not batches and not isinstance(values, (list, tuple)):
        return [values]
    return wandb_media.items(values)
