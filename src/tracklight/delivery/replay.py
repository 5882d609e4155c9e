"""``python -m tracklight.delivery replay <spill file>``: send what a spill file keeps.

Exits 0 when everything was delivered, 1 when something is still kept (the backend did not answer in
time), was refused or could not be read (each such line is named with its number, and kept with the
reason in ``<name>.rejected.jsonl``), and 2 when the file cannot be replayed at all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from tracklight._errors import TracklightError
from tracklight.delivery.batch import DeliveryReport, Sink
from tracklight.delivery.spill import SpillFile
from tracklight.delivery.worker import Delivery

__all__ = ["main", "replay"]


def _load_sink(path: str, overrides: dict[str, Any]) -> tuple[Sink, SpillFile]:
    """Rebuild the sink a spill file names (only factories inside tracklight are trusted)."""
    spill = SpillFile(path)
    if not spill.exists:
        raise TracklightError(f"{path} does not exist: nothing to replay.")
    factory = str(spill.header.get("factory", "")) if spill.header else ""
    module_name, _, function = factory.partition(":")
    if not module_name.startswith("tracklight.") or not function:
        raise TracklightError(f"{path} names the sink {factory!r}; only tracklight's own sinks can be replayed.")
    build = getattr(importlib.import_module(module_name), function)
    try:
        return build(spill.target(), **overrides), spill
    except TypeError as error:
        options = ", ".join("--" + name.replace("_", "-") for name in overrides)
        raise TracklightError(f"{path} is for a backend that does not take {options} ({error}).") from error


def replay(
    path: str, timeout: float = 300.0, *, tracking_uri: str | None = None, experiment: str | None = None
) -> DeliveryReport:
    """Send what a spill file keeps; returns the report (kept items stay in the file).

    ``tracking_uri`` and ``experiment`` send to another server or experiment than the one the file names.
    """
    overrides = {key: value for key, value in (("tracking_uri", tracking_uri), ("experiment", experiment)) if value}
    sink, _ = _load_sink(path, overrides)
    return Delivery(sink, path).close(timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tracklight.delivery", description="Send what a tracklight spill file keeps."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    replay_parser = commands.add_parser("replay", help="send the items a spill file keeps")
    replay_parser.add_argument("spill_file")
    replay_parser.add_argument("--timeout", type=float, default=300.0, help="seconds to keep trying (default 300)")
    replay_parser.add_argument(
        "--tracking-uri", help="send to this tracking server or store instead of the one the file names (MLflow)"
    )
    replay_parser.add_argument("--experiment", help="send to this experiment instead of the file's (MLflow)")
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            report = replay(args.spill_file, args.timeout, tracking_uri=args.tracking_uri, experiment=args.experiment)
        except TracklightError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    # What went wrong along the way (an unreadable line, a refused item), one line each, before the summary.
    for warning in said:
        if issubclass(warning.category, UserWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
    print(report)
    return 0 if report.complete else 1
