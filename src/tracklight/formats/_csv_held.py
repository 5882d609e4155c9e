"""What a CSV table says about rows no disk took (held in memory, maybe uploaded; dropped; lost), and the
process-wide hooks that say it at exit and reset a forked child's tables."""

from __future__ import annotations

import atexit
import contextlib
import os
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from tracklight._errors import warn

_tables: weakref.WeakSet[Any] = weakref.WeakSet()
_fork_hooks: list[Callable[[], None]] = []
_exited = False


def track(table: Any) -> None:
    """Report ``table``'s held and dropped rows at exit (``table.report("exit")``) and call ``table._forked()`` in
    a forked child."""
    _tables.add(table)


def exited() -> bool:
    """Whether the exit report ran: nothing is written after it (a staging folder removed at exit stays removed)."""
    return _exited


def at_fork_in_child(hook: Callable[[], None]) -> None:
    _fork_hooks.append(hook)


def _after_fork_in_child() -> None:
    for hook in _fork_hooks:
        hook()
    for table in list(_tables):
        table._forked()


def _at_exit() -> None:
    """Say what is held in memory or was dropped, with the numbers. Registered when the first table module is
    imported, before the flushers' own exit hooks, so it runs after them (atexit runs last-in first-out)."""
    global _exited
    _exited = True
    for table in list(_tables):
        if table._pid == os.getpid():
            with contextlib.suppress(Exception):
                table.report("exit")


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)


def describe_held(
    path: str, when: str, held: int, dropped: int, limit: int, error: str | None, stored: str | None
) -> str:
    """The warning for ``held`` rows in memory and ``dropped`` ones at ``when`` ("finalize", "close", "exit");
    ``stored``: the URL an uploader put the held rows in, or None.

    Example:
        >>> describe_held("m.csv", "exit", 3, 0, 10, "OSError: full", None)[54:]
        '3 rows held in memory are lost with the process. Free space or fix permissions.'
    """
    if held and stored:
        fate = f"{held:,} rows are held in memory and are in {stored}"
    elif held and when in ("exit", "close"):
        fate = f"{held:,} rows held in memory are lost" + (" with the process" if when == "exit" else "")
    elif held:
        fate = (
            f"{held:,} rows are held in memory and written as soon as the disk takes them (retried several times a "
            f"second while the process runs; at most {limit:,} are held)"
        )
    else:
        fate = "every row held in memory was written since"
    lost = f"; {dropped:,} rows logged while {limit:,} were held were dropped and are lost" if dropped else ""
    reason = f" ({error})" if error else ""
    return f"{path} could not be written{reason} (at {when}): {fate}{lost}. Free space or fix permissions."


class HeldRows:
    """What a :class:`~tracklight.formats.csv_table.CSVTable` holds in memory while no disk takes its rows, and
    what it says about them."""

    path: str
    dropped: int
    max_rows_in_memory: int
    stored_at: tuple[str, tuple[int, int, int]] | None
    _rows: deque[Any]
    _unwritten: bytes
    _unwritten_rows: int
    _appended: int
    _failing: str | None
    _failed_once: bool
    _said: tuple[str, int, int] | None

    def held_rows(self) -> int:
        """How many rows are held in memory, not written to the file (a failed write)."""
        return len(self._rows) + self._unwritten_rows + (1 if self._unwritten and not self._unwritten_rows else 0)

    def held(self) -> tuple[int, int, int] | None:
        """A token for what is held in memory while writes fail (it changes with every row), or None."""
        if self._failing is None or not (self._rows or self._unwritten):
            return None
        return (self._appended, len(self._rows), len(self._unwritten))

    def stored(self, where: str, token: tuple[int, int, int]) -> None:
        """An uploader holds everything :meth:`snapshot` gave with ``token`` at ``where`` (a URL)."""
        self.stored_at = (where, token)

    def report(self, when: str) -> None:
        """Say, with the numbers, what is held in memory and what was dropped (``when``: "finalize", "close" or
        "exit")."""
        held, dropped = (self.held_rows() if self._failing else 0), self.dropped
        if (when, held, dropped) == self._said or not (held or dropped):
            return
        self._said = (when, held, dropped)
        stored = self.stored_at[0] if self.stored_at is not None and self.stored_at[1] == self.held() else None
        warn(describe_held(self.path, when, held, dropped, self.max_rows_in_memory, self._failing, stored))

    def _report(self, err: OSError) -> None:
        if self._failed_once:
            return
        self._failed_once = True
        warn(
            f"Could not write {self.path} ({err}). The rows not yet written are kept in memory (at most "
            f"{self.max_rows_in_memory:,}; rows logged beyond that are dropped, and counted at finalize and exit) "
            "and written as soon as the disk takes them (tried several times a second); free space or fix "
            "permissions to let them through."
        )
