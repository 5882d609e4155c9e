"""What a missing package tells the user: a command that works for the way tracklight was installed.

Each case runs in a fresh interpreter: a copy of the package laid out as pip lays it out (a folder of
``site-packages`` with its ``.dist-info``, with or without PEP 610's ``direct_url.json``), or the clone itself on
``PYTHONPATH``; the missing package is hidden with ``None`` in ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "tracklight"


def _message(site: Path, missing: str, build: str) -> str:
    """The ``MissingDependencyError`` that ``build`` raises with ``missing`` hidden, tracklight from ``site``."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules[{missing!r}] = None
        import tracklight
        assert tracklight.__file__.startswith({str(site)!r}), tracklight.__file__
        from tracklight import MissingDependencyError
        from tracklight.loggers import *
        try:
            {build}
        except MissingDependencyError as err:
            print(err)
        else:
            raise SystemExit("no MissingDependencyError")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _installed(tmp_path: Path, direct_url: dict[str, object] | None) -> Path:
    """A site folder holding tracklight as pip installs it, from an index (no ``direct_url.json``) or not."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "tracklight", ignore=shutil.ignore_patterns("__pycache__"))
    info = site / "tracklight-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tracklight\nVersion: 0.1.0\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    return site


def test_from_an_index_the_message_names_the_extra(tmp_path: Path) -> None:
    site = _installed(tmp_path, None)
    message = _message(site, "wandb", "WandbLogger(offline=True)")
    assert message.endswith("Install it with: pip install 'tracklight[wandb]'"), message


def test_from_a_wheel_file_the_message_installs_the_extra_from_that_file(tmp_path: Path) -> None:
    wheel = tmp_path / "dist" / "tracklight-0.1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"")
    site = _installed(tmp_path, {"url": wheel.as_uri(), "archive_info": {}})
    message = _message(site, "mlflow", "MLFlowLogger()")
    assert message.endswith(f"pip install '{wheel}[mlflow]'"), message


def test_from_a_url_the_message_is_a_direct_reference(tmp_path: Path) -> None:
    url = "https://example.org/tracklight-0.1.0-py3-none-any.whl"
    site = _installed(tmp_path, {"url": url, "archive_info": {}})
    message = _message(site, "comet_ml", "CometLogger(online=False)")
    assert f"pip install 'tracklight[comet] @ {url}'" in message, message


def test_from_a_clone_the_message_installs_the_extra_from_the_clone(tmp_path: Path) -> None:
    # The clone on PYTHONPATH, as an editable install or the tests run it: `pip install -e '<clone>[X]'`.
    message = _message(PACKAGE.parent, "neptune", "NeptuneLogger(mode='offline')")
    assert message.endswith(f"pip install -e '{ROOT}[neptune]'"), message
    assert "'tracklight[" not in message


@pytest.mark.parametrize("module", ["wandb.sdk", "tensorboard.plugins"])
def test_require_names_the_fix_for_this_install(module: str, tmp_path: Path) -> None:
    site = _installed(tmp_path, None)
    top, extra = module.partition(".")[0], module.partition(".")[0]
    message = _message(site, top, f"from tracklight._imports import require; require({module!r}, {extra!r})")
    assert message.startswith(f"{module!r} is needed here"), message
    assert message.endswith(f"Fix: pip install 'tracklight[{extra}]'"), message


def test_tensorboard_logger_without_torch_logs_scalars_and_hyperparameters(tmp_path: Path) -> None:
    # The `tensorboard` extra installs no torch: scalars and the HPARAMS tab need only TensorBoard's package.
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None
        from tracklight import MissingDependencyError
        from tracklight.loggers import TensorBoardLogger
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        from tensorboard.plugins.hparams import metadata

        logger = TensorBoardLogger({str(tmp_path)!r}, name="run")
        logger.log_metrics({{"loss": 0.5}}, step=1)
        logger.log_hyperparams({{"lr": 0.01, "optimizer": "adam"}}, {{"val/acc": 0.9}})
        logger.finalize("success")
        events = EventAccumulator(logger.log_dir)
        events.Reload()
        assert [(s.step, s.value) for s in events.Scalars("loss")] == [(1, 0.5)]
        content = events.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
        assert start.hparams["lr"].number_value == 0.01 and start.hparams["optimizer"].string_value == "adam"
        experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
        assert [info.name.tag for info in experiment.metric_infos] == ["val/acc"]
        try:
            logger.experiment
        except MissingDependencyError as err:
            print(err)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    message = done.stdout.strip()
    # What needs torch (SummaryWriter: images, histograms, the graph) says so, with a command that does what it says.
    assert message.startswith("'torch.utils.tensorboard' is needed here"), message
    assert "torch is not installed; install it first" in message
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in message
    assert "pinned" not in message
