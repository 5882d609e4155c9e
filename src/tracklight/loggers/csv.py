"""CSVLogger: ``metrics.csv`` and ``hparams.yaml`` in Lightning's layout, never deleting what is there."""

from __future__ import annotations

import os
import threading
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from tracklight._errors import warn
from tracklight._metrics import check_step, to_numbers
from tracklight._rank import rank_zero_only
from tracklight.formats.csv_resume import set_aside_rows_after
from tracklight.formats.csv_table import CSVTable
from tracklight.loggers._versioned import VersionedDirLogger
from tracklight.loggers.logger import rank_zero_experiment
from tracklight.params import HparamsYaml, sanitize, warn_conversions

__all__ = ["CSVExperiment", "CSVLogger"]

# One experiment per logger even when several threads log first at the same moment (a module-level lock:
# creation is rare, and a lock in the instance would not pickle).
_creating = threading.Lock()


class _ExperimentWriterBase:
    """Stands in for Lightning's ``ExperimentWriter`` as the base of :class:`CSVExperiment`.

    ``ExperimentWriter`` is not an ABC, so it cannot register a virtual subclass: when Lightning is imported,
    ``tracklight.lightning`` makes it a base of ``CSVExperiment`` in place of this class instead, so
    ``isinstance(logger.experiment, ExperimentWriter)`` holds as it does for Lightning's ``CSVLogger``.
    """


