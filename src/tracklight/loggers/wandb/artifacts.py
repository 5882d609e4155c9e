"""``WandbLogger``'s base: checkpoints logged as model artifacts, and artifacts used and downloaded."""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from tracklight._errors import TracklightError, warn
from tracklight._imports import require
from tracklight._rank import rank_zero_only
from tracklight.loggers import _checkpoints as checkpoints
from tracklight.loggers.wandb.media_api import WandbMediaLogger

if TYPE_CHECKING:
    from tracklight.loggers._sdk_delivery import SdkDelivery

__all__ = ["OFFLINE_MODES", "WandbArtifactLogger"]

#: W&B's modes whose runs stay on this machine: no server to look artifacts up on.
OFFLINE_MODES = ("offline", "dryrun")


class WandbArtifactLogger(WandbMediaLogger):
    """``WandbLogger``'s base: ``log_model`` checkpoints as ``model`` artifacts, queued for the delivery worker."""

    _log_model: bool | str
    _remote: SdkDelivery | None
    _checkpoint_name: str | None
    add_file_policy: str
    _logged_model_time: dict[str, float]
    _checkpoint_callbacks: dict[int, Any]
    _checkpoint_failures: int

    @property
    @abstractmethod
    def experiment(self) -> Any:
        """The ``wandb`` run (``WandbLogger.experiment``)."""

    @abstractmethod
    def _run(self) -> Any:
        """The run, started (with the delivery worker) on first use."""

    @abstractmethod
    def _is_offline(self) -> bool:
        """Whether the run is (or will be) offline."""

    def watch(self, model: Any, log: str | None = "gradients", log_freq: int = 100, log_graph: bool = True) -> None:
        """Log the model's gradients and/or parameters as histograms every ``log_freq`` steps (``wandb.watch``)."""
        self.experiment.watch(model, log=log, log_freq=log_freq, log_graph=log_graph)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """``log_model="all"`` (or ``True`` with ``save_top_k=-1``) logs each checkpoint as it is saved;
        ``log_model=True`` logs the callback's checkpoints once, at ``finalize``, as Lightning does."""
        if not self._log_model:
            return
        if checkpoints.logs_every_save(self._log_model, checkpoint_callback):
            self._log_checkpoints(checkpoint_callback)
        else:
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback

    def _log_checkpoints(self, callback: Any) -> None:
        found = checkpoints.candidates(callback, self._logged_model_time)
        if not found:
            return
        wandb = require("wandb", "wandb")
        run = self._run()
        if not self._checkpoint_name:
            self._checkpoint_name = f"model-{run.id}"
        for candidate in found:
            try:
                artifact = wandb.Artifact(
                    name=self._checkpoint_name, type="model", metadata=checkpoints.metadata(callback, candidate)
                )
                # "mutable" copies the file now, so ModelCheckpoint may replace or delete it before the upload
                artifact.add_file(candidate.path, name="model.ckpt", policy=self.add_file_policy)
                self._remote.put(  # type: ignore[union-attr]  # _run() made it
                    {"kind": "checkpoint", "artifact": artifact, "aliases": candidate.aliases, "path": candidate.path}
                )
            except Exception as err:  # a checkpoint that cannot be logged must not stop training
                self._checkpoint_failures += 1
                if self._checkpoint_failures == 1:
                    warn(
                        f"WandbLogger could not log the checkpoint {candidate.path} as an artifact "
                        f"({type(err).__name__}: {err}). The file is still on disk; log it later with "
                        "wandb.Artifact(...).add_file(path) and run.log_artifact(artifact). Further failures "
                        "are not reported."
                    )
                continue
            self._logged_model_time[candidate.path] = candidate.mtime

    def use_artifact(self, artifact: str, artifact_type: str | None = None) -> Any:
        """Mark an artifact (``"entity/project/name:alias"``) as used by this run and return it."""
        if self._is_offline():
            raise TracklightError(
                f"use_artifact({artifact!r}) needs W&B online: an offline run cannot look artifacts up. "
                "Fix: use an online run (offline=False, WANDB_MODE not 'offline'), or read the file directly."
            )
        return self.experiment.use_artifact(artifact, type=artifact_type)

    @staticmethod
    @rank_zero_only
    def download_artifact(
        artifact: str,
        save_dir: str | os.PathLike[str] | None = None,
        artifact_type: str | None = None,
        use_artifact: bool | None = True,
    ) -> str:
        """Download an artifact (``"entity/project/name:alias"``) and return the directory it is in.

        Through the active run when there is one and ``use_artifact`` is true (so the run records the use),
        else through the W&B API.
        """
        wandb = require("wandb", "wandb")
        run = wandb.run
        mode = getattr(getattr(run, "settings", None), "mode", None) if run is not None else None
        if mode in OFFLINE_MODES or (run is None and os.environ.get("WANDB_MODE") in OFFLINE_MODES):
            raise TracklightError(
                f"download_artifact({artifact!r}) needs W&B online, and the run or WANDB_MODE is offline. "
                "Fix: download it from an online process (WANDB_MODE=online), e.g. before training starts."
            )
        if run is not None and use_artifact:
            found = run.use_artifact(artifact)
        else:
            found = wandb.Api().artifact(artifact, type=artifact_type)
        return str(found.download(root=None if save_dir is None else os.fspath(save_dir)))
