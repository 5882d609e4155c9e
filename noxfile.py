"""Developer sessions: ``pip install nox``, then ``nox -s tests`` (or lint, typecheck, docs, demo, wheel).

Each session gets its own virtual environment under ``.nox/``, made with the Python that runs nox, and
installs torch first, pinned: an unpinned torch resolves to a multi-GB CUDA build on Linux.
"""

from __future__ import annotations

import nox

TORCH = "torch==2.13.0"

nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True


def install(session: nox.Session) -> None:
    session.install(TORCH)
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (doctests included); extra arguments go to pytest: ``nox -s tests -- -k csv -x``."""
    install(session)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(venv_backend="none")
def wheel(session: nox.Session) -> None:
    """Build the wheel and test each install in a fresh venv: no extra, ``[tensorboard]``, ``[wandb]``.

    ``scripts/wheel_check.py`` makes those environments itself (they must start empty); names go through:
    ``nox -s wheel -- core``.
    """
    session.run("python", "scripts/wheel_check.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    install(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over src/tracklight (configured in pyproject.toml)."""
    install(session)
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation into site/; fails on any warning (broken link, page missing from nav)."""
    install(session)
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def demo(session: nox.Session) -> None:
    """The digits demo (examples/digits_demo.py); extra arguments go to it: ``nox -s demo -- --max-epochs 3``."""
    install(session)
    session.run("python", "examples/digits_demo.py", *session.posargs)
