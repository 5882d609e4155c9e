"""Fabric's reading of ``root_dir``: the directory given to the logger, which holds ``name/version``."""

from __future__ import annotations

from tracklight.loggers._versioned import VersionedDirLogger

__all__ = ["FabricDirs"]


class FabricDirs(VersionedDirLogger):
    """``root_dir`` is the constructor's ``root_dir`` (the Trainer's loggers call ``save_dir/name`` so), and the
    versions live in ``root_dir/name``, as Lightning's Fabric loggers lay them out."""

    @property
    def root_dir(self) -> str:
        return self.save_dir

    @property
    def _versions_dir(self) -> str:
        return self._name_dir()