class CSVExperiment(_ExperimentWriterBase):
    """What ``CSVLogger.experiment`` returns: the run's ``metrics.csv`` and ``hparams.yaml`` writers.

    It offers what Lightning's ``ExperimentWriter`` offers: ``metrics`` (the rows not written yet),
    ``metrics_keys``, ``hparams``, ``log_metrics``, ``log_hparams``, ``save``, ``log_dir`` and
    ``metrics_file_path``.
    """

    NAME_METRICS_FILE = "metrics.csv"
    NAME_HPARAMS_FILE = "hparams.yaml"

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        os.makedirs(log_dir, exist_ok=True)
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        self.hparams_file_path = os.path.join(log_dir, self.NAME_HPARAMS_FILE)
        self.table = CSVTable.shared(self.metrics_file_path)
        self.hparams_file = HparamsYaml(self.hparams_file_path)
        self._rows = 0

    @property
    def hparams(self) -> dict[str, Any]:
        return self.hparams_file.values

    @property
    def metrics_keys(self) -> list[str]:
        return self.table.columns

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The rows logged and not yet in ``metrics.csv`` (each with its ``step``), oldest first."""
        return [dict(row) for row in self.table.pending]

    def log_metrics(self, metrics_dict: Mapping[str, Any], step: int | None = None) -> None:
        """Add one row: the metrics plus a ``step`` column (the row count when ``step`` is None)."""
        self._add_row(to_numbers(metrics_dict), step)

    def _add_row(self, row: dict[str, Any], step: int | None) -> None:
        """Queue ``row`` (already numbers, owned by us from now on) with its ``step``."""
        check_step(row, step)
        row["step"] = self._rows if step is None else step
        self._rows += 1
        self.table.append(row)

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        self.hparams_file.update(params)

    def save(self, force: bool = False) -> None:
        """Write the rows logged so far: at once if their keys fit the header, else within about a second.

        ``force`` also rewrites the header at once and waits for a background write in progress.
        """
        if force:
            self.table.flush(force=True)
        else:
            self.table.write_ready()
        if self.table.restores or self.hparams_file.held():  # the folder was removed, or the disk refused it
            self.hparams_file.restore()

    def close(self) -> None:
        self.table.close()


class CSVLogger(VersionedDirLogger):
    r"""Log metrics to ``save_dir/name/version_N/metrics.csv`` and hyperparameters to ``hparams.yaml``.

    Same arguments, layout and table as Lightning's ``CSVLogger``: one row per ``log_metrics`` call,
    one column per key (sorted), with ``step``. Unlike it, an existing ``metrics.csv`` is never deleted
    (a resumed version appends), a new key does not rewrite the file on every flush, and rows reach
    the disk within a second, at ``finalize``, at exit and on SIGTERM.

    Args:
        save_dir: Directory that holds every experiment.
        name: Experiment name; ``None`` or ``""`` puts versions directly under ``save_dir``.
        version: ``int`` for ``version_N``, ``str`` for a named directory, ``None`` for the next free one.
        prefix: Put at the start of every metric key, joined with ``-``.
        flush_logs_every_n_steps: Write buffered rows at least this often (and at least once a second).
        continue_run: Continue the run of a state given to :meth:`load_state_dict` (which Lightning's Trainer
            does when ``fit`` resumes from a checkpoint): the same ``version_N`` folder, with the rows the earlier
            process wrote past that state's step moved to ``metrics.superseded.csv``. ``False``: always a new
            version, as Lightning's ``CSVLogger`` does. See docs/resume.md.

    Example:
        >>> import tempfile
        >>> from tracklight.loggers import CSVLogger
        >>> logger = CSVLogger(tempfile.mkdtemp(), name="my_exp")
        >>> logger.log_metrics({"loss": 0.25}, step=0)
        >>> logger.finalize("success")
        >>> open(logger.experiment.metrics_file_path).read().splitlines()
        ['loss,step', '0.25,0']
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
        *,
        continue_run: bool = True,
    ) -> None:
        super().__init__(save_dir, name, version, continue_run=continue_run)
        self._prefix = prefix
        self._flush_logs_every_n_steps = max(1, int(flush_logs_every_n_steps))
        self._experiment: CSVExperiment | None = None
        self._calls = 0

    @property
    @rank_zero_experiment
    def experiment(self) -> CSVExperiment:
        """The run's :class:`CSVExperiment` (a no-op stand-in on ranks other than zero)."""
        if self._experiment is None:
            with _creating:
                if self._experiment is None:
                    directory = self._local_dir()
                    resuming, last_step = self._take_resume()
                    if resuming:
                        _set_aside_superseded(os.path.join(directory, CSVExperiment.NAME_METRICS_FILE), last_step)
                    experiment = CSVExperiment(directory)
                    if self._remote_run is not None:  # a full staging disk: the uploader takes them from memory
                        self._remote_run.mirror.add_source(CSVExperiment.NAME_METRICS_FILE, experiment.table)
                        self._remote_run.mirror.add_source(CSVExperiment.NAME_HPARAMS_FILE, experiment.hparams_file)
                    self._experiment = experiment
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        experiment = self.experiment
        experiment._add_row(to_numbers(metrics, self._prefix, self.LOGGER_JOIN_CHAR), step)
        if step is not None and (self._last_step is None or step > self._last_step):
            self._last_step = int(step)
        self._calls += 1
        if self._calls % self._flush_logs_every_n_steps == 0:
            self.save()  # through the logger, as in Lightning: a subclass that overrides save() sees it

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any) -> None:
        clean, notes = sanitize(params)
        warn_conversions(notes, type(self).__name__)
        self.experiment.log_hparams(clean)

    @rank_zero_only
    def save(self) -> None:
        if self._experiment is not None:
            self._experiment.save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            # No thread left behind; the next row starts background writes again.
            self._experiment.table.rest(report=False)
            self._experiment.save(force=True)
        self._finish_remote()
        if self._experiment is not None:  # rows no disk took: held (and uploaded from memory?) or dropped
            self._experiment.table.report("finalize")

    def _writers_open(self) -> bool:
        return self._experiment is not None

    def _state_for_pickle(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_experiment"] = None
        return state


def _set_aside_superseded(path: str, last_step: int | None) -> None:
    """Move the rows past ``last_step`` aside; a failure is said once and the run goes on (appending after them)."""
    try:
        set_aside_rows_after(path, last_step)
    except OSError as err:
        warn(
            f"Could not move the rows past step {last_step} of {path} aside ({err}); the resumed run appends after "
            "them, so those steps may show twice. Free space or fix permissions in the run folder to avoid it."
        )
