"""Which process is rank zero, read the way Lightning and torch.distributed set it."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

_ENV_RANK_KEYS = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")

F = TypeVar("F", bound=Callable[..., Any])


def global_rank() -> int:
    """The global rank of this process.

    Lightning's ``rank_zero_only.rank`` wins when Lightning has set it (its strategies update it per process),
    then an initialised ``torch.distributed`` process group, then the usual launcher environment variables.
    Nothing is imported: a package that is not loaded yet cannot have set a rank.
    """
    lightning_rank = sys.modules.get("lightning_utilities.core.rank_zero")
    if lightning_rank is not None:
        rank = getattr(lightning_rank.rank_zero_only, "rank", None)
        if rank is not None:
            return int(rank)
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return _env_rank()


_env_cache: tuple[int, int] | None = None


def _env_rank() -> int:
    """The rank a launcher put in the environment, read once per process (this is on every logging call)."""
    global _env_cache
    pid = os.getpid()
    if _env_cache is None or _env_cache[0] != pid:
        _env_cache = (pid, _read_env_rank())
    return _env_cache[1]


def _read_env_rank() -> int:
    for key in _ENV_RANK_KEYS:
        value = os.environ.get(key)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                continue
    return 0


def rank_zero_only(fn: F) -> F:
    """Run ``fn`` only on the rank-zero process; other ranks get ``None`` back.

    Example:
        >>> @rank_zero_only
        ... def hello():
        ...     return "hi"
        >>> hello()
        'hi'
    """

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if global_rank() == 0:
            return fn(*args, **kwargs)
        return None

    return wrapped  # type: ignore[return-value]
