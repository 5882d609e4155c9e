"""NeptuneLogger: Neptune runs through the ``neptune`` 1.x client, with the arguments Lightning's last version had."""

from __future__ import annotations

import contextlib
import math
import os
from argparse import Namespace
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from tracklight import __version__, media
from tracklight._errors import MissingDependencyError, TracklightError, warn
from tracklight._imports import is_available, is_instance_by_name, require
from tracklight._metrics import to_number
from tracklight._rank import global_rank, rank_zero_only
from tracklight.loggers import _neptune_values as neptune_values
from tracklight.loggers._neptune_steps import SeriesSteps
from tracklight.loggers.logger import Logger, rank_zero_experiment
from tracklight.params import flatten, sanitize, warn_conversions

if TYPE_CHECKING:
    import numpy as np

__all__ = ["NeptuneArgumentError", "NeptuneLogger"]

_RUN_TYPES = ("neptune.metadata_containers.run.Run", "neptune.handler.Handler")
_INTEGRATION_KEY = "source_code/integrations/tracklight"
#: Modes whose runs live on the Neptune server, so a stopped run can be continued by its id.
_SERVER_MODES = ("async", "sync")
#: Longest ``finalize`` waits for an async run to reach the server; what is left stays on disk for ``neptune sync``.
STOP_TIMEOUT = 300.0


class NeptuneArgumentError(TracklightError, ValueError):
    """NeptuneLogger got arguments that do not go together (Lightning raised ``ValueError`` for these too)."""


