"""``python -m tracklight.remote push <staging folder>``: upload what a run left in its staging folder.

A run that could not reach its store before it ended (or was killed) keeps its files in a staging
folder whose manifest names the URL. This uploads them, never replacing a file that was in the store
before the run started, nor one that holds data the folder lacks (a later run resumed the version and
wrote newer rows: that file is refused, named, and the exit status is 1), and exits 0 once everything
is there.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from tracklight.remote._mirror import Mirror
from tracklight.remote._run import read_manifest
from tracklight.remote._store import Store


def push(staging_dir: str, timeout: float = 60.0) -> tuple[list[str], dict[str, str]]:
    """Upload the files of ``staging_dir`` to the URL its manifest names, never replacing a file in the store that
    holds data this folder lacks (a later run resumed the version: its rows are newer). Returns the files left
    (empty when done) and, for each file refused for that reason, why."""
    manifest = read_manifest(staging_dir)
    mirror = Mirror(Store(str(manifest["url"])), staging_dir, [str(path) for path in manifest.get("foreign") or ()])
    with warnings.catch_warnings():  # said on stderr by main(), in its own words
        warnings.simplefilter("ignore")
        left = mirror.sync(timeout)
    return left, dict(mirror.conflicts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracklight.remote", description=__doc__.partition("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    push_parser = commands.add_parser("push", help="upload a staging folder to the URL its manifest names")
    push_parser.add_argument("staging_dir")
    push_parser.add_argument("--timeout", type=float, default=60.0, help="seconds to keep trying (default 60)")
    args = parser.parse_args(argv)
    try:
        url = read_manifest(args.staging_dir)["url"]
    except (OSError, ValueError, KeyError) as err:
        print(f"{args.staging_dir} is not a tracklight staging folder ({err}).", file=sys.stderr)
        return 2
    left, refused = push(args.staging_dir, args.timeout)
    for why in refused.values():
        print(why, file=sys.stderr)
    others = [relative for relative in left if relative not in refused]
    if others:
        print(f"{len(others)} file(s) could not be uploaded to {url}: {', '.join(others)}", file=sys.stderr)
    if left:
        if refused:
            print(
                f"{len(refused)} file(s) were not replaced, so that nothing in the store is lost. Compare them with "
                "the store's copies and merge by hand if both are wanted.",
                file=sys.stderr,
            )
        return 1
    print(f"{args.staging_dir} is uploaded to {url}.")
    return 0
