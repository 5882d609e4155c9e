"""``tracklight.runs.export`` into each local format and an MLflow SQLite store, read back with the target's own
reader: every point, step, timestamp (where the target keeps them) and hyperparameter equal; what a target
cannot take is in the report."""

from __future__ import annotations

import collections
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _comet_neptune_readers import comet_archives, neptune_runs
from _runs_written import PNG_PIXELS, written
from _wandb_reader import read_run
from tracklight import runs
from tracklight.runs import Run

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """A CSV run (no timestamps, an image), an MLflow run (timestamps, two values at one step, status failed),
    a TensorBoard run written by torch's SummaryWriter (timestamps, two metrics, an image)."""
    tracklight_root = written(tmp_path_factory, "tracklight")
    sdk_root = written(tmp_path_factory, "sdk")
    mlflow_run = next(run for run in runs.find(sdk_root) if run.backend == "mlflow")
    return {
        "csv": runs.open(tracklight_root / "csv" / "version_0"),
        "mlflow": mlflow_run,
        "tensorboard": runs.open(sdk_root / "summary_writer"),
    }


def points_of(run: Run) -> dict[str, list[tuple[int, float]]]:
    return {
        name: sorted(zip(run.metric(name).step, run.metric(name).value, strict=True)) for name in run.metric_names()
    }


def times_of(run: Run, name: str) -> list[float]:
    return sorted(run.metric(name).time.dropna().tolist())


def str_params(params: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in params.items()}


def test_export_to_csv_reads_back_with_pandas(sources: dict[str, Run], tmp_path: Path) -> None:
    report = runs.export(sources.values(), f"csv:{tmp_path}")
    for source, done in zip(sources.values(), report.runs, strict=True):
        frame = pd.read_csv(Path(done.ref) / "metrics.csv")
        got = {
            column: sorted(
                zip(frame.loc[frame[column].notna(), "step"].astype(int), frame[column].dropna(), strict=True)
            )
            for column in frame.columns
            if column != "step"
        }
        assert got == points_of(source)
        hparams = yaml.safe_load((Path(done.ref) / "hparams.yaml").read_text())
        assert hparams == source.params()
        assert done.points == sum(len(p) for p in source.points().values())
        if source.backend != "csv":
            assert any("CSV keeps no timestamps" in line for line in done.refused)
    image = next(m for m in runs.open(report.runs[0].ref).media() if m.kind == "image")
    assert image.key == "samples" and image.step == 0


