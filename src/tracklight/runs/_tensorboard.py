"""Reader of TensorBoard runs: a folder of ``events.out.tfevents.*`` files, as tracklight's and Lightning's
``TensorBoardLogger``, torch's ``SummaryWriter`` and TensorFlow write them (``simple_value`` scalars and the
newer tensor scalars of the ``scalars`` plugin; images become media files).

All event files of the folder make one run (tracklight writes its scalars and ``SummaryWriter``'s media into
separate files), read in name order, which is the order they were started. A ``SessionLog.START`` record (a
resumed run's purge, or ``SummaryWriter(purge_step=...)``) drops the points read before it at its step or later,
as TensorBoard does, so a resumed run shows each step once. Hyperparameters come from the
``hparams.yaml`` beside them (Lightning's layout), else from the HPARAMS plugin's data when TensorBoard is
installed to decode it. The decoding itself is :mod:`tracklight.runs._tfrecord` (no TensorBoard needed).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tracklight.runs import _tfrecord
from tracklight.runs._files import media_index, mtime, name_and_version, read_hparams
from tracklight.runs._run import MediaFile, Points, Run, RunError, RunInfo, last_step, last_time

__all__ = ["TensorBoardRun", "scan"]

PREFIX = "events.out.tfevents."


class TensorBoardRun(Run):
    backend = "tensorboard"

    def __init__(self, ref: str, path: str) -> None:
        super().__init__(ref, path)
        self._decoded: list[_tfrecord.Decoded] | None = None

    def event_files(self) -> list[str]:
        try:
            names = sorted(name for name in os.listdir(self.path) if name.startswith(PREFIX))
        except OSError as err:
            raise RunError(self.path, f"cannot be listed ({err.strerror})") from err
        return [os.path.join(self.path, name) for name in names]

    def info(self) -> RunInfo:
        points = self.points()
        name, version = name_and_version(self.path)
        return RunInfo(
            ref=self.ref,
            backend=self.backend,
            name=name,
            version=version,
            steps=last_step(points),
            updated=last_time(points) or mtime(*self.event_files()),
            metrics=len(points),
            params=len(self.params()),
        )

    def params(self) -> dict[str, Any]:
        path = os.path.join(self.path, "hparams.yaml")
        if os.path.exists(path):
            return read_hparams(path)
        return _plugin_hparams([c for d in self._files() for c in d.hparams_content])

    def _read(self) -> dict[str, Points]:
        merged: dict[str, list[Any]] = {}
        for number, decoded in enumerate(self._files()):
            for tag, parts in decoded.scalars.items():
                for order, step, wall, value in parts:
                    merged.setdefault(tag, []).append((np.full(len(order), number), order, step, wall, value))
        purges = [(number, order, step) for number, d in enumerate(self._files()) for order, step in d.purges]
        found = {}
        for tag, parts in merged.items():
            files, order, step, wall, value = (np.concatenate(column) for column in zip(*parts, strict=False))
            sort = np.lexsort((order, files))
            files, order, step, wall, value = files[sort], order[sort], step[sort], wall[sort], value[sort]
            if purges:
                keep = _not_purged(files, order, step, purges)
                files, order, step, wall, value = files[keep], order[keep], step[keep], wall[keep], value[keep]
            found[tag] = Points.of(step, value, wall)
        return found

    def media(self) -> list[MediaFile]:
        found = []
        for decoded in self._files():
            for number, (tag, step, _wall, image) in enumerate(decoded.images):
                found.append(MediaFile(tag, "image", step, f"{step}_{number}.png", _constant(image)))
        return found + media_index(self.path)

    def _sources(self) -> list[str]:
        return self.event_files()

    def _files(self) -> list[_tfrecord.Decoded]:
        with self._lock:
            if self._decoded is None:
                self._decoded = [_decode_file(path) for path in self.event_files()]
            return self._decoded


def _not_purged(files: np.ndarray, order: np.ndarray, step: np.ndarray, purges: list[tuple[int, int, int]]) -> Any:
    """Which points survive the run's ``SessionLog.START`` records, as TensorBoard applies them: each drops the
    points read before it (earlier files, or earlier in its file) at its step or later. A resumed run's purge
    record is how each step is shown once."""
    keep = np.ones(len(step), dtype=bool)
    for number, position, purge_step in purges:
        before = (files < number) | ((files == number) & (order < position))
        keep &= ~(before & (step >= purge_step))
    return keep


def _decode_file(path: str) -> _tfrecord.Decoded:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise RunError(path, f"cannot be read ({err.strerror})") from err
    starts, lengths, _cut_short = _tfrecord.frames(data)  # a cut-short last record: still being written
    try:
        return _tfrecord.decode(data, starts, lengths)
    except _tfrecord.DamagedRecord as err:
        raise RunError(path, f"is damaged: {err}") from err


def _plugin_hparams(contents: list[bytes]) -> dict[str, Any]:
    """Hyperparameters from the HPARAMS plugin's ``session_start_info`` (decoded with TensorBoard's protos)."""
    if not contents:
        return {}
    try:
        from tensorboard.plugins.hparams import plugin_data_pb2
    except ImportError:
        return {}
    found: dict[str, Any] = {}
    for content in contents:
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            for key, value in data.session_start_info.hparams.items():
                kind = value.WhichOneof("kind")
                found[key] = getattr(value, kind) if kind and kind != "null_value" else None
    return found


def _constant(content: bytes) -> Any:
    return lambda: content


def scan(folder: str, names: set[str]) -> list[Run]:
    """The TensorBoard run in ``folder``, if it holds event files."""
    return [TensorBoardRun(folder, folder)] if any(name.startswith(PREFIX) for name in names) else []
