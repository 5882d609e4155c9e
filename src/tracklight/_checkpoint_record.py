"""tracklight's record in a training checkpoint: ``checkpoint["tracklight"] = {"format": 1, "loggers": [...]}``.

The record is plain data (each logger's ``state_dict()``), so the checkpoint loads anywhere, tracklight installed
or not. Reading it back happens before Lightning loads the checkpoint itself, so it must be cheap and safe: the
checkpoint's pickle is read from ``torch.save``'s zip archive with an unpickler that builds plain data only and
stands in a do-nothing object for every class and function the pickle names (no code of the checkpoint runs, no
tensor is read, torch is not needed).
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from typing import IO, Any

from tracklight._errors import warn

#: The checkpoint key that holds the record.
RECORD_KEY = "tracklight"
#: The record's format; a reader skips (with a warning) a record of a format it does not know.
FORMAT = 1


def build(loggers: Iterable[Any], last_step: int | None = None) -> dict[str, Any]:
    """The record of ``loggers``: ``{"format": 1, "loggers": [state_dict() of each]}``.

    ``last_step`` (the Trainer's, when it knows it) replaces each state's own ``"last_step"``: the step up to which
    the checkpoint covers what was logged, which is not always the largest step logged when it was saved (the
    Trainer logs the values of the batch a checkpoint is saved in right after saving it).
    """
    from tracklight.loggers._resume import states_of

    states = states_of(loggers)
    if last_step is not None:
        for state in states:
            if "last_step" in state:
                state["last_step"] = last_step
    return {"format": FORMAT, "loggers": states}


def loggers_in(record: Any, source: str) -> list[Any] | None:
    """The list of logger states of ``record``, or None (with a warning) for a record this version cannot use."""
    if isinstance(record, Mapping) and record.get("format") == FORMAT and isinstance(record.get("loggers"), list):
        return list(record["loggers"])
    warn(
        f"The tracklight record in {source} has a format this version of tracklight does not read "
        f"(format {record.get('format') if isinstance(record, Mapping) else type(record).__name__!r}); the loggers "
        "start new runs. Resume with the tracklight version that wrote it to continue them."
    )
    return None


def read(path: str | os.PathLike[str]) -> Any:
    """``checkpoint["tracklight"]`` of the checkpoint at ``path`` (a file, a URL, or a sharded checkpoint folder
    with ``meta.pt``), or None when it has none or cannot be read that way."""
    path = os.fspath(path)
    if "://" in path:
        import fsspec

        with fsspec.open(path, "rb") as handle:
            return _from_archive(handle)
    if os.path.isdir(path):
        path = os.path.join(path, "meta.pt")
        if not os.path.isfile(path):
            return None
    with open(path, "rb") as handle:
        return _from_archive(handle)


def _from_archive(handle: IO[bytes]) -> Any:
    if not zipfile.is_zipfile(handle):  # torch's legacy format: Lightning never writes it
        return None
    handle.seek(0)
    with zipfile.ZipFile(handle) as archive:
        name = next((n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")), None)
        if name is None:
            return None
        data = archive.read(name)
    checkpoint = _PlainUnpickler(io.BytesIO(data)).load()
    return checkpoint.get(RECORD_KEY) if isinstance(checkpoint, dict) else None


class _Anything:
    """Stands for every object the pickle builds from a class or function: takes any arguments and state."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Anything:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Anything:
        return _Anything()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def add(self, value: Any) -> None:
        pass


class _PlainUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings and numbers; everything else becomes an :class:`_Anything`."""

    def find_class(self, module: str, name: str) -> Any:
        return _Anything

    def persistent_load(self, pid: Any) -> Any:
        return None
