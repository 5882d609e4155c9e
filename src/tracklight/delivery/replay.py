"""``python -m tracklight.delivery replay <spill file>``: send what a spill file keeps."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tracklight._errors import TracklightError
from tracklight.delivery.batch import DeliveryReport, Sink
from tracklight.delivery.spill import SpillFile
from tracklight.delivery.worker import Delivery

__all__ = ["main", "replay"]


def _load_sink(path: str) -> tuple[Sink, SpillFile]:
    """Rebuild the sink a spill file names (only factories inside tracklight are trusted)."""
    spill = SpillFile(path)
    if not spill.exists:
        raise TracklightError(f"{path} does not exist: nothing to replay.")
    factory = str(spill.header.get("factory", "")) if spill.header else ""
    module_name, _, function = factory.partition(":")
    if not module_name.startswith("tracklight.") or not function:
        raise TracklightError(f"{path} names the sink {factory!r}; only tracklight's own sinks can be replayed.")
    build = getattr(importlib.import_module(module_name), function)
    return build(spill.target()), spill


def replay(path: str, timeout: float = 300.0) -> DeliveryReport:
    """Send what a spill file keeps; returns the report (kept items stay in the file)."""
    sink, _ = _load_sink(path)
    return Delivery(sink, path).close(timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tracklight.delivery", description="Send what a tracklight spill file keeps."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    replay_parser = commands.add_parser("replay", help="send the items a spill file keeps")
    replay_parser.add_argument("spill_file")
    replay_parser.add_argument("--timeout", type=float, default=300.0, help="seconds to keep trying (default 300)")
    args = parser.parse_args(argv)
    try:
        report = replay(args.spill_file, args.timeout)
    except TracklightError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report)
    return 0 if report.complete else 1
