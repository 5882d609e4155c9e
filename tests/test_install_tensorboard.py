"""What ``pip install 'tracklight[tensorboard]'`` promises (torch installed first, as the README says).

``scripts/wheel_check.py`` runs this module in a fresh virtual environment with only torch and the wheel with
its ``tensorboard`` extra; it runs with the rest of the suite too. Module-level imports stay within that.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from tracklight._imports import is_available
from tracklight.loggers import TensorBoardLogger

IN_WHEEL_CHECK = os.environ.get("TRACKLIGHT_WHEEL_CHECK") == "tensorboard"


def test_tensorboard_logger_alone(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if IN_WHEEL_CHECK:  # the extra brings what TensorBoard needs, and nothing another extra brings
        import tracklight

        assert "site-packages" in tracklight.__file__
        assert is_available("crc32c") and not any(is_available(name) for name in ("wandb", "mlflow", "lightning"))
    logger = TensorBoardLogger(tmp_path, name="tb")
    logger.log_hyperparams({"lr": 0.1, "layers": [4, 2]})
    for step in range(3):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    logger.experiment.add_text("notes", "hello", 0)
    logger.finalize("success")

    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert [(event.step, round(event.value, 4)) for event in events.Scalars("loss")] == [
        (0, 1.0),
        (1, 0.5),
        (2, 0.3333),
    ]
    assert "notes/text_summary" in events.Tags()["tensors"]
    with open(os.path.join(logger.log_dir, "hparams.yaml")) as handle:
        assert yaml.safe_load(handle) == {"lr": 0.1, "layers": [4, 2]}
