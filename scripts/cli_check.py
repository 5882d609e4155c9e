"""What a newcomer does with the ``tracklight`` command, in a fresh venv holding only the ``cli`` extra.

    python scripts/cli_check.py            # build the wheel, make the venv, write runs, run the commands
    python scripts/cli_check.py --source   # install the source tree instead of the built wheel

Runs of every backend (CSV, TensorBoard, MLflow, W&B, Comet, Neptune; offline, a few steps each) are written
with the environment that runs this script (the dev venv: it has every SDK). Then the fresh venv, which has
none of them, runs ``ls``, ``show`` (each run), ``plot`` (terminal and PNG), ``compare``, an ``export`` to CSV,
and ``ls``/``show``/``plot``/``compare`` on the MLflow store's ``sqlite:///`` URI and on a live ``mlflow server``
over that store.
Any non-zero exit, or a traceback anywhere in the output, fails the check. Uses wheel_check.py's helpers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wheel_check import ROOT, build_wheel, run

#: Written with the dev venv: one LoggerCollection over every backend, no Trainer (seconds, not a minute).
WRITE_RUNS = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    from tracklight import loggers

    root = sys.argv[1]
    backends = [
        loggers.CSVLogger(root, name="csv"),
        loggers.TensorBoardLogger(root, name="tb"),
        loggers.MLFlowLogger("check", run_name="check", save_dir=root + "/mlflow",
                             tracking_uri=f"sqlite:///{root}/mlflow/mlflow.db"),
        loggers.WandbLogger(name="check", project="check", save_dir=root, offline=True),
        loggers.CometLogger(project="check", name="check", offline_directory=root + "/comet", online=False),
        loggers.NeptuneLogger(mode="offline", name="check", capture_hardware_metrics=False),
    ]
    collection = loggers.LoggerCollection(backends)
    collection.log_hyperparams({"lr": 0.01, "layers": 2})
    for step in range(10):
        collection.log_metrics({"train/loss": 1.0 / (step + 1), "val/acc": step / 10}, step=step)
    collection.finalize("success")
    backends[3].experiment.finish()
    backends[4].experiment.end()
    backends[5].run.stop()
    """
)
BACKENDS = {"csv", "tensorboard", "mlflow", "wandb", "comet", "neptune"}


def fresh_cli_env(base: Path, source: bool) -> Path:
    """A venv with the wheel's (or the source tree's) ``cli`` extra and nothing else."""
    env = base / "cli-venv"
    run([sys.executable, "-m", "venv", str(env)])
    python = env / "bin" / "python"
    package = ROOT if source else build_wheel(base / "dist")
    run([str(python), "-m", "pip", "install", "-q", f"{package}[cli]"])
    sdks = ("wandb", "mlflow", "comet_ml", "neptune", "tensorboard", "torch", "lightning")
    present = run([str(python), "-c", f"import importlib.util as u; print([m for m in {sdks!r} if u.find_spec(m)])"])
    if present.strip() != "[]":
        raise SystemExit(f"the cli extra installed SDKs it should not need: {present.strip()}")
    return python


def write_runs(root: Path) -> None:
    """Every backend's runs, offline, with this interpreter (the dev venv)."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(root), NEPTUNE_MODE="offline")
    env.update(NEPTUNE_DATA_DIRECTORY=str(root / "neptune" / ".neptune"), COMET_OFFLINE_DIRECTORY=str(root / "comet"))
    env.pop("COMET_API_KEY", None)
    run([sys.executable, "-c", WRITE_RUNS, str(root)], cwd=root, env=env, timeout=300)


class Cli:
    """Runs ``tracklight`` in the fresh venv; any non-zero exit or traceback fails the check."""

    def __init__(self, python: Path, cwd: Path) -> None:
        self.tracklight = python.parent / "tracklight"
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        self.env["COLUMNS"] = "200"
        self.count = 0

    def __call__(self, *argv: str, refused: str | None = None) -> str:
        """Run ``tracklight argv``: it must succeed, or with ``refused``, fail in one error line holding it."""
        command = [str(self.tracklight), *argv]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.cwd, env=self.env, timeout=300)
        self.count += 1
        shown = " ".join(["tracklight", *argv])
        lines = result.stderr.strip().splitlines()
        ok = result.returncode == 0 if refused is None else result.returncode == 1 and len(lines) == 1
        if not ok or "Traceback" in result.stdout + result.stderr or (refused and refused not in result.stderr):
            print(result.stdout + result.stderr, file=sys.stderr)
            raise SystemExit(f"failed ({result.returncode}): {shown}")
        print(f"  ok  {shown}" + (f"   (refused: {lines[0]})" if refused else ""), flush=True)
        return result.stdout


def check(python: Path, root: Path) -> int:
    cli = Cli(python, root)
    listed = json.loads(cli("ls", ".", "--json"))
    found = {run["backend"] for run in listed["runs"]}
    if found != BACKENDS or listed["errors"]:
        raise SystemExit(f"ls found {sorted(found)} (wanted {sorted(BACKENDS)}), errors: {listed['errors']}")
    refs = {run["backend"]: run["ref"] for run in listed["runs"]}
    cli("ls", ".")
    for ref in refs.values():
        cli("show", ref)
    cli("plot", refs["csv"], refs["wandb"], "-m", "val/*")
    cli("plot", *refs.values(), "-m", "train/loss", "-o", str(root / "plot.png"))
    cli("compare", *refs.values())
    cli("export", refs["wandb"], refs["comet"], "--to", f"csv:{root / 'exported'}")
    for target, extra in (
        ("tensorboard:moved", "tensorboard"),
        ("sqlite:///moved.db", "mlflow"),
        ("wandb:moved", "wandb"),
    ):
        cli("export", refs["csv"], "--to", target, refused=f"[{extra}]")  # the install command names the extra
    uri = "sqlite:///mlflow/mlflow.db"  # relative, as the demo prints it for `mlflow ui`
    cli("ls", uri)
    cli("show", uri)

    sys.path.insert(0, str(ROOT / "tests"))
    from _mlflow_server import MlflowServer  # the tests' one way to start a server on a free port

    server = MlflowServer(root / "mlflow")  # serves the store the MLFlowLogger wrote: mlflow/mlflow.db
    server.start()
    try:
        on_server = json.loads(cli("ls", server.url, "--json"))["runs"]
        in_store = json.loads(cli("ls", uri, "--json"))["runs"]
        if [run["version"] for run in on_server] != [run["version"] for run in in_store]:
            raise SystemExit(f"ls {server.url} listed {on_server}, wanted the store's runs {in_store}")
        cli("show", on_server[0]["ref"])
        cli("plot", on_server[0]["ref"], refs["csv"], "-m", "val/acc")
        cli("compare", on_server[0]["ref"], refs["csv"])
    finally:
        server.stop()
    return cli.count


def main(argv: list[str]) -> None:
    source = "--source" in argv
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tracklight-cli-check-") as tmp:
        base = Path(tmp)
        python = fresh_cli_env(base, source)
        print(
            f"fresh venv with only the cli extra ({'source tree' if source else 'wheel'}) in "
            f"{time.monotonic() - start:.0f}s",
            flush=True,
        )
        began = time.monotonic()
        root = base / "runs"
        root.mkdir()
        write_runs(root)
        print(f"wrote runs of every backend in {time.monotonic() - began:.0f}s", flush=True)
        count = check(python, root)
    print(f"cli check passed: {count} commands, no traceback, in {time.monotonic() - start:.0f}s")


if __name__ == "__main__":
    main(sys.argv[1:])
