"""The ``tracklight`` command, run in-process through ``tracklight.cli.main`` (and once as ``python -m``):
tables and ``--json`` for every command, errors that name the path while the rest is still listed, plots
checked through matplotlib's figure objects."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomllib

sys.path.insert(0, str(Path(__file__).parent))
from _runs_written import written
from tracklight import runs
from tracklight._install import install_command
from tracklight.cli import _plot, main

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(600)]

RUN_KEYS = {"ref", "backend", "name", "version", "status", "steps", "updated", "metrics", "params"}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    capsys.readouterr()  # only the command's own output
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def as_json(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, dict[str, Any]]:
    status, out, _ = run_cli(capsys, *argv, "--json")
    document = json.loads(out)
    assert {"command", "runs", "errors"} <= set(document)
    assert all(set(run) == RUN_KEYS for run in document["runs"])
    return status, document


@pytest.fixture(scope="module")
def tracklight_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return written(tmp_path_factory, "tracklight")


@pytest.fixture(scope="module")
def lightning_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return written(tmp_path_factory, "lightning")


def test_ls_lists_every_backend(capsys: pytest.CaptureFixture[str], tracklight_root: Path) -> None:
    status, out, err = run_cli(capsys, "ls", tracklight_root)
    assert status == 0 and not err
    for run in runs.find(tracklight_root):
        assert run.ref in out  # whole, never cut or folded
    status, document = as_json(capsys, "ls", tracklight_root)
    assert status == 0 and document["command"] == "ls" and document["errors"] == []
    assert {"csv", "tensorboard", "mlflow", "wandb", "comet", "neptune"} <= {r["backend"] for r in document["runs"]}


def test_ls_names_what_is_damaged_and_lists_the_rest(
    capsys: pytest.CaptureFixture[str], tracklight_root: Path, tmp_path: Path
) -> None:
    shutil.copytree(tracklight_root / "csv", tmp_path / "csv")
    (tmp_path / "comet").mkdir()
    (tmp_path / "broken.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)  # a database that is not one
    (tmp_path / "empty").mkdir()
    status, document = as_json(capsys, "ls", tmp_path, tmp_path / "empty", tmp_path / "missing")
    assert status == 1
    assert [run["ref"] for run in document["runs"]] == [str(tmp_path / "csv" / "version_0")]
    errors = {error["path"]: error["message"] for error in document["errors"]}
    assert errors[str(tmp_path / "broken.db")].startswith("is an SQLite database that cannot be read")
    assert errors[str(tmp_path / "empty")].startswith("holds no run")
    assert errors[str(tmp_path / "missing")] == "no such file or folder"
    status, out, err = run_cli(capsys, "ls", tmp_path, tmp_path / "missing")
    assert status == 1 and str(tmp_path / "csv" / "version_0") in out and f"{tmp_path / 'missing'}: no such" in err


def test_show_gives_hyperparameters_and_a_summary_per_metric(
    capsys: pytest.CaptureFixture[str], tracklight_root: Path
) -> None:
    ref = tracklight_root / "csv" / "version_0"
    status, document = as_json(capsys, "show", ref)
    assert status == 0
    (details,) = document["details"]
    assert details["params"] == {"lr": 0.05, "hidden": 4, "config": None}
    run = runs.open(ref)
    for row in details["metrics"]:
        frame = run.metric(row["metric"])
        values = frame.value.to_numpy()
        assert row["points"] == len(frame) and row["last"] == values[-1]
        assert row["min"] == values.min() and row["min_step"] == frame.step[int(values.argmin())]
        assert row["max"] == values.max() and row["max_step"] == frame.step[int(values.argmax())]
    status, out, _ = run_cli(capsys, "show", ref, "-m", "val*")
    assert "val_loss" in out and "train_loss" not in out and "lr" in out


def test_show_of_a_damaged_run_names_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text('step,loss\n0,1\n1,"x\n')
    status, _out, err = run_cli(capsys, "show", tmp_path / "run")
    assert status == 1 and f"{tmp_path / 'run' / 'metrics.csv'}: is damaged" in err


def test_plot_to_png_has_one_line_per_run_per_panel_with_the_runs_points(
    capsys: pytest.CaptureFixture[str], tracklight_root: Path, lightning_root: Path, tmp_path: Path
) -> None:
    refs = [str(tracklight_root / "csv" / "version_0"), str(lightning_root / "tb" / "version_0")]
    output = tmp_path / "plots" / "val.png"
    status, document = as_json(capsys, "plot", *refs, "-m", "*_loss", "-o", output)
    assert status == 0 and document["output"] == str(output)
    assert [panel["metric"] for panel in document["panels"]] == ["train_loss", "val_loss"]
    import matplotlib.image

    assert matplotlib.image.imread(output).shape[2] in (3, 4)  # a PNG that opens

    opened = [runs.open(ref) for ref in refs]
    figure = _plot.figure(_plot.panels(opened, ["*_loss"]))
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["train_loss", "val_loss"]
    for ax in axes:
        assert [line.get_label() for line in ax.get_lines()] == refs
        for line, run in zip(ax.get_lines(), opened, strict=True):
            frame = run.metric(ax.get_title())
            assert np.array_equal(line.get_xdata(), frame.step.to_numpy(dtype=float))
            assert np.array_equal(line.get_ydata(), frame.value.to_numpy())


def test_plot_options_epoch_time_smooth_log(capsys: pytest.CaptureFixture[str], tracklight_root: Path) -> None:
    csv_run = runs.open(tracklight_root / "csv" / "version_0")
    (panel,) = _plot.panels([csv_run], ["train_loss"], x="epoch", smooth=3)
    values = csv_run.metric("train_loss").value.to_numpy()
    assert panel.lines[0].y[2] == pytest.approx(values[:3].mean()) and panel.lines[0].y[0] == values[0]
    epochs = panel.lines[0].x
    assert epochs[0] == 0 and np.all(np.diff(epochs) > 0) and 1 <= epochs[-1] < 2
    tensorboard_run = runs.open(tracklight_root / "tb" / "version_0")
    (panel,) = _plot.panels([tensorboard_run], ["train_loss"], x="time")
    assert panel.lines[0].x[0] >= 0 and np.all(np.diff(panel.lines[0].x) >= 0)
    figure = _plot.figure([panel], x="time", log_y=True)
    assert figure.axes[0].get_yscale() == "log"
    status, _, err = run_cli(capsys, "plot", csv_run.ref, "--x", "time")
    assert status == 1 and "keeps no timestamps" in err
    status, _out, err = run_cli(capsys, "plot", csv_run.ref, "-m", "nothing*")
    assert status == 1 and "-m nothing*: matches no metric" in err


def test_plot_in_the_terminal(capsys: pytest.CaptureFixture[str], tracklight_root: Path, lightning_root: Path) -> None:
    refs = [tracklight_root / "csv" / "version_0", lightning_root / "csv" / "version_0"]
    status, out, _ = run_cli(capsys, "plot", *refs, "-m", "val_loss")
    assert status == 0 and "val_loss" in out and str(refs[0]) in out and str(refs[1]) in out
    assert any(character in out for character in "▘▝▀▄▌▐")  # a drawing, not only text
    values = np.concatenate([runs.open(ref).metric("val_loss").value.to_numpy() for ref in refs])
    assert f"y: {values.min():.4g} to {values.max():.4g}" in out  # the range, which uniplot's labels round


def test_thinning_keeps_every_extreme_and_few_points() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=1_000_000)
    y[123_456] = 50.0
    y[654_321] = -50.0
    x = np.arange(len(y), dtype=float)
    xs, ys = _plot.thin(x, y, 4000)
    assert len(ys) <= 4000 and ys.max() == 50.0 and ys.min() == -50.0
    assert np.all(np.diff(xs) > 0) and np.array_equal(ys, y[xs.astype(int)])
    _small_x, small_y = _plot.thin(x[:100], y[:100], 4000)
    assert np.array_equal(small_y, y[:100])


def test_compare_shows_the_hyperparameters_that_differ(
    capsys: pytest.CaptureFixture[str], tracklight_root: Path, lightning_root: Path
) -> None:
    refs = [tracklight_root / "csv" / "version_0", lightning_root / "csv" / "version_0"]
    status, document = as_json(capsys, "compare", *refs)
    assert status == 0
    assert document["params"] == [{"name": "lr", "values": [0.05, 0.2], "differ": True}]
    shared = {metric["metric"]: metric for metric in document["metrics"]}
    assert sorted(shared) == ["train_loss", "val_loss"]
    for index, ref in enumerate(refs):
        frame = runs.open(ref).metric("val_loss")
        assert shared["val_loss"]["last"][index] == frame.value.iloc[-1]
        assert shared["val_loss"]["best"][index] == frame.value.min() and shared["val_loss"]["best_is"] == "min"
    status, out, _ = run_cli(capsys, "compare", *refs)
    assert "lr" in out and "0.05" in out and "0.2" in out and "hidden" not in out
    status, out, _ = run_cli(capsys, "compare", refs[0], refs[0])
    assert "hyperparameters: the runs have the same ones" in out and "NAME" not in out  # no empty table


def test_export_reports_where_each_run_went(
    capsys: pytest.CaptureFixture[str], tracklight_root: Path, tmp_path: Path
) -> None:
    ref = tracklight_root / "csv" / "version_0"
    status, document = as_json(capsys, "export", ref, "--to", f"tensorboard:{tmp_path}")
    assert status == 0 and document["target"] == f"tensorboard:{tmp_path}"
    (exported,) = document["exported"]
    assert exported["source"] == str(ref) and exported["points"] == 20 and exported["params"] == 3
    assert any("no timestamp" in line for line in exported["refused"])
    assert runs.open(exported["ref"]).metric_names() == runs.open(ref).metric_names()
    status, out, err = run_cli(capsys, "export", ref, "--to", f"csv:{tmp_path / 'csv'}")
    assert status == 0 and "the target took everything" in out
    status, out, err = run_cli(capsys, "export", ref, "--to", "nowhere")
    assert status == 1 and "is not an export target" in err


def test_the_console_script_and_python_m(tracklight_root: Path) -> None:
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"tracklight": "tracklight.cli:main"}
    assert "uniplot>=0.21" in project["project"]["optional-dependencies"]["cli"]
    result = subprocess.run(
        [sys.executable, "-m", "tracklight", "--help"], capture_output=True, text=True, timeout=120, check=True
    )
    for command in ("ls", "show", "plot", "compare", "export"):
        assert command in result.stdout


def test_ls_reads_csv_runs_without_pandas(tracklight_root: Path) -> None:
    code = (
        "import sys\nfrom tracklight.cli import main\n"
        f"status = main(['ls', {str(tracklight_root / 'csv')!r}])\n"
        "assert status == 0, status\n"
        "print('pandas' in sys.modules, 'matplotlib' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False False"


def test_every_command_takes_the_sqlite_uri_mlflow_ui_takes(
    capsys: pytest.CaptureFixture[str], tracklight_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sqlite:///mlflow/mlflow.db` (what the demo prints for `mlflow ui`): the `//` was folded into a path."""
    monkeypatch.chdir(tracklight_root)
    uri = "sqlite:///mlflow/mlflow.db"
    status, document = as_json(capsys, "ls", uri)
    assert status == 0 and document["errors"] == []
    (run,) = document["runs"]
    assert run["ref"].startswith(f"{uri}#") and run["backend"] == "mlflow" and run["metrics"] == 3
    absolute = f"sqlite:///{tracklight_root / 'mlflow' / 'mlflow.db'}"
    assert as_json(capsys, "ls", absolute)[1]["runs"][0]["version"] == run["version"]
    for argv in (["show", uri], ["show", run["ref"]], ["plot", uri, "-o", tmp_path / "p.png"], ["compare", uri, uri]):
        status, _out, err = run_cli(capsys, *argv)
        assert status == 0 and not err, (argv, err)
    status, document = as_json(capsys, "export", uri, "--to", f"csv:{tmp_path / 'out'}")
    assert status == 0 and document["exported"][0]["points"] == sum(
        len(points) for points in runs.open(uri).points().values()
    )
    status, _out, err = run_cli(capsys, "ls", "sqlite:///no/such.db")
    assert status == 1 and "no/such.db: no such MLflow store" in err


