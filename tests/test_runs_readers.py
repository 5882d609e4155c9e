"""Each reader of ``tracklight.runs`` on runs written for real: by tracklight's loggers, by Lightning's, and by
each SDK directly; checked against the backend's own reader where it has one, and against each other (one
Trainer logging to every backend at once must read back the same everywhere)."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _comet_neptune_readers import comet_archives, neptune_runs
from _runs_written import PNG_PIXELS, SDK_STEPS, sdk_values, written
from tracklight import runs
from tracklight.runs import Run, RunError

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(600)]


def by_backend(root: Path) -> dict[str, Run]:
    found: dict[str, Run] = {}
    for run in runs.find(root):
        if run.info().metrics:  # a backend may leave an empty segment (e.g. Neptune's run of a later call)
            assert run.backend not in found, f"two {run.backend} runs under {root}"
            found[run.backend] = run
    return found


def pairs(run: Run, name: str) -> list[tuple[int, float]]:
    frame = run.metric(name)
    return list(zip(frame.step.tolist(), frame.value.tolist(), strict=True))


def csv_pairs(metrics_csv: Path, column: str) -> list[tuple[int, float]]:
    """The reference: pandas reading Lightning's wide CSV, rows with a value in ``column``."""
    frame = pd.read_csv(metrics_csv)
    rows = frame[frame[column].notna()]
    return list(zip(rows["step"].astype(int).tolist(), rows[column].tolist(), strict=True))


