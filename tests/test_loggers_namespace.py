"""The names a switched import reaches for: Lightning's module names, ``LitLogger``, ``DummyLogger``, and a
``tracklight.loggers`` namespace that holds only its own names."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import types

import lightning.fabric.loggers
import lightning.pytorch.loggers
import pytest
from lightning.pytorch.loggers.logger import DummyLogger as LightningDummyLogger

import tracklight.fabric.loggers
import tracklight.loggers
from tracklight.loggers.logger import DummyExperiment, DummyLogger


def _own_names(module: types.ModuleType) -> set[str]:
    """Public names of ``module`` that are neither in its ``__all__`` nor one of its own submodules."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and name not in module.__all__
        and not (isinstance(value, types.ModuleType) and value.__name__.startswith(module.__name__ + "."))
    }


@pytest.mark.parametrize("module", [tracklight.loggers, tracklight.fabric.loggers], ids=lambda m: m.__name__)
def test_namespace_holds_only_its_own_names(module: types.ModuleType) -> None:
    # names such as Any, TYPE_CHECKING, annotations or importlib would be found by `from ... import`
    assert _own_names(module) == set()


def _public_classes(module: types.ModuleType) -> set[str]:
    """The public classes a Lightning module defines itself."""
    return {
        name
        for name, value in vars(module).items()
        if inspect.isclass(value) and value.__module__ == module.__name__ and not name.startswith("_")
    }


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [(lightning.pytorch.loggers, "tracklight.loggers"), (lightning.fabric.loggers, "tracklight.fabric.loggers")],
    ids=["pytorch", "fabric"],
)
def test_every_lightning_logger_module_name_imports(theirs: types.ModuleType, ours: str) -> None:
    checked = []
    for info in pkgutil.iter_modules(theirs.__path__):
        if info.name == "utilities":  # Lightning's private helpers (_scan_checkpoints, _version ...)
            continue
        lightning_module = importlib.import_module(f"{theirs.__name__}.{info.name}")
        our_module = importlib.import_module(f"{ours}.{info.name}")
        for name in sorted(_public_classes(lightning_module)):
            assert hasattr(our_module, name), f"{ours}.{info.name} has no {name}"
            checked.append(f"{info.name}.{name}")
    assert "csv_logs.CSVLogger" in checked and "tensorboard.TensorBoardLogger" in checked
    from tracklight.loggers.csv_logs import CSVLogger, ExperimentWriter

    assert CSVLogger is tracklight.loggers.CSVLogger
    assert ExperimentWriter is tracklight.loggers.csv.CSVExperiment


def test_litlogger_is_lightnings_own() -> None:
    assert tracklight.loggers.LitLogger is lightning.pytorch.loggers.LitLogger
    namespace: dict[str, object] = {}
    code = "from tracklight.loggers import LitLogger\nfrom tracklight.loggers.litlogger import LitLogger as L2"
    exec(code, namespace)
    assert namespace["LitLogger"] is namespace["L2"] is lightning.pytorch.loggers.LitLogger
    assert "LitLogger" not in tracklight.loggers.__all__  # `import *` must not import Lightning


def test_litlogger_without_lightning_says_so() -> None:
    code = (
        "import sys\n"
        "sys.modules['lightning'] = sys.modules['pytorch_lightning'] = None  # neither can be imported\n"
        "import tracklight.loggers\n"
        "try:\n"
        "    tracklight.loggers.LitLogger\n"
        "except AttributeError as err:\n"
        "    print('AttributeError:', err)\n"
        "try:\n"
        "    from tracklight.loggers import LitLogger\n"
        "except ImportError as err:\n"
        "    print('ImportError:', type(err).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("AttributeError: tracklight.loggers.LitLogger is Lightning's own LitLogger")
    assert "Fix: pip install 'lightning>=2.6'" in lines[0]
    assert lines[1] == "ImportError: ImportError"


def test_dummy_logger_does_nothing_as_lightnings_does(tmp_path: object) -> None:
    ours, theirs = DummyLogger(), LightningDummyLogger()
    assert (ours.name, ours.version) == (theirs.name, theirs.version) == ("", "")
    assert isinstance(ours.experiment, DummyExperiment) and ours.experiment.add_scalar("x", 1.0) is None
    assert ours[0] is ours and ours.after_save_checkpoint(None) is None and ours.whatever(1, k=2) is None
    assert ours.log_metrics({"x": 1.0}, step=0) is None and ours.log_hyperparams({"lr": 0.1}) is None
    ours.log_table("t", columns=["a"], data=[[1]])  # the media API logs nothing and warns nothing
    assert isinstance(ours, lightning.pytorch.loggers.Logger)
