"""What the README tells a newcomer, checked: the standalone ``pytorch_lightning`` package, the install commands
it names, the versions it lists."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")
@pytest.mark.filterwarnings("ignore:The number of training batches:UserWarning")
def test_the_standalone_pytorch_lightning_package_trains_with_tracklight_loggers(tmp_path: Path) -> None:
    # The README says `pytorch_lightning` (the package, not `lightning.pytorch`) works: a real fit through it.
    import pytorch_lightning as pl  # `lightning` depends on it: installed with the `lightning` extra
    from pytorch_lightning.demos.boring_classes import BoringModel

    from tracklight.loggers import CSVLogger, TensorBoardLogger

    class Model(BoringModel):
        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            output = super().training_step(batch, batch_idx)
            self.log("train/loss", output["loss"])
            return output

    csv_logger = CSVLogger(tmp_path, name="csv")
    tb_logger = TensorBoardLogger(tmp_path, name="tb")
    assert isinstance(csv_logger, pl.loggers.CSVLogger) and isinstance(tb_logger, pl.loggers.Logger)
    trainer = pl.Trainer(
        logger=[csv_logger, tb_logger],
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=1,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(Model())
    assert trainer.log_dir == csv_logger.log_dir
    with open(Path(csv_logger.log_dir) / "metrics.csv", newline="") as handle:
        steps = [row["step"] for row in csv.DictReader(handle) if row.get("train/loss")]
    assert steps == ["0", "1", "2"]
    assert list(Path(tb_logger.log_dir).glob("events.out.tfevents.*"))
    assert "pytorch_lightning" in README and "works" in README.split("pytorch_lightning", 1)[1][:200]


def test_the_readme_names_what_pyproject_requires() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    python = re.search(r'requires-python = ">=(\d+\.\d+)"', pyproject)
    assert python is not None
    assert f"Python {python[1]} or newer" in README
    lightning = re.search(r'lightning = \["lightning(>=[\d.]+,<[\d.]+)"\]', pyproject)
    assert lightning is not None and f"`lightning{lightning[1]}`" in README
    for extra in ("tensorboard", "wandb", "mlflow", "comet", "neptune", "cli", "remote", "media", "lightning"):
        assert f"`{extra}`" in README, f"the README's install section does not name the {extra!r} extra"
    # TensorBoardLogger's SummaryWriter comes from torch, which no extra installs.
    (row,) = [line for line in README.splitlines() if line.startswith("| `TensorBoardLogger`")]
    assert "torch" in row
    assert "pip install -e '.[" in README  # the install from a clone


def test_the_readme_says_how_long_the_tests_take() -> None:
    assert re.search(r"bash scripts/test\.sh.*\n?.*about \d+(-\d+)? min", README)


def test_the_command_help_points_at_nothing_the_installed_package_lacks() -> None:
    # docs/*.md are not in the wheel: the help says what it means itself.
    from click.testing import CliRunner

    from tracklight.cli._app import cli

    runner = CliRunner()
    for command in ("ls", "show", "plot", "compare", "export"):
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "--json" in result.output and "'runs'" in result.output
        assert "docs/" not in result.output and ".md" not in result.output, (command, result.output)


def test_the_cli_page_shows_each_command_output_as_printed() -> None:
    # `ls` prints its "N run(s)" line once: an example that shows it twice is not what a user sees.
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    outputs = re.split(r"^\$ ", page, flags=re.M)[1:]
    for output in outputs:
        body = output.split("```", 1)[0]
        assert len(re.findall(r"^\d+ run\(s\)", body, flags=re.M)) <= 1, body.splitlines()[0]


def test_the_cli_speed_table_gives_every_cell_its_unit() -> None:
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    table = benchmarks.split("### The `tracklight` command", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    rows = [line for line in table.splitlines() if re.match(r"^(show|plot|ls)\b", line)]
    assert len(rows) == 6
    for row in rows:
        assert re.search(r"\d\.\d\d s +\d\.\d\d s +\d\.\d\dx +\d\.\d s$", row), row


def _undefined_names(code: str) -> set[str]:
    """Names a block reads that it neither defines nor imports (nor are builtins), in any of its scopes."""
    import builtins
    import symtable

    top = symtable.symtable(code, "<block>", "exec")
    defined = {symbol.get_name() for symbol in top.get_symbols() if symbol.is_assigned() or symbol.is_imported()}
    missing: set[str] = set()
    scopes = [top]
    while scopes:
        scope = scopes.pop()
        scopes.extend(scope.get_children())
        for symbol in scope.get_symbols():
            if symbol.is_referenced() and (scope is top or symbol.is_global()):
                missing.add(symbol.get_name())
    return missing - defined - set(dir(builtins))


def test_the_readme_examples_define_every_name_they_use() -> None:
    # A newcomer copies a block as it is: no name may come from a setup the page does not show.
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) == 2
    for block in blocks:
        assert not _undefined_names(block), (sorted(_undefined_names(block)), block)
    assert _undefined_names("def f():\n    return tb_logger\n") == {"tb_logger"}