def test_a_metric_pattern_that_matches_nothing_is_one_rule_for_every_command(
    capsys: pytest.CaptureFixture[str], tracklight_root: Path, lightning_root: Path
) -> None:
    """Before: `show -m val/los` and `compare -m nosuch` printed an empty table with rc 0, `plot` said rc 1."""
    refs = [tracklight_root / "csv" / "version_0", lightning_root / "csv" / "version_0"]
    for argv in (
        ["show", refs[0], "-m", "val/los"],
        ["compare", *refs, "-m", "val/los"],
        ["plot", *refs, "-m", "val/los"],
    ):
        status, out, err = run_cli(capsys, *argv)
        assert status == 1, argv
        assert err.strip().splitlines() == [
            "error: -m val/los: matches no metric; the metrics: epoch, train_loss, val_loss"
        ], argv
        assert "Traceback" not in out + err
    # the rest of the work is still done: what the other pattern matches is shown
    status, out, err = run_cli(capsys, "show", refs[0], "-m", "val/los", "-m", "val_*")
    assert status == 1 and "val_loss" in out and "-m val/los" in err
    status, document = as_json(capsys, "compare", *refs, "-m", "nosuch")
    assert status == 1 and document["errors"][0]["path"] == "-m nosuch" and document["metrics"] == []


