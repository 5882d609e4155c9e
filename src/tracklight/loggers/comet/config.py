"""CometLogger's arguments: Lightning's names and the older ones its docs use, resolved to one meaning.

Also what offline mode must arrange before and while ``comet_ml`` runs so that it makes no network call:
error reports off before the import, no host-IP lookup, no cloud-metadata probe.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from tracklight._errors import TracklightError, warn
from tracklight._imports import require

#: Lightning's CometLogger values for ``mode``.
MODES = ("get_or_create", "get", "create")

_KEY = re.compile(r"^[A-Za-z0-9]{32,50}$")
_FALSE = ("0", "false", "no", "off")


@dataclass
class CometSettings:
    """What the user asked for, with the older argument names mapped onto the current ones."""

    api_key: str | None
    workspace: str | None
    project: str | None
    experiment_key: str | None
    mode: str | None
    online: bool | None  # None: not said; decided by Comet's config, then by whether an API key exists
    offline_directory: str | None
    config_kwargs: dict[str, Any] = field(default_factory=dict)  # for comet_ml.ExperimentConfig


def resolve(
    *,
    api_key: str | None,
    workspace: str | None,
    project: str | None,
    experiment_key: str | None,
    mode: str | None,
    online: bool | None,
    kwargs: dict[str, Any],
) -> CometSettings:
    """Map Lightning's and the older argument names (``project_name``, ``experiment_name``, ``save_dir``,
    ``offline``, ``rest_api_key``) onto one set of settings, and check the values."""
    kwargs = dict(kwargs)
    project = _one_of("project", project, "project_name", kwargs.pop("project_name", None))
    name = _one_of("name", kwargs.pop("name", None), "experiment_name", kwargs.pop("experiment_name", None))
    if name is not None:
        kwargs["name"] = name
    offline = kwargs.pop("offline", None)
    if offline is not None:
        # The old flag means the opposite of `online` (Lightning copies it over without negating it).
        online = _one_of("online", online, "offline", not bool(offline))
    directory = _one_of(
        "offline_directory", kwargs.pop("offline_directory", None), "save_dir", kwargs.pop("save_dir", None)
    )
    if directory is not None:
        directory = os.fspath(directory)
        kwargs["offline_directory"] = directory
    if "rest_api_key" in kwargs:
        rest_key = kwargs.pop("rest_api_key")
        if api_key is None and rest_key is not None:
            api_key = rest_key  # current Comet SDKs use one key for everything
    if mode is not None and mode not in MODES:
        raise TracklightError(f"CometLogger(mode={mode!r}) is not one of {', '.join(map(repr, MODES))}.")
    if experiment_key is not None and not _KEY.match(experiment_key):
        raise TracklightError(
            f"CometLogger(experiment_key={experiment_key!r}): Comet experiment keys are 32 to 50 letters and digits. "
            "Fix: pass the key of an existing experiment (its URL ends with it), or leave it out for a new one."
        )
    if mode == "get" and experiment_key is None and not os.environ.get("COMET_EXPERIMENT_KEY"):
        raise TracklightError(
            "CometLogger(mode='get') continues an existing experiment and needs its key. "
            "Fix: pass experiment_key=... (or set COMET_EXPERIMENT_KEY), or use mode='get_or_create'."
        )
    return CometSettings(api_key, workspace, project, experiment_key, mode, online, directory, kwargs)


def _one_of(name: str, value: Any, old_name: str, old_value: Any) -> Any:
    if old_value is None:
        return value
    if value is not None and value != old_value:
        warn(
            f"CometLogger got both {name}={value!r} and the older {old_name}={old_value!r}; using {name}. "
            f"Pass only {name}."
        )
        return value
    return old_value


def offline_before_import(settings: CometSettings) -> bool:
    """Whether offline mode is certain from the arguments and environment alone (Comet not imported yet)."""
    if settings.online is not None:
        return not settings.online
    start_online = os.environ.get("COMET_START_ONLINE")
    if start_online is not None:
        return start_online.strip().lower() in _FALSE
    # Lightning's older CometLogger: a save_dir and no API key meant an offline experiment.
    return settings.offline_directory is not None and not (settings.api_key or os.environ.get("COMET_API_KEY"))


def import_comet(offline: bool) -> ModuleType:
    """Import ``comet_ml``; first turn its auto-logging off (as Lightning does) and, offline, its error reports."""
    if "comet_ml" not in sys.modules:
        # Auto-logging patches torch and friends at import time; Lightning turns it off the same way.
        os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
        if offline:
            # Comet sends its own error reports (Sentry) from a thread started at import: not offline.
            os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    return require("comet_ml", "comet")


def decide_online(comet_ml: ModuleType, settings: CometSettings) -> bool | None:
    """Online or offline, once Comet's config (files and environment) can be read; ``None`` leaves the choice to
    Comet, as Lightning does, for a ``comet_ml`` without that config (a test suite's stub)."""
    if offline_before_import(settings):
        return False
    if settings.online is not None:
        return settings.online
    if not _has_config(comet_ml):
        return None
    config = comet_ml.get_config()
    configured = config.get_bool(None, "comet.start.online", default=None, not_set_value=None)
    if configured is not None:
        return bool(configured)
    if comet_ml.config.get_api_key(settings.api_key, config) is None:
        directory = settings.offline_directory or config.get_string(None, "comet.offline_directory")
        warn(
            "CometLogger found no Comet API key, so it logs offline: the experiment is written as a .zip archive "
            f"under {directory!r}. To log online, pass api_key=... or set COMET_API_KEY; to send this "
            "archive later, run `comet upload <archive.zip>`."
        )
        return False
    return True


def offline_directory(comet_ml: ModuleType, settings: CometSettings, online: bool | None) -> str | None:
    """Where offline archives go: the directory given, else Comet's (``COMET_OFFLINE_DIRECTORY``, ``.cometml-runs``).

    Online, only a directory given explicitly counts (Comet uses it when it falls back to offline).
    """
    directory = settings.offline_directory
    if directory is None and online is False and _has_config(comet_ml):
        directory = comet_ml.get_config().get_string(None, "comet.offline_directory")
    return None if directory is None else os.path.abspath(os.path.expanduser(directory))


def experiment_config_kwargs(settings: CometSettings, online: bool | None) -> dict[str, Any]:
    kwargs = dict(settings.config_kwargs)
    if online is False:
        # Comet finds the host's IP by opening a socket towards its server, which resolves its name.
        kwargs.setdefault("log_env_host", False)
    return kwargs


def experiment_config(comet_ml: ModuleType, kwargs: dict[str, Any]) -> Any:
    """``comet_ml.ExperimentConfig(**kwargs)``, with an error that names a keyword it does not take."""
    try:
        return comet_ml.ExperimentConfig(**kwargs)
    except TypeError as err:
        import inspect

        known = sorted(set(inspect.signature(comet_ml.ExperimentConfig).parameters) - {"self"})
        unknown = sorted(set(kwargs) - set(known))
        raise TracklightError(
            f"CometLogger got keyword argument(s) {unknown or list(kwargs)} that comet_ml.ExperimentConfig does "
            f"not take ({err}). Extra keywords go to ExperimentConfig, which takes: {', '.join(known)}."
        ) from err


def _has_config(comet_ml: ModuleType) -> bool:
    """Whether ``comet_ml`` can read its config (``get_config``, ``config.get_api_key``): a stub may not."""
    return callable(getattr(comet_ml, "get_config", None)) and callable(
        getattr(getattr(comet_ml, "config", None), "get_api_key", None)
    )


@contextlib.contextmanager
def no_network_probes(comet_ml: ModuleType) -> Iterator[None]:
    """While an offline experiment starts, skip Comet's cloud-metadata probe (HTTP requests to 169.254.169.254).

    Comet has no setting for it short of turning off all environment details (packages, CPU and
    memory use), which an offline experiment can still record.
    """
    module = sys.modules.get("comet_ml.experiment")
    probe = getattr(module, "get_env_cloud_details", None)
    if probe is None:
        yield
        return
    module.get_env_cloud_details = _no_cloud  # type: ignore[union-attr]
    try:
        yield
    finally:
        module.get_env_cloud_details = probe  # type: ignore[union-attr]


def _no_cloud(*args: Any, **kwargs: Any) -> None:
    return None
