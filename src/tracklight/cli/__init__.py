"""The ``tracklight`` command (``pip install 'tracklight[cli]'``): ``ls``, ``show``, ``plot``, ``compare`` and
``export`` over :mod:`tracklight.runs`. Run it as ``tracklight ...`` or ``python -m tracklight ...``."""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (``sys.argv[1:]`` when None); returns the exit status."""
    import sys

    from tracklight._imports import is_available
    from tracklight._install import install_command

    missing = [module for module in ("click", "rich", "uniplot") if not is_available(module)]
    if missing:  # one line, not a chained traceback: a bare install has no command yet
        sys.stderr.write(
            f"error: the tracklight command needs {', '.join(missing)}, which the 'cli' extra installs. "
            f"Fix: {install_command('cli')}\n"
        )
        return 1
    from tracklight.cli._app import cli

    try:
        cli.main(args=argv, prog_name="tracklight", standalone_mode=True)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    return 0
