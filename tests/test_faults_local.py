"""Faults and bad input on the local side of tracklight, one section per fault, each met the way a user meets
it: real files deleted, damaged or linked away under a real ``Trainer``, hostile hyperparameters, paths that
would leave ``save_dir``. Each test failed on ``main`` before the fix it pins (issue 10).

Elsewhere: metric values no backend can store (complex numbers, ints beyond float64, meta tensors) are in
``test_contract.py::test_bad_metric_values_raise_an_error_naming_the_key``, over every backend; a full disk,
SIGKILL and SIGTERM in ``test_durability.py`` and ``test_csv.py``; hostile values of every kind in
``test_fuzz.py``. ``docs/reliability.md`` lists them all.
"""

from __future__ import annotations

import csv
import glob
import os
import pickle
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tracklight import TracklightWarning
from tracklight.loggers import CSVLogger, TensorBoardLogger


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def messages(caught: Any) -> list[str]:
    return [str(warning.message) for warning in caught if issubclass(warning.category, TracklightWarning)]


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def data_lines(path: str) -> int:
    try:
        with open(path, encoding="utf-8") as handle:
            return max(0, len(handle.read().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def train_loss_steps(rows: list[dict[str, str]]) -> list[int]:
    return [int(row["step"]) for row in rows if row.get("train_loss")]


# ---- files deleted while training runs ------------------------------------------------------------------------


def _deleting_callback(at_batch: int, ready: Callable[[Any], bool], delete: Callable[[Any], None]) -> Any:
    """A callback that, at training batch ``at_batch``, waits until the logger's files hold what was logged so
    far (the background flusher writes them), then deletes them as a user's ``rm`` would."""
    from lightning.pytorch import Callback

    class Delete(Callback):
        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
            if batch_idx == at_batch:
                wait_for(lambda: ready(trainer.logger))
                delete(trainer.logger)

    return Delete()


def test_metrics_csv_deleted_mid_run_is_written_again_with_every_row(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    logger = CSVLogger(tmp_path)
    metrics = os.path.join(logger.log_dir, "metrics.csv")
    callback = _deleting_callback(2, lambda _: data_lines(metrics) >= 2, lambda _: os.remove(metrics))
    with pytest.warns(TracklightWarning) as caught:
        make_trainer(logger=logger, callbacks=[callback]).fit(tiny_model())
    [said] = [message for message in messages(caught) if "metrics.csv was deleted" in message]
    assert "written again with every row" in said
    rows = read_csv(metrics)
    assert train_loss_steps(rows) == [0, 1, 2, 3]  # the two rows from before the deletion are back
    assert [row["step"] for row in rows if row.get("val_loss")] == ["3"]


def test_version_folder_removed_mid_run_is_made_again_with_every_row(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    logger = CSVLogger(tmp_path)
    metrics = os.path.join(logger.log_dir, "metrics.csv")
    callback = _deleting_callback(2, lambda _: data_lines(metrics) >= 2, lambda lg: shutil.rmtree(lg.log_dir))
    with pytest.warns(TracklightWarning) as caught:
        make_trainer(logger=logger, callbacks=[callback]).fit(tiny_model(lr=0.05))
    said = messages(caught)
    assert len([message for message in said if "metrics.csv was deleted (or its folder removed)" in message]) == 1
    assert len([message for message in said if "hparams.yaml was deleted" in message]) == 1
    assert train_loss_steps(read_csv(metrics)) == [0, 1, 2, 3]
    assert yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text())["lr"] == 0.05


def test_a_run_folder_deleted_when_nothing_more_is_logged_stays_deleted(tmp_path: Path) -> None:
    """Deleting an old run from a shell while its logger is still alive (a notebook) is what the user meant:
    only a logger that writes again brings its file back."""
    from tracklight.formats import flushing

    logger = CSVLogger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")  # written and checked
    shutil.rmtree(logger.log_dir)
    logger.finalize("success")
    flushing.flush_all()  # what exit does
    assert not os.path.exists(logger.log_dir)


def test_metrics_csv_deleted_after_its_table_closed_starts_again_with_its_header(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.experiment.close()  # the descriptor that held the rows is gone
    os.remove(logger.experiment.metrics_file_path)
    with pytest.warns(TracklightWarning, match="the rows it held before are lost"):
        logger.log_metrics({"loss": 0.5}, step=1)
        logger.finalize("success")
    assert read_csv(logger.experiment.metrics_file_path) == [{"loss": "0.5", "step": "1"}]


def test_metrics_csv_deleted_then_written_by_finalize_alone_is_written_again(tmp_path: Path) -> None:
    """Deleted after the flusher last looked, then written only by a forced flush (finalize right after the
    last log, or exit): the flush looks before it writes, so the new row does not go into the deleted file."""
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.experiment.save(force=True)  # a forced write leaves no mark: no look is due until the next one
    os.remove(logger.experiment.metrics_file_path)
    with pytest.warns(TracklightWarning, match=r"was deleted .* every row logged so far \(2 rows\)"):
        logger.log_metrics({"loss": 0.5}, step=1)
        logger.finalize("success")
    assert [row["step"] for row in read_csv(logger.experiment.metrics_file_path)] == ["0", "1"]


def test_tensorboard_event_file_deleted_then_written_by_finalize_alone_is_written_again(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger._event_file("").flush(force=True)  # a forced write leaves no mark: no look is due until the next one
    for path in _event_files(logger):
        os.remove(path)
    with pytest.warns(TracklightWarning, match="TensorBoard event file .* was deleted"):
        logger.log_metrics({"loss": 0.5}, step=1)
        logger.finalize("success")
    assert _scalar_steps(logger.log_dir, "loss") == [0, 1]


def _scalar_steps(log_dir: str, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    return sorted(event.step for event in accumulator.Scalars(tag))


def _event_files(logger: Any) -> list[str]:
    return glob.glob(os.path.join(logger.log_dir, "events.out.tfevents.*.tracklight"))


def test_tensorboard_event_file_deleted_mid_run_is_written_again(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    def written(logger: Any) -> bool:
        return bool(_event_files(logger)) and _scalar_steps(logger.log_dir, "train_loss") == [0, 1]

    def delete(logger: Any) -> None:
        for path in _event_files(logger):
            os.remove(path)

    logger = TensorBoardLogger(tmp_path)
    with pytest.warns(TracklightWarning, match="TensorBoard event file .* was deleted"):
        make_trainer(logger=logger, callbacks=[_deleting_callback(2, written, delete)]).fit(tiny_model())
    assert _scalar_steps(logger.log_dir, "train_loss") == [0, 1, 2, 3]


# ---- damaged files met when a run resumes ---------------------------------------------------------------------


@pytest.mark.parametrize("where", ["in-the-header", "past-the-first-megabyte"])
def test_resume_onto_a_metrics_csv_that_is_not_utf8_keeps_it_aside(
    tmp_path: Path, tiny_model: type, make_trainer: Any, where: str
) -> None:
    run = tmp_path / "lightning_logs" / "version_0"
    run.mkdir(parents=True)
    filler = b"" if where == "in-the-header" else b"0.5,1\n" * 200_000
    damaged = b"loss\xff,step\n" + filler if where == "in-the-header" else b"loss,step\n" + filler + b"\xfe,2\n"
    (run / "metrics.csv").write_bytes(damaged)

    with pytest.warns(TracklightWarning) as caught:
        make_trainer(logger=CSVLogger(tmp_path, version=0)).fit(tiny_model())
    [said] = [message for message in messages(caught) if "is not UTF-8" in message]
    kept = run / "metrics.damaged.csv"
    assert str(run / "metrics.csv") in said and str(kept) in said
    assert kept.read_bytes() == damaged  # kept aside byte for byte, never deleted
    assert train_loss_steps(read_csv(run / "metrics.csv")) == [0, 1, 2, 3]


def test_hparams_yaml_holding_a_list_is_kept_aside_on_resume(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    run = tmp_path / "lightning_logs" / "version_0"
    run.mkdir(parents=True)
    (run / "hparams.yaml").write_text("- lr\n- 0.1\n")

    with pytest.warns(TracklightWarning, match="holds a list, not a mapping") as caught:
        make_trainer(logger=CSVLogger(tmp_path, version=0)).fit(tiny_model(lr=0.05))
    [said] = [message for message in messages(caught) if "not a mapping" in message]
    assert str(run / "hparams.yaml") in said and str(run / "hparams.damaged.yaml") in said
    assert (run / "hparams.damaged.yaml").read_text() == "- lr\n- 0.1\n"
    assert yaml.safe_load((run / "hparams.yaml").read_text())["lr"] == 0.05


@pytest.mark.parametrize(
    "content",
    [b"a: [unclosed\n", b"lr: \xff\xfe\n"],
    ids=["not-yaml", "not-utf8"],
)
@pytest.mark.parametrize("logger_class", [CSVLogger, TensorBoardLogger])
def test_hparams_yaml_that_cannot_be_read_is_kept_aside(tmp_path: Path, logger_class: type, content: bytes) -> None:
    run = tmp_path / "lightning_logs" / "version_0"
    run.mkdir(parents=True)
    (run / "hparams.yaml").write_bytes(content)
    logger = logger_class(tmp_path, version=0)
    with pytest.warns(TracklightWarning, match="could not be read as YAML"):
        logger.log_hyperparams({"lr": 0.1})
    logger.finalize("success")
    assert (run / "hparams.damaged.yaml").read_bytes() == content
    assert yaml.safe_load((run / "hparams.yaml").read_text()) == {"lr": 0.1}


# ---- hyperparameters that cannot be converted ----------------------------------------------------------------


class StrRaises:
    def __str__(self) -> str:
        raise RuntimeError("this object cannot be printed")

    __repr__ = __str__


def test_hyperparameters_whose_str_raises_or_that_contain_themselves_get_placeholders(
    tmp_path: Path, tiny_model: type, make_trainer: Any
) -> None:
    cycle: dict[str, Any] = {"depth": 2}
    cycle["again"] = cycle
    logger = CSVLogger(tmp_path)
    config = {"broken": StrRaises(), "cycle": cycle, "data": Path("/data/set")}
    with pytest.warns(TracklightWarning) as caught:
        make_trainer(logger=logger).fit(tiny_model(config=config))
    [said] = [message for message in messages(caught) if "hyperparameter value(s)" in message]
    assert "'config/broken'" in said and "<unloggable StrRaises>" in said and "RuntimeError" in said
    assert "'config/cycle/again'" in said and "<cycle>" in said
    assert "'config/data' (PosixPath -> '/data/set')" in said  # converted Paths are listed in the same warning
    stored = yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text())["config"]
    assert stored == {
        "broken": "<unloggable StrRaises>",
        "cycle": {"depth": 2, "again": "<cycle>"},
        "data": "/data/set",
    }


def test_a_path_alone_gives_no_warning(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CSVLogger(tmp_path).log_hyperparams({"data": Path("/data/set")})


# ---- symbolic links in a run folder --------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the run that a link in the run folder points to; it must stay as it is."""
    path = tmp_path / "elsewhere" / "precious.txt"
    path.parent.mkdir()
    path.write_text("loss,step\n0.5,0\n")
    return path


def test_metrics_csv_that_is_a_link_is_not_followed(tmp_path: Path, outside: Path) -> None:
    run = tmp_path / "logs" / "lightning_logs" / "version_0"
    run.mkdir(parents=True)
    (run / "metrics.csv").symlink_to(outside)
    logger = CSVLogger(tmp_path / "logs", version=0)
    with pytest.warns(TracklightWarning, match="is a symbolic link .* never followed"):
        logger.log_metrics({"loss": 0.25}, step=1)
        logger.log_metrics({"acc": 0.5}, step=2)
        logger.finalize("success")
    assert outside.read_text() == "loss,step\n0.5,0\n"
    assert not (run / "metrics.csv").is_symlink()
    assert [row["step"] for row in read_csv(run / "metrics.csv")] == ["1", "2"]
    assert (run / "metrics.link.csv").is_symlink()  # the link is kept aside, not deleted


def test_metrics_csv_replaced_by_a_link_mid_run_is_not_followed(tmp_path: Path, outside: Path) -> None:
    logger = CSVLogger(tmp_path / "logs")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.experiment.save(force=True)  # not save(), which leaves the rows to the flusher while it holds the table
    metrics = Path(logger.log_dir, "metrics.csv")
    assert metrics.is_file()
    with pytest.warns(TracklightWarning, match="replaced by another file"):  # the flusher may see it first
        link = metrics.with_name("new-link")
        link.symlink_to(outside)
        link.replace(metrics)  # in one step, as a replacing program does: the path is never missing
        logger.log_metrics({"loss": 0.5}, step=1)
        logger.finalize("success")
    assert outside.read_text() == "loss,step\n0.5,0\n"
    assert [row["step"] for row in read_csv(metrics)] == ["0", "1"] and not metrics.is_symlink()


def test_metrics_csv_widened_by_a_pickled_copy_is_continued(tmp_path: Path) -> None:
    # Lightning's own pickling test: a used logger and its copy in one process, both logging to one version. The
    # copy's new key rewrites metrics.csv under a wider header; the original goes on with that file.
    logger = CSVLogger(tmp_path / "logs")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.save()
    copy = pickle.loads(pickle.dumps(logger))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy.log_metrics({"acc": 0.5}, step=1)
        copy.finalize("success")
        logger.log_metrics({"loss": 0.75}, step=2)
        logger.finalize("success")
    metrics = Path(logger.log_dir, "metrics.csv")
    assert read_csv(metrics) == [
        {"acc": "", "loss": "1.0", "step": "0"},
        {"acc": "0.5", "loss": "", "step": "1"},
        {"acc": "", "loss": "0.75", "step": "2"},
    ]
    assert os.listdir(logger.log_dir) == ["metrics.csv"]


def test_metrics_csv_replaced_by_a_file_without_its_rows_is_set_aside(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path / "logs")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.save()
    metrics = Path(logger.log_dir, "metrics.csv")
    other = tmp_path / "other.csv"
    other.write_text("loss,step\n2.0,0\n")  # the same header, not the same rows
    os.replace(other, metrics)
    with pytest.warns(TracklightWarning, match="replaced by another file"):
        logger.log_metrics({"loss": 0.5}, step=1)
        logger.finalize("success")
    assert [row["loss"] for row in read_csv(metrics)] == ["1.0", "0.5"]
    assert read_csv(Path(logger.log_dir, "metrics.replaced.csv")) == [{"loss": "2.0", "step": "0"}]


@pytest.mark.parametrize("logger_class", [CSVLogger, TensorBoardLogger])
def test_hparams_yaml_that_is_a_link_is_not_followed(tmp_path: Path, outside: Path, logger_class: type) -> None:
    outside.write_text("secret: 1\n")
    run = tmp_path / "logs" / "lightning_logs" / "version_0"
    run.mkdir(parents=True)
    (run / "hparams.yaml").symlink_to(outside)
    logger = logger_class(tmp_path / "logs", version=0)
    with pytest.warns(TracklightWarning, match="is a symbolic link"):
        logger.log_hyperparams({"lr": 0.1})
    logger.finalize("success")
    assert outside.read_text() == "secret: 1\n"
    assert yaml.safe_load((run / "hparams.yaml").read_text()) == {"lr": 0.1}  # nothing read through the link
    assert (run / "hparams.link.yaml").is_symlink()


def test_media_index_that_is_a_link_is_not_followed(tmp_path: Path, outside: Path) -> None:
    logger = CSVLogger(tmp_path / "logs")
    index = Path(logger.log_dir, "media", "index.jsonl")
    index.parent.mkdir(parents=True)
    index.symlink_to(outside)
    with pytest.warns(TracklightWarning) as caught:
        logger.log_text("note", "hello", step=0)
    assert any("index.jsonl was a symbolic link" in message for message in messages(caught))
    assert outside.read_text() == "loss,step\n0.5,0\n"
    assert '"key": "note"' in index.read_text() and not index.is_symlink()


# ---- paths that would leave save_dir ---------------------------------------------------------------------------


def _files_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


_ESCAPES = [
    ("name", "../escaped"),
    ("name", "/tmp/tracklight-escaped-name"),
    ("version", "../../escaped"),
    ("version", "run/../../../escaped"),
    ("sub_dir", "../escaped"),
    ("sub_dir", "/tmp/tracklight-escaped-sub-dir"),
]


@pytest.mark.parametrize(
    ("logger_class", "argument", "value"),
    [
        (logger_class, argument, value)
        for logger_class in (CSVLogger, TensorBoardLogger)
        for argument, value in _ESCAPES
        if argument != "sub_dir" or logger_class is TensorBoardLogger  # CSVLogger has no sub_dir
    ],
)
def test_name_version_or_sub_dir_leaving_save_dir_is_refused(
    tmp_path: Path, logger_class: type, argument: str, value: str
) -> None:
    from tracklight import TracklightError, UnsafePathError

    save_dir = tmp_path / "inner" / "save"
    with pytest.raises(UnsafePathError, match=rf"^{argument}=.*outside save_dir") as raised:
        logger_class(save_dir, **{argument: value})
    assert isinstance(raised.value, TracklightError) and isinstance(raised.value, ValueError)
    assert _files_under(tmp_path) == set()


def test_a_dict_metric_entry_that_leaves_the_run_is_refused(tmp_path: Path) -> None:
    from tracklight import InvalidMetricError

    save_dir = tmp_path / "inner" / "save"
    logger = TensorBoardLogger(save_dir)
    with pytest.raises(InvalidMetricError, match=r"'loss' has the entry '\.\./\.\./\.\./\.\./escaped'"):
        logger.log_metrics({"loss": {"train": 0.5, "../../../../escaped": 0.7}}, step=0)
    logger.log_metrics({"loss": {"train": 0.25, "val/x": 0.5}}, step=1)  # a nested folder in the run is fine
    logger.finalize("success")
    assert all(path.startswith("inner") for path in _files_under(tmp_path))


def test_a_media_key_of_dots_stays_in_its_folder(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    with pytest.warns(TracklightWarning, match="keeps them as files"):
        logger.log_text("..", "hello", step=0)
    assert os.listdir(Path(logger.log_dir, "media", "text")) == ["_"]
