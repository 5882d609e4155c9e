"""``import tracklight`` stays cheap: no torch, no Lightning, no backend SDK, no fsspec, well under 0.2 s."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "torch",
    "lightning",
    "pytorch_lightning",
    "lightning_fabric",
    "tensorboard",
    "wandb",
    "mlflow",
    "comet_ml",
    "neptune",
    # Object storage: only when a save_dir is a URL.
    "fsspec",
    "s3fs",
    "botocore",
    "aiobotocore",
)


def _loaded_heavy_modules(statement: str) -> list[str]:
    code = (
        f"import json, sys\n{statement}\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.partition('.')[0] in heavy)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "statement",
    [
        "import tracklight",
        "from tracklight import loggers as pl_loggers",
        "import tracklight.media, tracklight.params",
        "from tracklight.loggers import CSVLogger, LoggerCollection, TensorBoardLogger",
        "from tracklight.loggers.csv_logs import CSVLogger; from tracklight.loggers.logger import DummyLogger",
        "from tracklight.fabric.loggers import CSVLogger, Logger, TensorBoardLogger",
    ],
)
def test_import_loads_no_heavy_package(statement: str) -> None:
    assert _loaded_heavy_modules(statement) == []


def test_csv_logging_loads_no_heavy_package(tmp_path: object) -> None:
    statement = (
        "from tracklight.loggers import CSVLogger\n"
        f"logger = CSVLogger({str(tmp_path)!r})\n"
        "logger.log_metrics({'loss': 0.5}, step=0)\n"
        "logger.log_hyperparams({'lr': 0.1})\n"
        "logger.finalize('success')"
    )
    assert _loaded_heavy_modules(statement) == []


def _import_seconds() -> float:
    """Cumulative time of the ``tracklight`` line of ``python -X importtime``, in seconds."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import tracklight"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for line in result.stderr.splitlines():
        fields = [field.strip() for field in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[2] == "tracklight":
            return int(fields[1]) / 1e6
    raise AssertionError(f"no 'tracklight' line in the importtime output:\n{result.stderr[-2000:]}")


def test_import_time_is_under_the_issue_bound() -> None:
    # The issue's hard requirement (under 0.2 s). Best of three, so a busy shared machine does not decide it.
    assert min(_import_seconds() for _ in range(3)) < 0.2