def test_bare_install_help_is_one_line_with_the_fix(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "click", None)  # how a venv without the `cli` extra looks to Python
    status, out, err = run_cli(capsys, "--help")
    assert status == 1 and out == ""
    assert err.splitlines() == [
        "error: the tracklight command needs click, which the 'cli' extra installs. Fix: " + install_command("cli")
    ]


def _cli_without(modules: tuple[str, ...], *argv: Any) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in {modules!r}:\n"
        "    sys.modules[name] = None\n"
        "from tracklight.cli import main\n"
        f"sys.exit(main({[str(arg) for arg in argv]!r}))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_export_to_a_target_whose_package_is_missing_is_refused_before_anything_is_written(
    tracklight_root: Path, tmp_path: Path
) -> None:
    ref = tracklight_root / "csv" / "version_0"
    hidden = ("mlflow", "wandb", "comet_ml", "neptune", "tensorboard")
    for target, extra in (
        (f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}", "mlflow"),
        (f"wandb:{tmp_path / 'out'}", "wandb"),
        (f"comet:{tmp_path / 'out'}", "comet"),
        (f"neptune:{tmp_path / 'out'}", "neptune"),
    ):
        result = _cli_without(hidden, "export", ref, "--to", target)
        assert result.returncode == 1 and result.stdout == "", result.stderr
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"error: {target}: exporting to ") and install_command(extra) in line
        assert not (tmp_path / "out").exists()
    # event files need crc32c (the tensorboard extra's) or TensorBoard's copy of it; without both, refused
    result = _cli_without((*hidden, "crc32c"), "export", ref, "--to", f"tensorboard:{tmp_path / 'out'}")
    assert result.returncode == 1 and result.stdout == "" and not (tmp_path / "out").exists()
    (line,) = result.stderr.splitlines()
    assert "needs the 'crc32c' package" in line and install_command("tensorboard") in line
    result = _cli_without(hidden, "export", ref, "--to", f"tensorboard:{tmp_path / 'tb'}")  # crc32c alone will do
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert runs.open(runs.find(tmp_path / "tb")[0].ref).metric_names() == runs.open(ref).metric_names()