def png_pixels(content: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


# ---- one Trainer, every tracklight logger: every reader reads the same run ---------------------------------


def test_every_backend_reads_back_what_tracklight_logged(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = written(tmp_path_factory, "tracklight")
    found = by_backend(root)
    assert sorted(found) == ["comet", "csv", "mlflow", "neptune", "tensorboard", "wandb"]
    reference = found["csv"]
    metrics_csv = Path(reference.path) / "metrics.csv"
    for name in ("train_loss", "val_loss", "epoch"):
        assert pairs(reference, name) == csv_pairs(metrics_csv, name)
    for backend, run in found.items():
        for name in ("train_loss", "val_loss"):
            their_name = f"training/{name}" if backend == "neptune" else name
            assert pairs(run, their_name) == pairs(reference, name), (backend, name)
        if backend != "neptune":  # Neptune keeps strictly increasing steps: epoch's repeated step is not there
            assert pairs(run, "epoch") == pairs(reference, "epoch"), backend
        assert {key: str(value) for key, value in run.params().items()} == {
            "lr": "0.05",
            "hidden": "4",
            "config": "None",
        }, backend
        info = run.info()
        assert info.steps == reference.info().steps and info.params == 3, (backend, info)
    for backend in ("csv", "tensorboard", "wandb", "mlflow"):
        images = [media for media in found[backend].media() if media.kind == "image"]
        assert [media.key for media in images] == ["samples"], backend
        assert np.array_equal(png_pixels(images[0].load()), PNG_PIXELS), backend
    assert found["wandb"].info().status == "finished" and found["mlflow"].info().status == "finished"


def test_every_backend_reads_back_what_lightning_logged(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = written(tmp_path_factory, "lightning")
    found = by_backend(root)
    assert sorted(found) == ["csv", "mlflow", "tensorboard", "wandb"]
    reference = found["csv"]
    for name in ("train_loss", "val_loss", "epoch"):
        assert pairs(reference, name) == csv_pairs(Path(reference.path) / "metrics.csv", name)
        for backend, run in found.items():
            assert pairs(run, name) == pairs(reference, name), (backend, name)
    for run in found.values():
        assert {key: str(value) for key, value in run.params().items()} == {
            "lr": "0.2",
            "hidden": "4",
            "config": "None",
        }
    assert found["mlflow"].path.startswith(str(root / "mlruns"))  # the file store, read without MLflow


# ---- against each backend's own reader ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tracklight", "lightning", "sdk"])
def test_tensorboard_reader_equals_event_accumulator(tmp_path_factory: pytest.TempPathFactory, kind: str) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = written(tmp_path_factory, kind)
    boards = [run for run in runs.find(root) if run.backend == "tensorboard"]
    assert boards
    for run in boards:
        accumulator = EventAccumulator(run.path, size_guidance={"scalars": 0, "images": 0})
        accumulator.Reload()
        tags = accumulator.Tags()["scalars"]
        assert sorted(tags) == run.metric_names()
        for tag in tags:
            events = accumulator.Scalars(tag)
            frame = run.metric(tag)
            assert frame.step.tolist() == [event.step for event in events]
            assert frame.value.tolist() == [event.value for event in events]
            assert frame.time.tolist() == [event.wall_time for event in events]
        images = accumulator.Tags()["images"]
        assert sorted({media.key for media in run.media() if media.kind == "image"}) == sorted(images)


@pytest.mark.parametrize("kind", ["tracklight", "lightning", "sdk"])
def test_mlflow_reader_equals_mlflow_client(tmp_path_factory: pytest.TempPathFactory, kind: str) -> None:
    from mlflow.tracking import MlflowClient

    root = written(tmp_path_factory, kind)
    stores = [run for run in runs.find(root) if run.backend == "mlflow"]
    assert stores
    for run in stores:
        uri = run.ref.partition("#")[0] if run.ref.startswith("sqlite") else f"file:{Path(run.path).parent.parent}"
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        try:
            client = MlflowClient(uri if not uri.startswith("sqlite") else f"sqlite:///{root / uri[10:]}")
            theirs = client.get_run(run.info().version)
        finally:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        assert run.params() == theirs.data.params
        assert run.info().name == theirs.info.run_name
        assert run.info().status == theirs.info.status.lower()
        assert run.metric_names() == sorted(theirs.data.metrics)
        for key in theirs.data.metrics:
            history = client.get_metric_history(theirs.info.run_id, key)
            frame = run.metric(key)
            ours = sorted(zip(frame.step, frame.value, (frame.time * 1000).round().astype(int), strict=True))
            assert ours == sorted((m.step, m.value, m.timestamp) for m in history), key


def test_sdk_runs_read_with_their_steps_values_and_times(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = written(tmp_path_factory, "sdk")
    found = {run.backend: run for run in runs.find(root)}
    assert sorted(found) == ["comet", "mlflow", "neptune", "tensorboard", "wandb"]
    expected = list(zip(SDK_STEPS, sdk_values("loss"), strict=True))
    for backend, run in found.items():
        got = pairs(run, "loss")
        if backend == "mlflow":
            assert got[-1] == (SDK_STEPS[-1], 7.5)  # two values at one step: both kept, in logged order
            got = got[:-1]
        assert got == expected, backend
    assert found["tensorboard"].metric("loss").time.tolist() == [1_700_000_000.0 + s for s in SDK_STEPS]
    assert found["neptune"].metric("loss").time.tolist() == [1_700_000_000.0 + s for s in SDK_STEPS]
    assert found["mlflow"].metric("loss").time.tolist()[0] == 1_700_000_000.0
    assert found["mlflow"].info().status == "failed"
    assert found["wandb"].params() == {"lr": 0.5, "opt/m": 0.9}
    assert found["comet"].params() == {"lr": 0.5, "layers": 3}
    assert found["neptune"].params() == {"lr": 0.5, "layers": 3}
    assert pairs(found["wandb"], "acc") == list(zip(SDK_STEPS, sdk_values("acc"), strict=True))
    # the test suite's own readers of Comet's archive and Neptune's log agree
    (archive,) = [a for a in comet_archives(root / "comet")]
    assert [(step, value) for step, _, value in archive.metrics("loss")] == expected
    (neptune_run,) = neptune_runs(root / "neptune" / ".neptune")
    assert neptune_run.series("loss") == expected


# ---- spill files ------------------------------------------------------------------------------------------


def test_spill_file_is_read_tolerantly(tmp_path: Path) -> None:
    from tracklight.delivery.spill import SpillFile

    path = tmp_path / "tracklight-spill" / "mlflow-x.jsonl"
    spill = SpillFile(str(path), header=lambda: {"sink": "test", "target": {"run_name": "r", "experiment_name": "e"}})
    spill.append([{"kind": "metric", "key": "loss", "value": 0.5, "step": 1, "timestamp": 1_000, "new_field": 1}])
    spill.append([{"kind": "param", "key": "lr", "value": "0.1"}, {"kind": "something_newer", "x": 1}])
    spill.append_target({"run_id": "abc"})
    spill.append([{"kind": "metric", "key": "loss", "value": float("nan"), "step": 2, "timestamp": 2_000}])
    spill.close()
    with open(path, "a") as handle:
        handle.write('{"kind": "metric", "key": "loss", "val')  # cut short by a crash
    (run,) = runs.find(tmp_path)
    assert run.backend == "spill" and run.ref == str(path)
    info = run.info()
    assert (info.name, info.version, info.steps, info.metrics, info.params) == ("r", "abc", 2, 1, 1)
    frame = run.metric("loss")
    assert frame.step.tolist() == [1, 2] and frame.value[0] == 0.5 and math.isnan(frame.value[1])
    assert frame.time.tolist() == [1.0, 2.0]
    assert run.params() == {"lr": "0.1"}


# ---- finding, opening, damage ------------------------------------------------------------------------------


def test_damaged_files_are_named_and_the_other_runs_still_listed(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    source = written(tmp_path_factory, "tracklight")
    shutil.copytree(source / "csv", tmp_path / "csv")
    shutil.copytree(source / "tb", tmp_path / "tb")
    shutil.copytree(source / "wandb", tmp_path / "wandb", symlinks=True)
    (tmp_path / "empty").mkdir()
    (log,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    log.write_bytes(b"not a W&B log at all")
    (tmp_path / "broken" / "version_0").mkdir(parents=True)
    (tmp_path / "broken" / "version_0" / "metrics.csv").write_text('step,loss\n0,1.0\n1,"2.0,3\n')
    (tmp_path / "badyaml").mkdir()
    (tmp_path / "badyaml" / "metrics.csv").write_text("step,loss\n0,1.0\n")
    (tmp_path / "badyaml" / "hparams.yaml").write_text("lr: [0.1,\n")
    (event,) = (tmp_path / "tb" / "version_0").glob("*.tracklight")
    data = bytearray(event.read_bytes())
    middle = len(data) // 2  # inside a scalar record, past the HPARAMS records near the start
    data[middle : middle + 30] = b"\xff" * 30  # garbage inside a record
    event.write_bytes(bytes(data))

    errors: list[RunError] = []
    found = runs.find(tmp_path, tmp_path / "nothing-here", on_error=errors.append)
    infos = {}
    for run in found:
        try:
            infos[run.backend] = run.info()
        except RunError as error:
            errors.append(error)
    assert "csv" in infos and infos["csv"].steps == 7
    messages = "\n".join(str(error) for error in errors)
    assert str(log) in messages and "damaged" in messages
    assert str(event) in messages
    assert f"{tmp_path / 'nothing-here'}: no such file or folder" in messages
    assert f"{tmp_path / 'badyaml' / 'hparams.yaml'}: cannot be read as YAML" in messages
    with pytest.raises(RunError, match=r"metrics\.csv: is damaged"):
        runs.open(tmp_path / "broken" / "version_0").points()
    with pytest.raises(RunError, match="holds no run"):
        runs.open(tmp_path / "empty")


def test_a_cut_short_event_file_reads_up_to_the_cut(tmp_path: Path) -> None:
    from tracklight.formats import tfevents

    folder = tmp_path / "tb"
    folder.mkdir()
    records = [tfevents.frame(tfevents.encode_scalars(step, 1.0 + step, [("x", step / 2)])) for step in range(100)]
    data = tfevents.frame(tfevents.encode_file_version(1.0)) + b"".join(records)
    (folder / "events.out.tfevents.1.host").write_bytes(data[:-10])  # the last record is still being written
    assert runs.open(folder).metric("x").step.tolist() == list(range(99))


def test_one_folder_two_backends_gets_prefixed_refs(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    source = written(tmp_path_factory, "tracklight")
    shutil.copytree(source / "csv" / "version_0", tmp_path / "both")
    for event in (source / "tb" / "version_0").glob("events.*"):
        shutil.copy(event, tmp_path / "both")
    refs = sorted(run.ref for run in runs.find(tmp_path / "both"))
    assert refs == [f"csv:{tmp_path / 'both'}", f"tensorboard:{tmp_path / 'both'}"]
    with pytest.raises(RunError, match="holds several runs"):
        runs.open(tmp_path / "both")
    assert runs.open(refs[1]).backend == "tensorboard"


def test_fast_event_decoding_equals_record_by_record(tmp_path: Path) -> None:
    """Periodic layouts, a layout change mid-file, step 0 (no step field), odd records: the bulk path and the
    one-by-one path agree, and both agree with TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tracklight.formats import tfevents
    from tracklight.runs import _tfrecord

    rng = np.random.default_rng(0)
    chunks = [tfevents.frame(tfevents.encode_file_version(5.0))]
    for step in range(3000):
        if step < 1000:  # several tags in one event
            scalars = [("a", float(rng.normal())), ("b", float(rng.normal()))]
        elif step < 2000:  # one tag per event, in turn
            scalars = [("a" if step % 2 else "long/tag/name", float(rng.normal()))]
        else:
            scalars = [(f"t{step % 3}", float(rng.normal()))]
        chunks.append(tfevents.frame(tfevents.encode_scalars(step, 10.0 + step * 0.5, scalars)))
        if step % 777 == 0:
            chunks.append(tfevents.frame(tfevents.encode_file_version(6.0)))  # not a scalar event
    data = b"".join(chunks)
    (tmp_path / "events.out.tfevents.2.host").write_bytes(data)

    starts, lengths, cut = _tfrecord.frames(data)
    assert not cut and len(starts) == len(chunks)
    fast = _tfrecord.decode(data, starts, lengths)
    slow = _tfrecord.Decoded()
    for index, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
        _tfrecord._one(slow, data, start, start + length, index)

    def flat(decoded: Any) -> dict[str, list[tuple[int, int, float, float]]]:
        return {
            tag: sorted(zip(*(np.concatenate(c).tolist() for c in zip(*parts, strict=True)), strict=True))
            for tag, parts in decoded.scalars.items()
        }

    assert flat(fast) == flat(slow)
    accumulator = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    accumulator.Reload()
    run = runs.open(tmp_path)
    for tag in accumulator.Tags()["scalars"]:
        assert run.metric(tag).value.tolist() == [event.value for event in accumulator.Scalars(tag)]
        assert run.metric(tag).step.tolist() == [event.step for event in accumulator.Scalars(tag)]


# ---- the Python API -------------------------------------------------------------------------------------------


def test_frames_and_summaries(tmp_path_factory: pytest.TempPathFactory) -> None:
    run = runs.open(written(tmp_path_factory, "sdk") / "summary_writer")
    long = run.metrics(["l*"])
    assert list(long.columns) == ["metric", "step", "value", "time"]
    assert set(long.metric) == {"loss"} and len(long) == len(SDK_STEPS)
    summary = run.summary().loc["loss"]
    values = np.array(sdk_values("loss"))
    assert summary["points"] == len(SDK_STEPS) and summary["last"] == values[-1]
    assert summary["min"] == values.min() and summary["min_step"] == SDK_STEPS[int(values.argmin())]
    assert summary["max"] == values.max() and summary["max_step"] == SDK_STEPS[int(values.argmax())]
    with pytest.raises(RunError, match="has no metric 'nope'"):
        run.metric("nope")


def test_public_names_of_tracklight_runs_are_pinned() -> None:
    assert sorted(runs.__all__) == sorted(
        ["BACKENDS", "ExportReport", "MediaFile", "Points", "Run", "RunError", "RunInfo", "export", "find", "open"]
    )
    assert callable(runs.export) and runs.ExportReport.__name__ == "ExportReport"


def test_reading_imports_no_logger_sdk_or_frame_library() -> None:
    code = (
        "import json, sys, tracklight, tracklight.runs\n"
        "heavy = ('torch', 'lightning', 'pandas', 'matplotlib', 'mlflow', 'wandb', 'comet_ml', 'neptune', "
        "'tensorboard', 'rich', 'click', 'uniplot', 'tracklight.loggers')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m in heavy or m.partition('.')[0] in heavy[:-1])))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout) == []


def test_big_runs_are_cached_until_their_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tracklight.runs import _cache, _csv

    monkeypatch.setenv("TRACKLIGHT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(_cache, "MIN_POINTS", 1)
    shutil.copytree(written(tmp_path_factory, "tracklight") / "csv" / "version_0", tmp_path / "run")
    first = runs.open(tmp_path / "run").points()
    (entry,) = (tmp_path / "cache").glob("*.npz")

    def no_reading(self: Any) -> Any:
        raise AssertionError("read from the files although the cache has the run")

    with monkeypatch.context() as patched:
        patched.setattr(_csv.CSVRun, "_read", no_reading)
        again = runs.open(tmp_path / "run").points()
    assert {name: (p.step.tolist(), p.value.tolist()) for name, p in again.items()} == {
        name: (p.step.tolist(), p.value.tolist()) for name, p in first.items()
    }
    with open(tmp_path / "run" / "metrics.csv", "a") as handle:
        handle.write("1,99,0.5,\n")  # a new row: a new entry, read from the file
    assert runs.open(tmp_path / "run").metric("train_loss").step.tolist()[-1] == 99
    (newest,) = set((tmp_path / "cache").glob("*.npz")) - {entry}
    newest.write_bytes(b"damaged")  # a damaged entry is passed over: the files are read
    assert runs.open(tmp_path / "run").metric("train_loss").step.tolist()[-1] == 99


# ---- reading with no SDK: what the `cli` extra alone installs (issue 18) ----------------------------------


def _proto_history(record: Any) -> dict[str, Any]:
    """A history row decoded by ``wandb.proto``'s own classes: the reference for the wire decoder."""
    row: dict[str, Any] = {}
    for item in record.history.item:
        kind = item.WhichOneof("value")
        value = (
            (json.loads(item.value_json) if item.value_json else None)
            if kind is None
            else None
            if kind == "none"
            else json.loads(item.json)
            if kind == "json"
            else getattr(item, kind)
        )
        target = row
        keys = list(item.nested_key) or [item.key]
        for part in keys[:-1]:
            target = target.setdefault(part, {})
        target[keys[-1]] = value
    return row


@pytest.mark.parametrize("kind", ["tracklight", "lightning", "sdk"])
def test_wandb_reader_needs_no_wandb_and_equals_wandb_proto(
    tmp_path_factory: pytest.TempPathFactory, kind: str
) -> None:
    from tracklight.runs._wandb import read_run, records, run_files

    files = run_files(written(tmp_path_factory, kind))
    assert files
    for path in files:
        stored = read_run(path)
        parsed = records(path)
        assert stored.history == [_proto_history(r) for r in parsed if r.WhichOneof("record_type") == "history"]
        (run_record,) = [r.run for r in parsed if r.WhichOneof("record_type") == "run"]
        assert (stored.run_id, stored.project, stored.display_name) == (
            run_record.run_id,
            run_record.project,
            run_record.display_name,
        )
        assert stored.start_time == run_record.start_time.seconds + run_record.start_time.nanos / 1e9
        exits = [r.exit.exit_code for r in parsed if r.WhichOneof("record_type") == "exit"]
        assert stored.exit_code == (exits[-1] if exits else None)
        config: dict[str, Any] = {}
        for record in parsed:
            if record.WhichOneof("record_type") in ("run", "config"):
                body = record.run.config if record.WhichOneof("record_type") == "run" else record.config
                config.update({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in body.update})
        config.pop("_wandb", None)
        assert stored.config == config and stored.config
        artifacts = [r.artifact for r in parsed if r.WhichOneof("record_type") == "artifact"]
        assert [(a.name, a.type, sorted(a.files)) for a in stored.artifacts] == [
            (a.name, a.type, sorted(e.path for e in a.manifest.contents)) for a in artifacts
        ]


def test_wire_decoder_reads_every_field_kind_and_names_a_cut_message() -> None:
    from tracklight.runs._protowire import WireError, parse

    negative = (-3 & (1 << 64) - 1).to_bytes(8, "little")
    varint = bytearray()
    value = int.from_bytes(negative, "little")
    while True:
        byte, value = value & 0x7F, value >> 7
        varint.append(byte | (0x80 if value else 0))
        if not value:
            break
    data = (
        b"\x08"
        + bytes(varint)  # field 1, int64 -3
        + b"\x10\x05"  # field 2, sint64 -3 (zigzag 5)
        + b"\x19"
        + struct.pack("<d", 2.5)  # field 3, double
        + b"\x22\x03abc"  # field 4, string
        + b"\x2a\x04\x0a\x02hi"  # field 5, a nested message whose field 1 is "hi"
    )
    message = parse(data)
    assert message.integer(1) == -3 and message.sint(2) == -3 and message.double(3) == 2.5
    assert message.text(4) == "abc" and message.message(5).text(1) == "hi" and message.text(9) == ""
    with pytest.raises(WireError, match="longer than the message"):
        parse(b"\x22\x09abc")


def test_every_backend_is_listed_and_shown_with_no_sdk_installed(tmp_path_factory: pytest.TempPathFactory) -> None:
    """What `pip install '.[cli]'` gives: no wandb (nor its protobuf), mlflow, comet_ml, neptune, tensorboard,
    torch or lightning. Before issue 18, `ls` stopped at the W&B run with a traceback asking for wandb."""
    root = written(tmp_path_factory, "tracklight")
    code = (
        "import json, sys\n"
        "for name in ('wandb', 'mlflow', 'comet_ml', 'neptune', 'tensorboard', 'torch', 'lightning', 'google'):\n"
        "    sys.modules[name] = None\n"
        "from tracklight import runs\n"
        f"found = runs.find({str(root)!r})\n"
        "print(json.dumps({run.backend: [run.info().metrics, len(run.points()), len(run.params())] for run in found}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(seen) == {"csv", "tensorboard", "mlflow", "wandb", "comet", "neptune"}
    assert seen["wandb"] == seen["csv"] == [3, 3, 3]


def test_comet_keeps_a_hand_logged_parameter_equal_to_a_command_line_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python train.py data.csv --lr 0.01` logging lr=0.01 by hand: Comet stores `lr` once, as `source: cli`,
    and the reader (which kept only `manual`) dropped it, so `compare` showed `lr 0.003 -`."""
    import comet_ml

    for name in ("COMET_API_KEY", "COMET_START_ONLINE", "COMET_OFFLINE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", ["train.py", "data.csv", "--lr", "0.01", "--epochs", "2"])
    config = comet_ml.ExperimentConfig(
        name="cli", offline_directory=str(tmp_path), log_code=False, log_env_host=False, display_summary_level=0
    )
    experiment = comet_ml.start(project="p", online=False, experiment_config=config)
    experiment.log_parameters({"lr": 0.01, "layers": 3})
    experiment.log_parameter("epochs", 5)  # differs from the command line's: the hand-logged value wins
    experiment.log_metric("loss", 1.0, step=0)
    experiment.end()
    (run,) = runs.find(tmp_path)
    assert run.params() == {"lr": 0.01, "layers": 3, "epochs": 5}
