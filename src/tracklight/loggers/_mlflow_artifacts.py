"""Files MLFlowLogger uploads as run artifacts: media and checkpoints, put aside first, then queued.

Every upload gets a directory of its own under ``<save_dir>/tracklight-staging/<local id>/``, so the
file keeps its name, and the delivery worker removes it once uploaded. Checkpoints are hard-linked (or
copied) there, so ``ModelCheckpoint`` may delete or replace them before the upload happens. When
``save_dir`` cannot be written, files wait in ``<temporary directory>/tracklight-staging/`` instead.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from tracklight._errors import warn
from tracklight.delivery.spill import Item

__all__ = ["ArtifactStager", "table_json"]

_UNSAFE_PATH = re.compile(r"[^A-Za-z0-9_\-. ]+")

#: The ``ModelCheckpoint`` settings recorded in a checkpoint's ``metadata.yaml``, as Lightning records them.
_CHECKPOINT_SETTINGS = (
    "monitor",
    "mode",
    "save_last",
    "save_top_k",
    "save_weights_only",
    "_every_n_train_steps",
    "_every_n_val_epochs",
)


class ArtifactStager:
    """Writes files aside and returns the delivery items that upload them.

    Args:
        folder: Where the staging directories go (``<save_dir>/tracklight-staging/<local id>``).
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._moved = False
        self._media_names: Counter[str] = Counter()
        self._logged_checkpoints: dict[str, int] = {}

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
        for path, score, aliases in self._new_checkpoints(callback):
            folder = self._new_dir()
            staged = os.path.join(folder, os.path.basename(path))
            try:
                os.link(path, staged)  # a hard link survives ModelCheckpoint deleting or replacing the file
            except OSError:
                shutil.copy2(path, staged)
            metadata = {
                "score": _plain_score(score),
                "original_filename": os.path.basename(path),
                "Checkpoint": {
                    name: _plain_value(getattr(callback, name))
                    for name in _CHECKPOINT_SETTINGS
                    if hasattr(callback, name)
                },
            }
            with open(os.path.join(folder, "metadata.yaml"), "w", encoding="utf-8") as handle:
                yaml.safe_dump(metadata, handle, default_flow_style=False)
            with open(os.path.join(folder, "aliases.txt"), "w", encoding="utf-8") as handle:
                handle.write(str(aliases))
            stem = Path(path).stem
            items.extend(
                {"kind": "artifact", "path": os.path.join(folder, name), "artifact_path": stem, "remove": True}
                for name in (os.path.basename(path), "metadata.yaml", "aliases.txt")
            )
        return items

    def _new_checkpoints(self, callback: Any) -> list[tuple[str, Any, list[str]]]:
        """As Lightning scans them: the last, the best and the top-k checkpoints (a path's score from the
        top-k if it is there, else from best, else the current score), skipping those uploaded unchanged."""
        candidates: dict[str, Any] = {}
        if getattr(callback, "last_model_path", "") and hasattr(callback, "current_score"):
            candidates[callback.last_model_path] = callback.current_score
        if getattr(callback, "best_model_path", "") and hasattr(callback, "best_model_score"):
            candidates[callback.best_model_path] = callback.best_model_score
        candidates.update(getattr(callback, "best_k_models", {}) or {})
        found = []
        for path, score in candidates.items():
            try:
                stamp = os.stat(path).st_mtime_ns
            except OSError:
                continue
            if self._logged_checkpoints.get(path) != stamp:
                self._logged_checkpoints[path] = stamp
                aliases = ["latest", "best"] if path == getattr(callback, "best_model_path", None) else ["latest"]
                found.append((stamp, path, score, aliases))
        return [(path, score, aliases) for _, path, score, aliases in sorted(found)]

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


def _plain_score(value: Any) -> Any:
    """A checkpoint's score as Lightning records it: a tensor's (or NumPy scalar's) Python value, with its type
    (an integer score stays an integer); anything YAML cannot hold, as text."""
    if hasattr(value, "item"):
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):  # a tensor of several values
            return str(value)
    return _plain_value(value)


def _plain_value(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str, type(None))) else str(value)
