"""Export into offline W&B, Comet and Neptune runs, written by each SDK itself (so ``wandb sync``, ``comet
upload`` and ``neptune sync`` send them later, as any offline run). Nothing here opens a network connection.

What each SDK cannot take is reported: Comet stamps every value with the time it is logged (no timestamp
argument); Neptune takes strictly increasing steps per series only; W&B gets media other than images as
run files.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator

import numpy as np

from tracklight._imports import require
from tracklight.runs._export import (
    Exported,
    Progress,
    Source,
    extension,
    missing_times,
    quiet,
    rows_by_step,
    staged_media,
)

__all__ = ["CometWriter", "NeptuneWriter", "WandbWriter"]

_STEP_KEY = "trainer/global_step"  # the step axis tracklight's and Lightning's WandbLogger use


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables the SDKs read at start, and put back what was there."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class WandbWriter:
    """``wandb:DIR``: an offline run under ``DIR/wandb/offline-run-*``, steps as ``trainer/global_step``."""

    def __init__(self, root: str, project: str) -> None:
        self.root = os.path.abspath(root)
        self.project = project

    def write(self, source: Source, progress: Progress) -> Exported:
        wandb = require("wandb", "wandb")
        os.makedirs(self.root, exist_ok=True)
        quiet = {"WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true"}
        with _environment(WANDB_MODE="offline", **quiet):
            run = wandb.init(
                mode="offline",
                dir=self.root,
                project=self.project,
                name=source.name,
                config=source.params,
                reinit="create_new",
                settings=wandb.Settings(x_disable_stats=True, x_disable_machine_info=True, console="off"),
            )
            folder = os.path.dirname(os.path.normpath(run.dir))
            done = Exported(source.run.ref, folder, params=len(source.params))
            run.define_metric(_STEP_KEY)
            run.define_metric("*", step_metric=_STEP_KEY)
            for step, stamp, row in rows_by_step(source.points):
                row = dict(row, **{_STEP_KEY: step})
                if stamp == stamp:
                    row["_timestamp"] = stamp
                run.log(row)
                done.points += len(row) - 1 - ("_timestamp" in row)
                progress(len(row) - 1 - ("_timestamp" in row))
            others = []
            with staged_media(source) as media_paths:
                for media, path in media_paths:
                    if media.kind == "image":
                        run.log({media.key: wandb.Image(path), _STEP_KEY: media.step or 0})
                    else:
                        run.save(path, base_path=os.path.dirname(path), policy="now")
                        others.append(media.name)
                    done.media += 1
                run.finish(exit_code=1 if source.status in ("failed", "killed") else 0)
        untimed = missing_times(source)
        if untimed:
            done.refused.append(f"{untimed} point(s) had no timestamp; W&B got the export time for them")
        if others:
            done.refused.append(
                f"W&B shows images only in its history: {len(others)} other media file(s) are run files"
            )
        return done


class CometWriter:
    """``comet:DIR``: an offline experiment archive ``DIR/<key>-*.zip``."""

    def __init__(self, root: str, project: str) -> None:
        self.root = os.path.abspath(root)
        self.project = project

    def write(self, source: Source, progress: Progress) -> Exported:
        from tracklight.loggers.comet import config as comet_config

        os.environ.setdefault("COMET_LOGGING_CONSOLE", "WARNING")  # its "to upload, run..." lines: the report says
        comet_ml = comet_config.import_comet(offline=True)
        os.makedirs(self.root, exist_ok=True)
        config = comet_ml.ExperimentConfig(
            name=source.name,
            offline_directory=self.root,
            log_code=False,
            log_graph=False,
            auto_param_logging=False,
            auto_metric_logging=False,
            auto_output_logging=False,
            parse_args=False,
            log_env_details=False,
            log_env_host=False,
            log_git_metadata=False,
            log_git_patch=False,
            display_summary_level=0,
        )
        with _environment(COMET_START_ONLINE="0"), comet_config.no_network_probes(comet_ml):
            experiment = comet_ml.start(project=self.project, online=False, experiment_config=config)
        key = experiment.get_key()
        done = Exported(source.run.ref, "", params=len(source.params))
        experiment.log_parameters(source.params)
        for name, points in source.points.items():
            for step, value in zip(points.step.tolist(), points.value.tolist(), strict=True):
                experiment.log_metric(name, value, step=step)
            done.points += len(points)
            progress(len(points))
        with staged_media(source) as media_paths:
            for media, path in media_paths:
                if media.kind == "image":
                    experiment.log_image(path, name=media.key, step=media.step)
                else:
                    experiment.log_asset(path, file_name=media.name, step=media.step)
                done.media += 1
            experiment.end()
        archives = sorted(glob.glob(os.path.join(self.root, f"{key}-*.zip")), key=os.path.getmtime)
        done.ref = archives[-1] if archives else self.root
        timed = done.points - missing_times(source)
        if timed:
            done.refused.append(f"Comet stamps values when they are logged: the times of {timed} point(s) are not kept")
        return done


class NeptuneWriter:
    """``neptune:DIR``: an offline run under ``DIR/.neptune/offline/`` (``neptune sync --path DIR`` sends it)."""

    def __init__(self, root: str, project: str) -> None:
        self.root = os.path.abspath(root)
        self.project = project

    def write(self, source: Source, progress: Progress) -> Exported:
        neptune = require("neptune", "neptune")
        from neptune.types import File

        data_dir = os.path.join(self.root, ".neptune")
        with _environment(NEPTUNE_DATA_DIRECTORY=data_dir, NEPTUNE_MODE="offline"), quiet("neptune"):
            before = set(glob.glob(os.path.join(data_dir, "offline", "*")))
            run = neptune.init_run(
                mode="offline",
                name=source.name,
                capture_stdout=False,
                capture_stderr=False,
                capture_hardware_metrics=False,
                capture_traceback=False,
                source_files=[],
                git_ref=False,
            )
            done = Exported(source.run.ref, "", params=len(source.params))
            for key, value in source.params.items():
                run[f"parameters/{key}"] = value if isinstance(value, (bool, int, float, str)) else str(value)
            for name, points in source.points.items():
                keep = _increasing(points.step)
                if (~keep).any():
                    done.refused.append(
                        f"Neptune takes strictly increasing steps: {int((~keep).sum())} point(s) of {name!r} "
                        "at repeated or earlier steps are not written"
                    )
                times = np.where(np.isnan(points.time), np.nan, points.time)[keep]
                run[name].extend(
                    points.value[keep].tolist(),
                    steps=points.step[keep].tolist(),
                    timestamps=None if np.isnan(times).any() else times.tolist(),
                )
                done.points += int(keep.sum())
                progress(len(points))
            for number, media in enumerate(source.media):
                run[f"media/{media.key}/{number}"].upload(
                    File.from_content(media.load(), extension=extension(media.name))
                )
                done.media += 1
            run.stop()
            after = set(glob.glob(os.path.join(data_dir, "offline", "*"))) - before
        done.ref = sorted(after)[-1] if after else data_dir
        untimed = missing_times(source)
        if untimed:
            done.refused.append(f"{untimed} point(s) had no timestamp; Neptune got the export time for them")
        return done


def _increasing(steps: np.ndarray) -> np.ndarray:
    """Which points keep steps strictly increasing (each one above every step kept before it)."""
    if not len(steps):
        return np.zeros(0, dtype=bool)
    before = np.maximum.accumulate(np.concatenate([[steps[0] - 1], steps[:-1]]))
    return steps > before
