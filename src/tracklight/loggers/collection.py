"""LoggerCollection: one logger object that fans every call out to several backends."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Iterable, Mapping
from typing import Any

from tracklight import media
from tracklight._errors import InvalidMetricError, TracklightError, warn
from tracklight._metrics import check_step
from tracklight.loggers import _resume
from tracklight.loggers.logger import Logger, rank_zero_experiment

__all__ = ["LoggerCollection"]


class LoggerCollection(Logger):
    """Send every logging call to several loggers; one that fails does not stop the others.

    Pass it as ``Trainer(logger=LoggerCollection([...]))`` and ``self.logger`` inside a LightningModule
    is the collection, so ``self.logger.log_image(...)`` reaches every backend. Directory-related
    properties (``save_dir``, ``name``, ``version``, ``log_dir``) are those of the first logger, so
    checkpoints land where they would with ``Trainer(logger=[first, ...])``.

    A logger that raises is reported once (one warning naming it, the call and the error) and skipped
    for that call; every failure, the first included, is counted in :attr:`failures`. ``strict=True``
    raises instead. A metric that is not a number is the caller's error, not a backend's: it raises
    :class:`~tracklight.InvalidMetricError` as a single logger would.

    Deliberately not iterable (use :attr:`loggers`): Lightning's Trainer unpacks iterables into a list
    of loggers, and then ``self.logger`` would no longer be the collection.

    Example:
        >>> import tempfile
        >>> from tracklight.loggers import CSVLogger, LoggerCollection, TensorBoardLogger
        >>> root = tempfile.mkdtemp()
        >>> loggers = LoggerCollection([CSVLogger(root), TensorBoardLogger(root)])
        >>> loggers.log_metrics({"loss": 0.5}, step=0)
        >>> loggers[CSVLogger] is loggers[0]
        True
        >>> loggers.finalize("success")
    """

    def __init__(self, loggers: Iterable[Any], strict: bool = False) -> None:
        self._loggers = list(loggers)
        if not self._loggers:
            raise TracklightError(
                "LoggerCollection needs at least one logger, e.g. LoggerCollection([CSVLogger('logs')])."
            )
        self.strict = strict
        #: ``{(logger class name, method): number of failures}``.
        self.failures: dict[tuple[str, str], int] = {}
        self._reported: set[int] = set()  # positions of the loggers already warned about

    # ---- look-up ---------------------------------------------------------------------------------------

    @property
    def loggers(self) -> list[Any]:
        return list(self._loggers)

    def __len__(self) -> int:
        return len(self._loggers)

    def __getitem__(self, key: int | str | type) -> Any:
        """A logger by position, by class (``collection[TensorBoardLogger]``), or by class or logger name
        (``collection["tensorboard"]``, ``collection["TensorBoardLogger"]``)."""
        if isinstance(key, int):
            return self._loggers[key]
        found = self.get(key)
        if found is None:
            have = ", ".join(type(logger).__name__ for logger in self._loggers)
            raise KeyError(f"No logger matches {key!r} in this collection (it holds: {have}).")
        return found

    def get(self, key: str | type, default: Any = None) -> Any:
        for logger in self._loggers:
            if isinstance(key, type):
                if isinstance(logger, key):
                    return logger
                continue
            class_name = type(logger).__name__.lower()
            wanted = str(key).lower()
            if wanted in (class_name, class_name.removesuffix("logger")) or wanted == str(logger.name).lower():
                return logger
        return default

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None if isinstance(key, (str, type)) else key in self._loggers

    # ---- identity: the first logger's, as Lightning uses loggers[0] for paths --------------------------

    @property
    def name(self) -> str | None:
        return self._loggers[0].name

    @property
    def version(self) -> int | str | None:
        return self._loggers[0].version

    @property
    def save_dir(self) -> str | None:
        return getattr(self._loggers[0], "save_dir", None)

    @property
    def root_dir(self) -> str | None:
        return getattr(self._loggers[0], "root_dir", None)

    @property
    def log_dir(self) -> str | None:
        return getattr(self._loggers[0], "log_dir", None)

    @property
    def group_separator(self) -> str:
        return getattr(self._loggers[0], "group_separator", "/")

    @property
    @rank_zero_experiment
    def experiment(self) -> list[Any]:
        """The experiment of every logger, in order (a no-op stand-in on ranks other than zero)."""
        return [logger.experiment for logger in self._loggers]

    # ---- fan-out ---------------------------------------------------------------------------------------

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for position, logger in enumerate(self._loggers):
            call = getattr(logger, method, None)
            try:
                if call is None:
                    raise AttributeError(f"{type(logger).__name__} has no method {method}()")
                call(*args, **kwargs)
            except InvalidMetricError:
                raise  # the caller's bad value, not a backend failure: the same error a single logger gives
            except Exception as err:
                if self.strict:
                    raise
                self._fail(position, logger, method, err)

    def _fail(self, position: int, logger: Any, method: str, err: BaseException) -> None:
        key = (type(logger).__name__, method)
        self.failures[key] = self.failures.get(key, 0) + 1
        # One warning per logger: a backend that is down fails every call, and one message says it all.
        if position in self._reported:
            return
        self._reported.add(position)
        warn(
            f"{key[0]} (logger {position} of this LoggerCollection) failed in {method}() with "
            f"{type(err).__name__}: {err}. The other loggers got the call; further failures of this logger are "
            "counted in LoggerCollection.failures, not repeated. Pass LoggerCollection(..., strict=True) to raise "
            "instead."
        )

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        check_step(metrics, step)  # before any logger got the call, as every one of them would refuse it
        self._each("log_metrics", metrics, step)

    def log_hyperparams(self, params: dict[str, Any] | Namespace | None, *args: Any, **kwargs: Any) -> None:
        self._each("log_hyperparams", params, *args, **kwargs)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        self._each("log_graph", model, input_array)

    def save(self) -> None:
        self._each("save")

    def finalize(self, status: str) -> None:
        self._each("finalize", status)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._each("after_save_checkpoint", checkpoint_callback)

    def state_dict(self) -> dict[str, Any]:
        """``{"logger": "LoggerCollection", "loggers": [...]}``: one entry per held logger, in order."""
        return {"logger": type(self).__name__, "loggers": _resume.states_of(self._loggers)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Give each held logger its entry (matched by class, in order); one that cannot use it warns."""
        states = state.get("loggers") if isinstance(state, Mapping) else None
        if not isinstance(states, list):
            warn(
                f"LoggerCollection.load_state_dict got {type(state).__name__} without a 'loggers' list; every "
                "logger of the collection starts a new run. Pass the collection's own state_dict()."
            )
            return
        _resume.load_into(self._loggers, states)

    def log_image(self, key: str, images: Any, step: int | None = None, **kwargs: Any) -> None:
        self._each("log_image", key, images, step, **kwargs)

    def log_histogram(self, key: str, values: Any, step: int | None = None, **kwargs: Any) -> None:
        self._each("log_histogram", key, values, step, **kwargs)

    def log_text(self, key: str, text: Any, step: int | None = None, **kwargs: Any) -> None:
        self._each("log_text", key, text, step, **kwargs)

    def log_audio(self, key: str, audio: Any, step: int | None = None, **kwargs: Any) -> None:
        self._each("log_audio", key, audio, step, **kwargs)

    def log_figure(self, key: str, figure: Any, step: int | None = None, *, close: bool = True) -> None:
        try:
            self._each("log_figure", key, figure, step, close=False)
        finally:
            if close:
                media.close_figure(figure)

    def log_table(
        self,
        key: str,
        columns: list[str] | None = None,
        data: list[list[Any]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        self._each("log_table", key, columns=columns, data=data, dataframe=dataframe, step=step)
