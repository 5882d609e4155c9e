"""Shared fixtures: a tiny LightningModule, a quick ``fit``, and a way to pretend to be another rank.

Nothing heavy is imported at module level: torch and Lightning load only in the tests that ask for
these fixtures, so targeted runs of other test modules stay fast.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Figures in tests never need a display.
os.environ.setdefault("MPLBACKEND", "Agg")
# Tests reach no network but loopback: keep SDK telemetry (MLflow's, also in the mlflow server the tests start,
# which inherits this environment) from trying to phone home.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

# Neptune writes `.neptune/` into the working folder unless told where: a test that does not choose a folder
# writes into the session's, never into the repository (checked at the end of the session, below).
_SESSION_DIR = tempfile.mkdtemp(prefix="tracklight-tests-")
os.environ.setdefault("NEPTUNE_DATA_DIRECTORY", os.path.join(_SESSION_DIR, ".neptune"))

_RANK_ENV = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
#: What an SDK or a server leaves in its working folder and a test once left in the repository (issue 18).
LEFTOVERS = (".neptune", "mlartifacts")
_ROOT = Path(__file__).parents[1]
_FOUND_AT_START = {name for name in LEFTOVERS if (_ROOT / name).exists()}

# `--doctest-modules` (for src/) would also collect the helper modules here, `_mlflow_server.py` among them,
# as test modules of their own (a docstring example is a doctest): helpers are imported, never collected.
collect_ignore_glob = ["_*.py"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when a test left an SDK's folder in the repository root."""
    left = sorted(name for name in LEFTOVERS if (_ROOT / name).exists() and name not in _FOUND_AT_START)
    if left:
        session.config.get_terminal_writer().line(
            f"\ntests left {', '.join(left)} in {_ROOT}: point the SDK at a temporary folder", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    # Lightning 2.6 calling a torch API that torch 2.13 deprecated: noise in every Trainer test, not ours to fix.
    config.addinivalue_line("filterwarnings", r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's one real ``mlflow server`` on 127.0.0.1 (30-60 s to start), not started: call
    ``mlflow_server.running()``. Tests may kill it; ``running()`` brings it back on the same port."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _mlflow_server import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()


#: MLFLOW_TRACKING_URI as the session found it.
_SESSION_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def _mlflow_default_uri_restored() -> Iterator[None]:
    """After each test, MLflow's default tracking URI is unset again and MLFLOW_TRACKING_URI is what the session
    started with: Lightning's MLFlowLogger (used by some tests and fixtures) exports its URI there for good,
    through ``mlflow.set_tracking_uri``, and a later logger without a tracking URI would take it."""
    import sys

    yield
    if "mlflow" in sys.modules:
        from mlflow.tracking._tracking_service import utils

        utils._tracking_uri = None  # private, and only here: MLflow has no public way back to "never set"
    if _SESSION_TRACKING_URI is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = _SESSION_TRACKING_URI


@functools.cache
def _tiny_module_class() -> type:
    import torch
    from lightning.pytorch import LightningModule
    from torch.utils.data import DataLoader, TensorDataset

    class TinyModel(LightningModule):
        """Linear regression on 16 random samples: 4 training steps per epoch with batch_size=4."""

        def __init__(self, lr: float = 0.1, hidden: int = 4, config: dict[str, Any] | None = None) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(hidden, 1)
            self.example_input_array = torch.zeros(1, hidden)
            generator = torch.Generator().manual_seed(0)
            self._x = torch.randn(16, hidden, generator=generator)
            self._y = torch.randn(16, 1, generator=generator)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

        def train_dataloader(self) -> DataLoader:
            return DataLoader(TensorDataset(self._x, self._y), batch_size=4)

        def val_dataloader(self) -> DataLoader:
            return DataLoader(TensorDataset(self._x, self._y), batch_size=8)

    return TinyModel


@pytest.fixture
def tiny_model() -> type:
    """The ``TinyModel`` LightningModule class (subclass it to add hooks)."""
    return _tiny_module_class()


@pytest.fixture
def make_trainer(tmp_path: Path) -> Callable[..., Any]:
    """``make_trainer(logger=..., **overrides)``: a quick CPU Trainer rooted in ``tmp_path``."""

    def make(**overrides: Any) -> Any:
        from lightning.pytorch import Trainer

        options: dict[str, Any] = {
            "default_root_dir": tmp_path,
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 1,
            "limit_val_batches": 1,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        }
        options.update(overrides)
        return Trainer(**options)

    return make


@pytest.fixture(scope="session")
def s3() -> Iterator[Any]:
    """moto's S3 server on 127.0.0.1 for the whole session, its address in the environment (``_s3_server``)."""
    from _s3_server import s3_environment

    with s3_environment() as server:
        yield server


@pytest.fixture
def bucket(s3: Any) -> str:
    """``s3://<a fresh bucket>`` on the session's S3 server."""
    return str(s3.new_bucket())


@pytest.fixture
def set_rank(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """``set_rank(n)``: make this process rank ``n`` the way Lightning's strategies do; restored afterwards."""
    from lightning_utilities.core.rank_zero import rank_zero_only

    for key in _RANK_ENV:
        monkeypatch.delenv(key, raising=False)

    def set_to(rank: int) -> None:
        monkeypatch.setattr(rank_zero_only, "rank", rank, raising=False)

    yield set_to