def test_export_to_tensorboard_reads_back_with_event_accumulator(sources: dict[str, Run], tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    report = runs.export(sources.values(), f"tensorboard:{tmp_path}")
    for source, done in zip(sources.values(), report.runs, strict=True):
        accumulator = EventAccumulator(done.ref, size_guidance={"scalars": 0, "images": 0})
        accumulator.Reload()
        for name, expected in points_of(source).items():
            events = accumulator.Scalars(name)
            as_float32 = sorted((step, float(np.float32(value))) for step, value in expected)
            assert sorted((event.step, event.value) for event in events) == as_float32, name
            if times_of(source, name):
                assert sorted(event.wall_time for event in events) == times_of(source, name)
        assert yaml.safe_load((Path(done.ref) / "hparams.yaml").read_text()) == source.params()
        from tensorboard.plugins.hparams import plugin_data_pb2

        if source.params():  # TensorBoard's HPARAMS tab gets them too
            (content,) = accumulator.PluginTagToContent("hparams").values()
            start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
            assert sorted(start.hparams) == sorted(source.params())
        assert sorted(accumulator.Tags()["images"]) == sorted({m.key for m in source.media() if m.kind == "image"})
    assert any("no timestamp" in line for line in report.runs[0].refused)


def test_export_to_mlflow_sqlite_reads_back_with_mlflow_client(sources: dict[str, Run], tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'exported.db'}"
    report = runs.export(sources.values(), uri, experiment="moved")
    client = MlflowClient(uri)
    for source, done in zip(sources.values(), report.runs, strict=True):
        run_id = done.ref.rpartition("#")[2]
        run = client.get_run(run_id)
        assert run.data.params == str_params(source.params())
        assert run.info.run_name == source.info().name
        for name, expected in points_of(source).items():
            history = client.get_metric_history(run_id, name)
            assert sorted((m.step, m.value) for m in history) == expected, name
            if times_of(source, name):
                assert sorted(m.timestamp / 1000 for m in history) == pytest.approx(times_of(source, name), abs=1e-3)
        artifacts = [a.path for a in client.list_artifacts(run_id, "media/image")]
        assert len(artifacts) == len([m for m in source.media() if m.kind == "image"])
    assert client.get_run(report.runs[1].ref.rpartition("#")[2]).info.status == "FAILED"
    # and tracklight reads what it wrote
    assert points_of(runs.open(report.runs[1].ref)) == points_of(sources["mlflow"])
    assert (tmp_path / "artifacts").is_dir()  # beside the store, not in the current folder


def test_export_to_wandb_reads_back_from_its_offline_log(sources: dict[str, Run], tmp_path: Path) -> None:
    report = runs.export(sources.values(), f"wandb:{tmp_path}", experiment="moved")
    for source, done in zip(sources.values(), report.runs, strict=True):
        (log,) = Path(done.ref).glob("run-*.wandb")
        stored = read_run(log)
        assert stored.project == "moved" and stored.config == source.params()
        for name, expected in points_of(source).items():
            assert sorted(stored.values(name)) == expected, name
            if times_of(source, name):
                stamps = sorted(row["_timestamp"] for row in stored.history if name in row)
                assert stamps == pytest.approx(times_of(source, name))
        images = [m for m in runs.open(done.ref).media() if m.kind == "image"]
        assert len(images) == len([m for m in source.media() if m.kind == "image"])
    assert np.array_equal(_png(runs.open(report.runs[0].ref).media()[0].load()), PNG_PIXELS)


def test_export_to_comet_reads_back_from_its_offline_archive(sources: dict[str, Run], tmp_path: Path) -> None:
    report = runs.export(sources.values(), f"comet:{tmp_path}", experiment="moved")
    archives = {archive.path: archive for archive in comet_archives(tmp_path)}
    for source, done in zip(sources.values(), report.runs, strict=True):
        archive = archives[done.ref]
        assert archive.experiment["project_name"] == "moved"
        assert archive.parameters() == source.params()
        for name, expected in points_of(source).items():
            assert sorted((step, value) for step, _, value in archive.metrics(name)) == expected, name
        assert len(archive.uploads("visualization")) == len([m for m in source.media() if m.kind == "image"])
        if times_of(source, next(iter(points_of(source)))):
            assert any("Comet stamps values when they are logged" in line for line in done.refused)


def test_export_to_neptune_reads_back_from_its_offline_log(sources: dict[str, Run], tmp_path: Path) -> None:
    report = runs.export(sources.values(), f"neptune:{tmp_path}")
    found = {run.directory: run for run in neptune_runs(tmp_path / ".neptune")}
    for source, done in zip(sources.values(), report.runs, strict=True):
        stored = found[done.ref]
        atoms = stored.atoms()
        assert {key: atoms[f"parameters/{key}"] for key in source.params()} == {
            key: value if value is not None else "None" for key, value in source.params().items()
        }
        for name, expected in points_of(source).items():
            got = stored.series(name)
            kept = _strictly_increasing(source.metric(name).step.tolist(), source.metric(name).value.tolist())
            assert got == kept, name
            dropped = len(expected) - len(kept)
            assert (f"{dropped} point(s) of {name!r}" in " ".join(done.refused)) == bool(dropped)
    assert any("Neptune takes strictly increasing steps" in line for line in report.runs[1].refused)


def test_an_unknown_target_is_refused_with_the_forms_it_takes(sources: dict[str, Run]) -> None:
    with pytest.raises(runs.RunError, match=r"is not an export target.*csv:DIR"):
        runs.export([sources["csv"]], "ftp://somewhere")


def test_progress_reaches_the_total(sources: dict[str, Run], tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    runs.export([sources["tensorboard"]], f"csv:{tmp_path}", progress=lambda done, total: seen.append((done, total)))
    total = sum(len(p) for p in sources["tensorboard"].points().values())
    assert seen[-1] == (total, total) and all(b == total for _, b in seen)


def _strictly_increasing(steps: list[int], values: list[float]) -> list[tuple[int, float]]:
    kept: list[tuple[int, float]] = []
    for step, value in zip(steps, values, strict=True):
        if not kept or step > kept[-1][0]:
            kept.append((step, value))
    return kept


def _png(content: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


def test_rows_by_step_keeps_every_point() -> None:
    from tracklight.runs._export import rows_by_step
    from tracklight.runs._run import Points

    points = {"a": Points.of([0, 1, 1, 3], [1.0, 2.0, 3.0, 4.0], [10, 11, 12, math.nan]), "b": Points.of([1], [5.0])}
    rows = rows_by_step(points)
    assert [(step, row) for step, _, row in rows] == [
        (0, {"a": 1.0}),
        (1, {"a": 2.0, "b": 5.0}),
        (1, {"a": 3.0}),
        (3, {"a": 4.0}),
    ]
    assert collections.Counter(len(row) for _, _, row in rows) == {1: 3, 2: 1}
