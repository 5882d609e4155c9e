"""``tracklight export ... --to http://127.0.0.1:PORT``: into a real ``mlflow server`` (one for the session),
read back with ``MlflowClient`` from the server: every point, step, timestamp and hyperparameter equal, the
media as artifacts; and ``tracklight show`` reads the server's run back."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _mlflow_server import MlflowServer
from _runs_written import written
from tracklight import runs
from tracklight.cli import main

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(600)]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("export-server"))
    server.start()
    yield server
    server.stop()


def test_export_puts_every_point_on_the_server(
    server: MlflowServer, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.tracking import MlflowClient

    sources = [
        runs.open(written(tmp_path_factory, "tracklight") / "csv" / "version_0"),
        runs.open(written(tmp_path_factory, "sdk") / "summary_writer"),
    ]
    capsys.readouterr()  # what writing the sources printed (Neptune's banners)
    status = main(["export", *[run.ref for run in sources], "--to", server.url, "--experiment", "moved", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert status == 0 and document["errors"] == []
    client = MlflowClient(server.url)
    for source, exported in zip(sources, document["exported"], strict=True):
        assert exported["ref"].startswith(f"{server.url}#")
        run_id = exported["ref"].rpartition("#")[2]
        run = client.get_run(run_id)
        assert client.get_experiment(run.info.experiment_id).name == "moved"
        assert run.data.params == {key: str(value) for key, value in source.params().items()}
        for name in source.metric_names():
            frame = source.metric(name)
            history = client.get_metric_history(run_id, name)
            assert sorted((m.step, m.value) for m in history) == sorted(zip(frame.step, frame.value, strict=True))
            if frame.time.notna().all():
                assert sorted(m.timestamp for m in history) == sorted((frame.time * 1000).round().astype(int))
        images = client.list_artifacts(run_id, "media/image")
        assert len(images) == len([m for m in source.media() if m.kind == "image"])
        assert exported["points"] == sum(len(p) for p in source.points().values())

    # the server's run, read back by tracklight itself
    ref = document["exported"][1]["ref"]
    status = main(["show", ref, "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert status == 0 and shown["runs"][0]["ref"] == ref
    assert {m["metric"]: m["points"] for m in shown["details"][0]["metrics"]} == {
        name: len(points) for name, points in sources[1].points().items()
    }


def test_ls_show_plot_compare_on_a_live_server_need_no_mlflow(
    server: MlflowServer,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`tracklight ls http://127.0.0.1:PORT` read `http:/127.0.0.1:PORT` as a folder; now the server is read
    over its REST API with the standard library (no mlflow import: the `cli` extra suffices)."""
    import subprocess

    source = written(tmp_path_factory, "tracklight") / "csv" / "version_0"
    capsys.readouterr()  # what writing the runs printed (Neptune's banners)
    assert main(["export", str(source), "--to", server.url, "--experiment", "listed", "--json"]) == 0
    ref = json.loads(capsys.readouterr().out)["exported"][0]["ref"]
    code = (
        "import contextlib, io, json, sys\n"
        "sys.modules['mlflow'] = None\n"
        "from tracklight.cli import main\n"
        f"assert main(['plot', {ref!r}, {ref!r}, '-m', 'val_loss']) == 0\n"
        f"assert main(['compare', {ref!r}, {str(source)!r}]) == 0\n"
        "documents = []\n"
        f"for argv in (['ls', {server.url!r}, '--json'], ['show', {ref!r}, '--json']):\n"
        "    buffer = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buffer):\n"
        "        assert main(argv) == 0\n"
        "    documents.append(json.loads(buffer.getvalue()))\n"
        "print(json.dumps(documents))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    listed, shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert ref in [run["ref"] for run in listed["runs"]]
    (run,) = shown["runs"]
    assert run["ref"] == ref and run["status"] == "finished" and run["metrics"] == 3 and run["params"] == 3
    expected = runs.open(source)
    got = runs.open(ref)
    for name in expected.metric_names():
        assert sorted(zip(got.metric(name).step, got.metric(name).value, strict=True)) == sorted(
            zip(expected.metric(name).step, expected.metric(name).value, strict=True)
        )
    assert got.params() == {key: str(value) for key, value in expected.params().items()}
    errors: list[runs.RunError] = []
    assert runs.find("http://127.0.0.1:9", on_error=errors.append) == [] and "no MLflow server answers" in str(
        errors[0]
    )


def test_an_export_whose_server_goes_away_midway_is_finished_by_the_same_export_again(
    server: MlflowServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    source = tmp_path / "long" / "version_0"
    source.mkdir(parents=True)
    rows = "".join(f"{step},{1 / (step + 1)},{step % 7}\n" for step in range(2500))
    (source / "metrics.csv").write_text("step,loss,acc\n" + rows)
    real = MlflowClient.log_batch
    calls = 0

    def goes_away(self: Any, run_id: str, metrics: Any = (), **kwargs: Any) -> Any:
        nonlocal calls
        if metrics:
            calls += 1
            if calls > 2:  # two batches of 1000 points got through; then the connection is refused
                raise MlflowException(
                    "API request to endpoint /api/2.0/mlflow/runs/log-batch failed: Connection refused"
                )
        return real(self, run_id, metrics=metrics, **kwargs)

    argv = ["export", str(source), "--to", server.url, "--experiment", "goes-away"]
    monkeypatch.setattr(MlflowClient, "log_batch", goes_away)
    capsys.readouterr()
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: {source}: the export to {server.url} stopped after 2000 of 5000 point(s): ")
    assert "Connection refused" in line and "run the same export again" in line
    monkeypatch.setattr(MlflowClient, "log_batch", real)
    assert main([*argv, "--json"]) == 0
    (exported,) = json.loads(capsys.readouterr().out)["exported"]
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name("goes-away")
    (run,) = client.search_runs([experiment.experiment_id])  # one run: the same one, finished
    assert exported["ref"] == f"{server.url}#{run.info.run_id}" and run.info.status == "FINISHED"
    for key, values in (("loss", [1 / (s + 1) for s in range(2500)]), ("acc", [float(s % 7) for s in range(2500)])):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted((m.step, m.value) for m in history) == list(enumerate(values))  # each point once
