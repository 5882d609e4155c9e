"""``tracklight export ... --to http://127.0.0.1:PORT``: into a real ``mlflow server`` (one for the session),
read back with ``MlflowClient`` from the server: every point, step, timestamp and hyperparameter equal, the
media as artifacts; and ``tracklight show`` reads the server's run back."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

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