class NeptuneLogger(Logger):
    r"""Log to a `Neptune <https://neptune.ai>`_ run with the ``neptune`` client (1.x).

    Takes the arguments of Lightning's last ``NeptuneLogger`` (Lightning dropped the class in 2.6.4).
    Metrics go under ``prefix`` (``training/train_loss``) with steps that always increase within a
    series, as Neptune requires; hyperparameters under ``<prefix>/hyperparams``; checkpoints under
    ``<prefix>/model/checkpoints``. The connection mode is ``mode=`` or ``NEPTUNE_MODE``: ``"async"``
    (default), ``"sync"``, ``"offline"`` (written under ``.neptune/``, sent later with ``neptune sync``)
    or ``"debug"`` (kept in memory). ``finalize`` records the status and stops a run the logger started;
    logging afterwards (``trainer.test`` after ``trainer.fit``) continues it by its id online, or starts
    a new run offline (offline runs cannot be reopened; pass ``run=`` to keep one run open yourself).

    Args:
        api_key: Neptune API token; defaults to ``NEPTUNE_API_TOKEN``.
        project: ``"workspace-name/project-name"``; defaults to ``NEPTUNE_PROJECT``.
        name: The run's name in the Neptune app.
        run: A run (``neptune.init_run(...)``) or a namespace of one (``run["finetuning"]``) to log into
            instead of starting a new run; the logger never stops a run it did not start.
        log_model_checkpoints: Upload ``ModelCheckpoint``'s files as they are saved, and remove those it deleted.
        prefix: The namespace everything goes under (``""`` for the root of the run).
        \**neptune_run_kwargs: Passed to ``neptune.init_run``: ``mode``, ``tags``, ``description``,
            ``with_id`` (continue a run), ``capture_stdout``...

    Example:
        >>> from tracklight.loggers.neptune import NeptuneLogger
        >>> logger = NeptuneLogger(name="experiment-1", mode="debug")
        >>> logger.log_metrics({"loss": 0.5}, step=10)
        >>> logger.run["training/loss"].fetch_last()
        0.5
        >>> logger.finalize("success")
        [neptune] [info   ] Shutting down background jobs, please wait a moment...
        [neptune] [info   ] Done!
    """

    LOGGER_JOIN_CHAR = "/"
    PARAMETERS_KEY = "hyperparams"
    ARTIFACTS_KEY = "artifacts"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        project: str | None = None,
        name: str | None = None,
        run: Any = None,
        log_model_checkpoints: bool | None = True,
        prefix: str = "training",
        **neptune_run_kwargs: Any,
    ) -> None:
        if not is_available("neptune"):
            raise MissingDependencyError(
                "NeptuneLogger needs the 'neptune' client (1.x), which is not installed. "
                "Install it with: pip install 'tracklight[neptune]'"
            )
        if run is not None:
            if not is_instance_by_name(run, *_RUN_TYPES):
                raise NeptuneArgumentError(
                    f"NeptuneLogger(run=...) takes a neptune.Run or a namespace of one (run['name']), "
                    f"got {type(run).__name__}."
                )
            given = [key for key, value in (("api_key", api_key), ("project", project), ("name", name)) if value]
            if given or neptune_run_kwargs:
                raise NeptuneArgumentError(
                    f"NeptuneLogger got run=... together with {', '.join(given + sorted(neptune_run_kwargs))}, "
                    "which only apply when the logger starts the run. Fix: pass them to neptune.init_run(...) "
                    "instead, or leave run out."
                )
        self._api_key = api_key
        self._project = project
        self._run_name = name
        self._log_model_checkpoints = bool(log_model_checkpoints)
        self._prefix = prefix
        self._neptune_run_kwargs = neptune_run_kwargs
        self._run_instance = run
        self._owns_run = False
        self._run_short_id: str | None = None
        self._stopped_id: str | None = None  # the server id of a run finalize stopped, to continue it
        self._reopened = False
        self._steps = SeriesSteps(type(self).__name__)
        self._uploaded: dict[str, float] = {}  # checkpoint name -> modification time of the uploaded file
        self._checked_structure = False
        self._file_labels: dict[str, int] = {}
        self._said: set[str] = set()
        if run is not None:
            self._identify(run)
            if global_rank() == 0:
                _root(run)[_INTEGRATION_KEY] = __version__

    # ---- identity ----------------------------------------------------------------------------------------

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The Neptune run (or the namespace passed as ``run``), as in Lightning: ``logger.experiment["x"] = 1``."""
        return self.run

    @property
    @rank_zero_experiment
    def run(self) -> Any:
        """The Neptune run, started on first use on rank zero; a no-op stand-in on other ranks."""
        if self._run_instance is None:
            self._run_instance = self._start()
        return self._run_instance

    def _start(self) -> Any:
        neptune = require("neptune", "neptune")
        kwargs = self._init_kwargs()
        if self._stopped_id is not None:
            kwargs.pop("custom_run_id", None)  # with_id and custom_run_id cannot go together
            kwargs["with_id"] = self._stopped_id
        elif self._reopened:
            self._say(
                "reopen",
                f"NeptuneLogger: finalize() stopped the {self.mode} run, and {self.mode} runs cannot be reopened, "
                "so what is logged now goes to a new run. To keep one run across fit and test, start it "
                "yourself and pass it: NeptuneLogger(run=neptune.init_run(...)); the logger leaves such runs open.",
            )
        run = neptune.init_run(**kwargs)
        self._owns_run = True
        self._identify(run)
        run[_INTEGRATION_KEY] = __version__
        return run

    def _init_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self._neptune_run_kwargs)
        if self._project is not None:
            kwargs["project"] = self._project
        if self._api_key is not None:
            kwargs["api_token"] = self._api_key
        if self._run_name is not None:
            kwargs["name"] = self._run_name
        return kwargs

    def _identify(self, run: Any) -> None:
        root = _root(run)
        mode = _mode_of(root) or self.mode
        if mode in _SERVER_MODES:
            self._run_short_id = str(getattr(root, "_sys_id", None) or root["sys/id"].fetch())
        else:  # offline and debug runs have no server id; their local id is unique
            self._run_short_id = str(getattr(root, "_id", None) or "OFFLINE")
        if self._run_name is None and mode != "offline" and root.exists("sys/name"):
            self._run_name = str(root["sys/name"].fetch()) or None

    @property
    def mode(self) -> str:
        """The connection mode: the run's, else ``mode=``, else ``NEPTUNE_MODE``, else ``"async"``."""
        run = self._run_instance
        mode = _mode_of(_root(run)) if run is not None else None
        return str(mode or self._neptune_run_kwargs.get("mode") or os.environ.get("NEPTUNE_MODE") or "async")

    @property
    def name(self) -> str | None:
        """The run's name (``name=``, or the name of the run passed in)."""
        return self._run_name

    @property
    def version(self) -> str | None:
        """The run's id (``PROJ-123``; offline and debug runs have a local id); rank zero starts the run to learn it."""
        if self._run_short_id is None and self._run_instance is None and global_rank() == 0:
            _ = self.run
        return self._run_short_id

    @property
    def save_dir(self) -> str:
        """Where the client keeps runs: ``NEPTUNE_DATA_DIRECTORY``, else ``.neptune`` in the working directory."""
        return os.path.abspath(os.environ.get("NEPTUNE_DATA_DIRECTORY") or ".neptune")

    # ---- metrics and hyperparameters ---------------------------------------------------------------------

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Append each value to the series ``<prefix>/<key>``, at a step that increases within the series."""
        # Every value is checked before any is appended: a bad one must not leave the call half-logged.
        numbers = {key: to_number(key, value) for key, value in flatten(metrics).items()}
        run = self.run
        with self._guard():
            for key, number in numbers.items():
                path = self._path(key)
                if isinstance(number, float) and not math.isfinite(number):
                    self._log_nonfinite(run, key, path, number, step)
                    continue
                at = self._steps.next(path, step, number, self._known_last)
                if at is not None:
                    self._append_metric(run, key, path, number, at)

    def _append_metric(self, run: Any, key: str, path: str, number: float, step: float) -> None:
        try:
            run[path].append(number, step=step)
        except Exception as err:
            if not is_instance_by_name(err, "neptune.exceptions.MetadataInconsistency"):
                raise
            # "loss" and "loss/val" cannot both exist: a field is not a namespace. Training goes on.
            self._say(
                f"conflict:{path}",
                f"NeptuneLogger could not log metric {key!r}: {str(err).strip()}. Rename one of the two keys "
                "(e.g. 'loss/train' beside 'loss/val'); values of this key are not logged until then.",
            )

    def _log_nonfinite(self, run: Any, key: str, path: str, number: float, step: int | None) -> None:
        # Neptune's float series drop NaN and infinity; keep them, as text, in a series beside it.
        side = f"{path}_nonfinite"
        at = self._steps.next(side, step, None, self._known_last)
        run[side].append(str(number), step=at)
        self._say(
            f"nonfinite:{path}",
            f"NeptuneLogger: metric {key!r} was {number} at step {step}; Neptune's number series cannot hold NaN "
            f"or infinity, so such values are logged as text in {side!r} instead (reported once per metric).",
        )

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any) -> None:
        """Store hyperparameters under ``<prefix>/hyperparams``, nested dicts as namespaces; values Neptune has
        no type for (lists, ``None``...) are stored as their text."""
        clean, notes = sanitize(params)
        warn_conversions(notes, type(self).__name__)
        converted = neptune_values.hyperparams(clean)
        if converted:
            with self._guard():
                self.run[self._path(self.PARAMETERS_KEY)] = converted

    @rank_zero_only
    def log_model_summary(self, model: Any, max_depth: int = -1) -> None:
        """Upload Lightning's ``ModelSummary`` of ``model`` as ``<prefix>/model/summary`` (a text file)."""
        summary = require("lightning.pytorch.utilities.model_summary", "lightning").ModelSummary
        file = require("neptune.types", "neptune").File
        with self._guard():
            self.run[self._path("model/summary")] = file.from_content(
                str(summary(model=model, max_depth=max_depth)), extension="txt"
            )

    # ---- media: through neptune's File types -------------------------------------------------------------

    def _write_images(self, key: str, images: list[media.Image], step: int | None) -> None:
        for index, image in enumerate(images):
            self._append_image(key, image.png(), step, image.caption, quiet=index > 0)

    def _append_image(
        self, key: str, png: bytes, step: int | None, caption: str | None = None, quiet: bool = False
    ) -> None:
        file = require("neptune.types", "neptune").File
        path = self._path(key)
        at = self._steps.next(path, step, None, self._known_last, quiet=quiet)
        with self._guard():
            self.run[path].append(file.from_content(png, extension="png"), step=at, name=caption)

    def _write_histogram(self, key: str, values: np.ndarray, step: int | None, bins: Any) -> None:
        # Neptune has no histogram type: the bins go in a CSV file, which the app shows as a table and a chart.
        counts, edges = media.histogram_counts(values, bins)
        rows = [[float(a), float(b), int(c)] for a, b, c in zip(edges[:-1], edges[1:], counts, strict=False)]
        self._upload_file(key, step, media.Table(["left", "right", "count"], rows).csv(), "csv")

    def _write_text(self, key: str, text: str, step: int | None) -> None:
        path = self._path(key)
        chunks = neptune_values.text_chunks(text)
        if len(chunks) > 1:
            self._say(
                f"text:{path}",
                f"NeptuneLogger: a text logged under {key!r} is longer than the {neptune_values.MAX_TEXT} characters a "
                "Neptune string series keeps per entry, so it was split over consecutive entries "
                "(reported once per key).",
            )
        with self._guard():
            for index, chunk in enumerate(chunks):
                at = self._steps.next(path, step, None, self._known_last, quiet=index > 0)
                self.run[path].append(chunk, step=at)

    def _write_audio(self, key: str, audio: media.Audio, step: int | None) -> None:
        self._upload_file(key, step, audio.wav(), "wav")

    def _write_figure(self, key: str, figure: Any, step: int | None) -> None:
        png = media.figure_png(figure) if media.is_figure(figure) else media.png_bytes(media.image_pixels(figure))
        self._append_image(key, png, step)

    def _write_table(self, key: str, table: media.Table, step: int | None) -> None:
        self._upload_file(key, step, table.csv(), "csv")

    def _upload_file(self, key: str, step: int | None, content: str | bytes, extension: str) -> None:
        """One file per call at ``<prefix>/<key>/step_<step>`` (``_1``, ``_2``... when a step repeats)."""
        file = require("neptune.types", "neptune").File
        base = f"{self._path(key)}/" + ("unstepped" if step is None else f"step_{step}")
        count = self._file_labels.get(base, 0)
        self._file_labels[base] = count + 1
        with self._guard():
            self.run[base if count == 0 else f"{base}_{count}"] = file.from_content(content, extension=extension)

    # ---- checkpoints -------------------------------------------------------------------------------------

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Upload the checkpoints saved since the last call and delete from the run those the callback deleted.

        The files go under ``<prefix>/model/checkpoints/<name>``; the best path and score under ``<prefix>/model``.
        """
        if not self._log_model_checkpoints:
            return
        file = require("neptune.types", "neptune").File
        run = self.run
        namespace = self._path("model/checkpoints")
        kept = neptune_values.checkpoint_names(checkpoint_callback)
        with self._guard():
            self._note_uploaded_before(run, namespace)
            for name, path in kept.items():
                mtime = os.stat(path).st_mtime
                if self._uploaded.get(name, -1.0) >= mtime:
                    continue
                extension = os.path.splitext(path)[1].lstrip(".") or "ckpt"
                # Read now: the client copies the stream into its own directory before Lightning can
                # overwrite (last.ckpt) or delete (a checkpoint leaving the top k) the file.
                with open(path, "rb") as stream:
                    run[f"{namespace}/{name}"] = file.from_stream(stream, extension=extension)
                self._uploaded[name] = mtime
            for name in sorted(set(self._uploaded) - set(kept)):
                del run[f"{namespace}/{name}"]
                del self._uploaded[name]
            best = getattr(checkpoint_callback, "best_model_path", "")
            if best:
                run[self._path("model/best_model_path")] = best
            score = getattr(checkpoint_callback, "best_model_score", None)
            if score is not None:
                score = float(score.item() if hasattr(score, "item") else score)
                if math.isfinite(score):
                    run[self._path("model/best_model_score")] = score

    def _note_uploaded_before(self, run: Any, namespace: str) -> None:
        """Checkpoints an earlier session put in this run count as uploaded, so stale ones get removed too."""
        if self._checked_structure:
            return
        self._checked_structure = True
        root, full = _root(run), self._full_path(run, namespace)
        if not root.exists(full):
            return
        structure: Any = root.get_structure()
        for part in full.split("/"):
            structure = structure.get(part, {}) if isinstance(structure, Mapping) else {}
        if isinstance(structure, Mapping):
            for name in neptune_values.leaf_paths(structure):
                self._uploaded.setdefault(name, -1.0)

    # ---- lifecycle ---------------------------------------------------------------------------------------

    @rank_zero_only
    def save(self) -> None:
        """Nothing to do: the client writes to disk and sends in the background."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Record ``status`` under ``<prefix>/status`` and stop the run if this logger started it."""
        run = self._run_instance
        if run is None:
            return
        with self._guard():
            if status:
                run[self._path("status")] = status
            if not self._owns_run:
                _root(run).wait(disk_only=True)
                return
            mode = self.mode
            self._stopped_id = self._run_short_id if mode in _SERVER_MODES else None
            self._run_instance = None
            self._owns_run = False
            self._reopened = True
            run.stop(seconds=STOP_TIMEOUT if mode == "async" else None)

    def __getstate__(self) -> dict[str, Any]:
        # A run holds threads and files; a copy in another process continues it by its id where Neptune can.
        state = dict(self.__dict__)
        if self._run_instance is not None and self._owns_run and self.mode in _SERVER_MODES:
            state["_stopped_id"] = self._run_short_id
        state["_run_instance"] = None
        state["_owns_run"] = False
        return state

    # ---- internals ---------------------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}" if self._prefix else key

    def _known_last(self, path: str) -> float | None:
        """The last step a series had before this logger wrote to it: only a run logged to before has one."""
        run = self._run_instance
        if run is None or (self._owns_run and "with_id" not in self._neptune_run_kwargs and not self._stopped_id):
            return None
        root, full = _root(run), self._full_path(run, path)
        try:
            if not root.exists(full):
                return None
            steps = root[full].fetch_values(include_timestamp=False)["step"]
            return float(steps.max()) if len(steps) else None
        except Exception:  # not a fetchable series (offline, images): Neptune will say if a step is refused
            return None

    @staticmethod
    def _full_path(run: Any, path: str) -> str:
        namespace = getattr(run, "_path", None) if is_instance_by_name(run, "neptune.handler.Handler") else None
        return f"{namespace}/{path}" if namespace else path

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """A run stopped from outside (the Neptune app, another process) must not stop training."""
        try:
            yield
        except Exception as err:
            if not is_instance_by_name(err, "neptune.exceptions.InactiveRunException"):
                raise
            self._say(
                "inactive",
                f"NeptuneLogger: the run {self._run_short_id} was stopped outside the logger (from the Neptune app "
                "or by run.stop()), so what is logged to it is dropped. Start a new logger to keep logging.",
            )

    def _say(self, topic: str, message: str) -> None:
        if topic not in self._said:
            self._said.add(topic)
            warn(message)


def _mode_of(root: Any) -> str | None:
    mode = getattr(getattr(root, "_mode", None), "value", None)
    return str(mode) if mode else None


def _root(run: Any) -> Any:
    get_root = getattr(run, "get_root_object", None)
    return get_root() if get_root is not None else run
