"""``MLFlowLogger``'s base: each media kind, and each checkpoint, becomes a run artifact.

The file is written aside on the calling thread (``artifacts.ArtifactStager``: in ``tracklight-staging/`` or the
temporary directory), so the user may change or delete theirs; the delivery worker uploads it.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from tracklight import media
from tracklight.loggers.logger import Logger

if TYPE_CHECKING:
    import numpy as np

    from tracklight.loggers.mlflow.artifacts import ArtifactStager

__all__ = ["MlflowMediaLogger"]


class MlflowMediaLogger(Logger):
    """``MLFlowLogger``'s base: media and checkpoints staged as files, handed to :meth:`_put` as upload items."""

    _local_dir: str
    _local_id: str
    _artifacts: ArtifactStager | None
    _said: set[str]

    @abstractmethod
    def _put(self, items: list[dict[str, Any]]) -> None:
        """Queue delivery items for the worker."""

    @abstractmethod
    def _say_once(self, topic: str, message: str) -> None:
        """Warn once per ``topic``."""

    # ---- media: every kind becomes a run artifact -------------------------------------------------------

    def _write_images(self, key: str, images: list[media.Image], step: int | None) -> None:
        for image in images:
            self._log_image_file(key, image.png(), step)
        if any(image.caption for image in images):
            self._say_once("captions", "MLFlowLogger: MLflow images have no captions, so captions are not stored.")

    def _write_figure(self, key: str, figure: Any, step: int | None) -> None:
        self._log_image_file(key, media.figure_png(figure), step)

    def _write_text(self, key: str, text: str, step: int | None) -> None:
        self._stage("text", key, step, "txt", text.encode("utf-8"))

    def _write_table(self, key: str, table: media.Table, step: int | None) -> None:
        from tracklight.loggers.mlflow.artifacts import table_json

        self._stage("tables", key, step, "json", table_json(table.columns, table.rows))

    def _write_histogram(self, key: str, values: np.ndarray, step: int | None, bins: Any) -> None:
        from tracklight.loggers.mlflow.artifacts import table_json

        counts, edges = media.histogram_counts(values, bins)
        rows = [[float(a), float(b), int(c)] for a, b, c in zip(edges[:-1], edges[1:], counts, strict=False)]
        extra = {"min": float(values.min()), "max": float(values.max()), "num": int(values.size)}
        self._stage("histograms", key, step, "json", table_json(["left", "right", "count"], rows, extra))

    def _write_audio(self, key: str, audio: media.Audio, step: int | None) -> None:
        self._stage("audio", key, step, "wav", audio.wav())

    # ---- staging: files written aside, then uploaded by the worker ----------------------------------------

    def _stager(self) -> ArtifactStager:
        if self._artifacts is None:
            from tracklight.loggers.mlflow.artifacts import ArtifactStager

            self._artifacts = ArtifactStager(os.path.join(self._local_dir, "tracklight-staging", self._local_id))
        return self._artifacts

    def _stage(self, kind: str, key: str, step: int | None, extension: str, content: bytes) -> None:
        try:
            items = self._stager().media(kind, key, step, extension, content)
        except OSError as error:
            self._not_staged(f"the {kind} {key!r}", error)
            return
        self._put(items)

    def _log_image_file(self, key: str, png: bytes, step: int | None) -> None:
        try:
            items = self._stager().image(key, png, step)
        except OSError as error:
            self._not_staged(f"the image {key!r}", error)
            return
        if "images-tag" not in self._said:
            self._said.add("images-tag")
            items.append({"kind": "tag", "key": "mlflow.loggedImages", "value": "True"})
        self._put(items)

    def _log_checkpoints(self, callback: Any) -> None:
        try:
            items = self._stager().checkpoints(callback)
        except OSError as error:
            self._not_staged("checkpoints", error)
            return
        self._put(items)

    def _not_staged(self, what: str, error: OSError) -> None:
        """No disk takes a file waiting for upload: training goes on without it, and says so once."""
        self._say_once(
            "not-staged",
            f"MLFlowLogger: {what} could not be written aside for upload, in {self._local_dir} nor in the temporary "
            f"directory ({error}), so it is not uploaded (nor are later files while no disk takes them).",
        )
