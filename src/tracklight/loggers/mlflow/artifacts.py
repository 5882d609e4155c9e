"""Files MLFlowLogger uploads as run artifacts: media and checkpoints, put aside first, then queued.

Every upload gets a directory of its own under ``<save_dir>/tracklight-staging/<local id>/``, so the
file keeps its name, and the delivery worker removes it once uploaded. Which checkpoints are due, and how
they are set aside (hard-linked or copied, so ``ModelCheckpoint`` may delete or replace them before the
upload happens), is ``tracklight.loggers._checkpoints``, shared with the other loggers. When
``save_dir`` cannot be written, files wait in ``<temporary directory>/tracklight-staging/`` instead.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from tracklight._errors import warn
from tracklight.delivery.spill import Item
from tracklight.loggers import _checkpoints

__all__ = ["ArtifactStager", "table_json"]

_UNSAFE_PATH = re.compile(r"[^A-Za-z0-9_\-. ]+")

#: The ``ModelCheckpoint`` settings in a checkpoint's ``metadata.yaml``, as Lightning's MLFlowLogger records them.
_CHECKPOINT_SETTINGS = (*_checkpoints.CALLBACK_SETTINGS, "_every_n_val_epochs")


class ArtifactStager:
    """Writes files aside and returns the delivery items that upload them.

    Args:
        folder: Where the staging directories go (``<save_dir>/tracklight-staging/<local id>``).
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._moved = False
        self._media_names: Counter[str] = Counter()
        self._logged_checkpoints: dict[str, float] = {}

    def media(self, kind: str, key: str, step: int | None, extension: str, content: bytes) -> list[Item]:
        """``content`` as ``<kind>/<key>/step_<step>.<extension>`` (``_1``, ``_2``... for more at that step)."""
        folder = f"{kind}/{_safe_path(key)}"
        stem = f"step_{0 if step is None else int(step)}"
        self._media_names[f"{folder}/{stem}"] += 1
        count = self._media_names[f"{folder}/{stem}"]
        name = f"{stem}.{extension}" if count == 1 else f"{stem}_{count - 1}.{extension}"
        return [self._bytes(folder, name, content)]

    def image(self, key: str, png: bytes, step: int | None) -> list[Item]:
        """An image the way ``MlflowClient.log_image(key=, step=)`` stores it, so MLflow's UI shows it by step."""
        safe_key = re.sub(r"[^A-Za-z0-9_\-./ ]", "_", key).replace("/", "~")
        stem = f"{safe_key}+step+{0 if step is None else int(step)}+timestamp+{int(time.time() * 1000)}+{uuid.uuid4()}"
        items = [self._bytes("images", f"{stem}.png", png)]
        thumbnail = _thumbnail_webp(png)
        if thumbnail is not None:
            items.append(self._bytes("images", f"{stem}+compressed.webp", thumbnail))
        return items

    def checkpoints(self, callback: Any) -> list[Item]:
        """The checkpoints of ``callback`` that are new or changed since their last upload, oldest first, each
        with Lightning's ``metadata.yaml`` and ``aliases.txt`` in ``<checkpoint stem>/``."""
        items: list[Item] = []
        for candidate in _checkpoints.candidates(callback, self._logged_checkpoints):
            staged = _checkpoints.stage(candidate.path, self._new_dir())
            folder = os.path.dirname(staged)
            settings = {key: _plain(getattr(callback, key)) for key in _CHECKPOINT_SETTINGS if hasattr(callback, key)}
            metadata = {
                "score": _plain(candidate.score),
                "original_filename": os.path.basename(candidate.path),
                "Checkpoint": settings,  # Lightning's MLFlowLogger names it so (its WandbLogger, by the class)
            }
            with open(os.path.join(folder, "metadata.yaml"), "w", encoding="utf-8") as handle:
                yaml.safe_dump(metadata, handle, default_flow_style=False)
            with open(os.path.join(folder, "aliases.txt"), "w", encoding="utf-8") as handle:
                handle.write(str(candidate.aliases))
            self._logged_checkpoints[candidate.path] = candidate.mtime
            stem = Path(candidate.path).stem
            items.extend(
                {"kind": "artifact", "path": os.path.join(folder, name), "artifact_path": stem, "remove": True}
                for name in (os.path.basename(staged), "metadata.yaml", "aliases.txt")
            )
        return items

    def tidy(self) -> None:
        """Remove the staging folder, and ``tracklight-staging`` above it, where nothing waits in them any more
        (the worker removes each uploaded file and its own directory; what failed to upload stays)."""
        for folder in (self.folder, os.path.dirname(self.folder)):
            try:
                os.rmdir(folder)
            except OSError:  # not empty (files still to upload, another run's folder) or already gone
                return

    def _new_dir(self) -> str:
        name = uuid.uuid4().hex[:12]
        try:
            os.makedirs(os.path.join(self.folder, name))
        except OSError as error:
            if self._moved:
                raise
            # Carry on in the temporary directory (raises when that cannot be written either).
            fallback = os.path.join(tempfile.gettempdir(), "tracklight-staging", os.path.basename(self.folder))
            os.makedirs(os.path.join(fallback, name))
            old, self.folder, self._moved = self.folder, fallback, True
            warn(f"Could not write files to upload in {old} ({error}); they wait in {fallback} instead.")
        return os.path.join(self.folder, name)

    def _bytes(self, artifact_dir: str, name: str, content: bytes) -> Item:
        path = os.path.join(self._new_dir(), name)
        with open(path, "wb") as handle:
            handle.write(content)
        return {"kind": "artifact", "path": path, "artifact_path": artifact_dir, "remove": True}


def table_json(columns: list[str], rows: list[list[Any]], extra: dict[str, Any] | None = None) -> bytes:
    """A table as MLflow's ``log_table`` writes it: pandas' ``split`` layout."""
    return json.dumps({"columns": list(columns), "data": rows, **(extra or {})}, default=str).encode("utf-8")


def _safe_path(key: str) -> str:
    parts = [_UNSAFE_PATH.sub("_", part).strip() or "_" for part in key.split("/")]
    return "/".join("_" if part in (".", "..") else part for part in parts)


def _thumbnail_webp(png: bytes) -> bytes | None:
    """The small copy MLflow's UI loads in its image grid (longest side 256 px), or ``None`` without Pillow."""
    try:
        from PIL import Image as PILImage
    except ImportError:
        return None
    with PILImage.open(io.BytesIO(png)) as image:
        image.thumbnail((256, 256))
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP")
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    """What YAML can hold as it is (a score is a Python number already, of its logged type), else text."""
    return value if isinstance(value, (bool, int, float, str, type(None))) else str(value)
