"""Which checkpoints of a ``ModelCheckpoint`` are due for upload, with what aliases and metadata.

Decisions on the callback's state and the files on disk, and :func:`stage`, which sets a file aside for
an upload that happens later, on the delivery worker; ``WandbLogger``, ``CometLogger`` and
``NeptuneLogger`` do the logging.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from tracklight._errors import TracklightError

#: ``ModelCheckpoint`` settings copied into every artifact's metadata (the ones Lightning records).
CALLBACK_SETTINGS = ("monitor", "mode", "save_last", "save_top_k", "save_weights_only", "_every_n_train_steps")


@dataclass(frozen=True)
class Candidate:
    """A checkpoint file to log: its path, modification time and score, and whether it is the best one."""

    path: str
    mtime: float
    score: Any  # a Python number of the logged type, or None
    best: bool

    @property
    def aliases(self) -> list[str]:
        return ["latest", "best"] if self.best else ["latest"]


def check_log_model(log_model: Any) -> bool | str:
    if log_model in (True, False, "all"):
        return log_model
    raise TracklightError(
        f"log_model={log_model!r} is not one of False, True or 'all'. Fix: log_model=True uploads the best and the "
        "last checkpoints, log_model='all' every checkpoint, log_model=False none."
    )


def logs_every_save(log_model: bool | str, callback: Any) -> bool:
    """``'all'`` logs every kept checkpoint as it is saved; so does ``True`` when every checkpoint is kept."""
    return log_model == "all" or (log_model is True and getattr(callback, "save_top_k", None) == -1)


def candidates(callback: Any, logged: dict[str, float], only_best_and_last: bool = False) -> list[Candidate]:
    """The callback's kept checkpoints not logged yet (or rewritten since), oldest first.

    ``logged`` maps paths already logged to the modification time they had then: a file saved again
    under the same name (``last.ckpt``) is logged again. With ``only_best_and_last``, the other top-k
    files are left for later.
    """
    scores: dict[str, Any] = {}
    last = getattr(callback, "last_model_path", "")
    if last:
        scores[last] = getattr(callback, "current_score", None)
    best = getattr(callback, "best_model_path", "")
    if best:
        scores[best] = getattr(callback, "best_model_score", None)
    if not only_best_and_last:
        for path, score in (getattr(callback, "best_k_models", None) or {}).items():
            scores.setdefault(path, score)
    found = []
    for path, score in scores.items():
        try:
            if not os.path.isfile(path):
                continue
            mtime = os.stat(path).st_mtime
        except OSError:
            continue
        if path in logged and logged[path] >= mtime:
            continue
        found.append(Candidate(path, mtime, _score(score), path == best))
    return sorted(found, key=lambda candidate: (candidate.mtime, candidate.best))


def metadata(callback: Any, candidate: Candidate) -> dict[str, Any]:
    """Lightning's artifact metadata: the score, the file's original name and the callback's settings."""
    settings = {key: getattr(callback, key) for key in CALLBACK_SETTINGS if hasattr(callback, key)}
    return {
        "score": candidate.score,
        "original_filename": os.path.basename(candidate.path),
        callback.__class__.__name__: settings,  # through a weakref.proxy too
    }


def stage(path: str, directory: str) -> str:
    """A copy of ``path``, in a new folder under ``directory``, that ``ModelCheckpoint`` cannot change or delete.

    A hard link when the file system allows it (instant; Lightning replaces a checkpoint it saves again,
    which leaves the link as it was), else a copy. The caller removes the folder once the upload is done.
    """
    os.makedirs(directory, exist_ok=True)
    staged = os.path.join(tempfile.mkdtemp(prefix="staged-", dir=directory), os.path.basename(path))
    try:
        os.link(path, staged)
    except OSError:
        shutil.copy2(path, staged)
    return staged


def _score(score: Any) -> Any:
    """The score as a plain number of the type it was logged with (``Tensor.item()``), as Lightning records it."""
    if score is None:
        return None
    item = getattr(score, "item", None)
    return item() if item is not None else score