def test_a_failed_export_leaves_no_half_run_and_says_what_was_sent(
    capsys: pytest.CaptureFixture[str], tracklight_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from tracklight.formats import tfevents

    real = tfevents.encode_scalars
    calls = 0

    def full_disk(*args: Any) -> bytes:
        nonlocal calls
        calls += 1
        if calls > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    monkeypatch.setattr(tfevents, "encode_scalars", full_disk)
    refs = [tracklight_root / "csv" / "version_0", tracklight_root / "tb" / "version_0"]
    status, _out, err = run_cli(capsys, "export", *refs, "--to", f"tensorboard:{tmp_path}")
    assert status == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all("No space left on device" in line for line in lines)
    assert lines[0].startswith(f"error: {refs[0]}: the export to tensorboard:{tmp_path} stopped after 0 of 20 point(s)")
    errors: list[runs.RunError] = []
    assert runs.find(tmp_path, on_error=errors.append) == []  # no half run for `ls` to list


def test_export_prints_no_mlflow_log_lines_and_errors_are_one_line(tracklight_root: Path, tmp_path: Path) -> None:
    """Before: MLflow's `INFO ... Creating initial MLflow database tables...` and its "View run" lines."""
    ref = tracklight_root / "csv" / "version_0"
    result = _cli_without((), "export", ref, "--to", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "INFO" not in result.stdout and "View run" not in result.stdout
    assert result.stdout.startswith("RUN ") and f"sqlite:///{tmp_path / 'mlflow.db'}#" in result.stdout
    result = _cli_without((), "export", ref, "--to", "nowhere")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: nowhere: is not an export target") and result.stderr.count("\n") == 1
