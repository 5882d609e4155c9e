"""Build the wheel and prove what each install promises, in fresh virtual environments (as dvclive's core tests do).

    python scripts/wheel_check.py                 # core, tensorboard and wandb
    python scripts/wheel_check.py core wandb      # some of them

- ``core``: the wheel alone (no extra, no torch): ``tests/test_install_core.py`` (CSV end to end, the
  collection, custom loggers, hyperparameters, the error each logger gives without its SDK).
- ``tensorboard``: torch (pinned, as the README says to install it first) and the wheel's ``tensorboard``
  extra: ``tests/test_install_tensorboard.py``.
- ``wandb``: the wheel's ``wandb`` extra, no torch: ``tests/test_install_wandb.py``.

Each test module also runs in the normal suite; here ``TRACKLIGHT_WHEEL_CHECK=<name>`` makes it check that it
runs on the installed wheel and that nothing beyond the extra is installed. Only the standard library is
used, so any Python >= 3.10 runs this. Prints the time of each step; exits non-zero if anything fails.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: name -> (extra, install torch first, test module)
CHECKS = {
    "core": ("", False, "tests/test_install_core.py"),
    "tensorboard": ("tensorboard", True, "tests/test_install_tensorboard.py"),
    "wandb": ("wandb", False, "tests/test_install_wandb.py"),
}
TEST_TOOLS = ("pytest>=8", "pytest-timeout>=2.2")


def torch_pin() -> str:
    """The torch version the project pins, from its one place (scripts/_env.sh)."""
    match = re.search(r"^TORCH_VERSION=(\S+)$", (ROOT / "scripts" / "_env.sh").read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit("scripts/_env.sh has no TORCH_VERSION= line")
    return f"torch=={match.group(1)}"


def run(command: list[str], **options: object) -> str:
    """Run ``command``; on failure print its output and stop with its exit code."""
    result = subprocess.run(command, capture_output=True, text=True, **options)  # type: ignore[call-overload]
    output = "\n".join(
        line
        for line in (result.stdout + result.stderr).splitlines()
        # Local package mirrors in a pip configuration make pip warn about each package they lack: noise.
        if "is ignored: it is neither a file nor a directory" not in line
    )
    if result.returncode != 0:
        print(output, file=sys.stderr)
        raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}")
    return output


def build_wheel(out: Path) -> Path:
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)])
    (wheel,) = out.glob("tracklight-*.whl")
    return wheel


def make_env(name: str, wheel: Path, base: Path) -> Path:
    """A fresh virtual environment with the wheel (and its extra), the test tools and, if needed, torch."""
    extra, needs_torch, _ = CHECKS[name]
    env = base / name
    run([sys.executable, "-m", "venv", str(env)])
    python = env / "bin" / "python"
    if needs_torch:  # first and alone, pinned: an unpinned torch pulls a multi-GB CUDA build on Linux
        run([str(python), "-m", "pip", "install", "-q", torch_pin()])
    requirement = f"{wheel}[{extra}]" if extra else str(wheel)
    run([str(python), "-m", "pip", "install", "-q", requirement, *TEST_TOOLS])
    return python


def run_tests(name: str, python: Path) -> str:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TRACKLIGHT_WHEEL_CHECK"] = name
    test_module = CHECKS[name][2]
    return run([str(python), "-m", "pytest", test_module, "-q", "-p", "no:cacheprovider"], cwd=ROOT, env=env)


def main(names: list[str]) -> None:
    unknown = set(names) - set(CHECKS)
    if unknown:
        raise SystemExit(f"unknown check(s) {sorted(unknown)}; choose from {sorted(CHECKS)}")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tracklight-wheel-") as tmp:
        base = Path(tmp)
        wheel = build_wheel(base / "dist")
        print(f"built {wheel.name} in {time.monotonic() - start:.0f}s", flush=True)
        # Environments are made side by side (mostly waiting on pip's unpacking); tests then run one by one.
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
            pythons = dict(zip(names, pool.map(lambda name: make_env(name, wheel, base), names), strict=True))
        print(f"made {len(names)} fresh environments ({', '.join(names)}) in {time.monotonic() - began:.0f}s")
        for name in names:
            began = time.monotonic()
            last = run_tests(name, pythons[name]).strip().splitlines()[-1]
            print(f"{name}: {last} ({time.monotonic() - began:.0f}s)", flush=True)
    print(f"wheel check passed in {time.monotonic() - start:.0f}s")


if __name__ == "__main__":
    main(sys.argv[1:] or list(CHECKS))
