"""The Neptune sink of background delivery: metric series with steps Neptune accepts, atoms, files, checkpoints.

Runs on the delivery worker thread. ``NeptuneLogger`` starts the run and converts values on the calling
thread; here each value gets a step Neptune accepts (``SeriesSteps``, which may ask a resumed run for
its last step) and is appended, assigned or uploaded. Neptune's own refusals (a key that is also a
namespace, a run stopped from the app) are said once, in words that name the fix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from tracklight._errors import TracklightError, warn
from tracklight._imports import is_instance_by_name, require
from tracklight.loggers._sdk_delivery import SdkSink
from tracklight.loggers.neptune import values as neptune_values
from tracklight.loggers.neptune.steps import SeriesSteps

__all__ = ["NeptuneSink", "full_path", "root_of"]


class NeptuneSink(SdkSink):
    """Delivers items to :attr:`run`, which the logger sets whenever it starts or continues the run.

    An item's ``op`` says what to do (its ``kind``, what it is, names it in reports): ``metrics``
    (``(key, path, number)`` triples at one step), ``append`` (one value appended to a string or file
    series), ``assign`` (``run[path] = value``), ``file`` (bytes or text uploaded as a file), ``checkpoints``
    (uploads and removals for a ``ModelCheckpoint``) and ``call`` (``item["call"](run)``).
    """

    sdk = "neptune"
    limits = {"row": 100, "hyperparameter": 100}

    def __init__(self, owner: str = "NeptuneLogger") -> None:
        self.owner = owner
        self.run: Any = None
        #: The run was logged to before this logger wrote to it (passed in, or continued by id).
        self.resumed = False
        self.steps = SeriesSteps(owner)
        self._present: set[str] | None = None  # checkpoint names the run holds
        self._said: set[str] = set()

    def attach(self, run: Any, resumed: bool, same_run: bool) -> None:
        """Send what comes next to ``run``; a different run starts its series (and checkpoints) afresh."""
        if not same_run:
            self.steps = SeriesSteps(self.owner)
            self._present = None
        self.run, self.resumed = run, resumed

    def describe(self) -> str:
        root = root_of(self.run) if self.run is not None else None
        if root is None:
            return "Neptune"
        mode = getattr(getattr(root, "_mode", None), "value", None)
        return f"Neptune run {getattr(root, '_sys_id', None) or getattr(root, '_id', '')}" + (
            f" ({mode})" if mode else ""
        )

    def send_one(self, item: dict[str, Any]) -> None:
        try:
            self._send(item)
        except Exception as error:
            if not is_instance_by_name(error, "neptune.exceptions.InactiveRunException"):
                raise
            raise TracklightError(
                f"the run was stopped outside the logger (from the Neptune app, or by stop() on another copy), so "
                f"it takes nothing more ({error}). Start a new {self.owner} to keep logging."
            ) from error

    def _send(self, item: dict[str, Any]) -> None:
        op, run = item["op"], self.run
        if op == "metrics":
            for key, path, number in item["values"]:
                self._metric(key, path, number, item["step"])
        elif op == "append":
            path = item["path"]
            at = self.steps.next(path, item["step"], None, self._known_last, quiet=item.get("quiet", False))
            value = item["value"]
            if isinstance(value, bytes):
                value = require("neptune.types", "neptune").File.from_content(value, extension=item["extension"])
            extra = {"name": item["name"]} if item.get("name") is not None else {}
            run[path].append(value, step=at, **extra)
        elif op == "assign":
            run[item["path"]] = item["value"]
        elif op == "file":
            file = require("neptune.types", "neptune").File
            run[item["path"]] = file.from_content(item["content"], extension=item["extension"])
        elif op == "checkpoints":
            self._checkpoints(item)
        else:
            item["call"](run)

    # ---- metrics ------------------------------------------------------------------------------------------

    def _metric(self, key: str, path: str, number: float | int, step: int | None) -> None:
        if isinstance(number, float) and not math.isfinite(number):
            self._nonfinite(key, path, number, step)
            return
        at = self.steps.next(path, step, number, self._known_last)
        if at is None:
            return
        try:
            self.run[path].append(number, step=at)
        except Exception as err:
            if not is_instance_by_name(err, "neptune.exceptions.MetadataInconsistency"):
                raise
            # "loss" and "loss/val" cannot both exist: a field is not a namespace. Training goes on.
            self._say(
                f"conflict:{path}",
                f"{self.owner} could not log metric {key!r}: {str(err).strip()}. Rename one of the two keys "
                "(e.g. 'loss/train' beside 'loss/val'); values of this key are not logged until then.",
            )

    def _nonfinite(self, key: str, path: str, number: float, step: int | None) -> None:
        # Neptune's float series drop NaN and infinity; keep them, as text, in a series beside it.
        side = f"{path}_nonfinite"
        at = self.steps.next(side, step, None, self._known_last)
        self.run[side].append(str(number), step=at)
        self._say(
            f"nonfinite:{path}",
            f"{self.owner}: metric {key!r} was {number} at step {step}; Neptune's number series cannot hold NaN "
            f"or infinity, so such values are logged as text in {side!r} instead (reported once per metric).",
        )

    def _known_last(self, path: str) -> float | None:
        """The last step a series had before this logger wrote to it: only a run logged to before has one."""
        if not self.resumed:
            return None
        root, full = root_of(self.run), full_path(self.run, path)
        try:
            if not root.exists(full):
                return None
            steps = root[full].fetch_values(include_timestamp=False)["step"]
            return float(steps.max()) if len(steps) else None
        except Exception:  # not a fetchable series (offline, images): Neptune will say if a step is refused
            return None

    # ---- checkpoints --------------------------------------------------------------------------------------

    def _checkpoints(self, item: dict[str, Any]) -> None:
        """Upload the staged checkpoints, remove from the run those the callback no longer keeps, record the best."""
        file = require("neptune.types", "neptune").File
        run, namespace = self.run, item["namespace"]
        present = self._checkpoints_in_run(namespace)
        for name, staged in item["uploads"]:
            extension = os.path.splitext(staged)[1].lstrip(".") or "ckpt"
            # The client copies the stream into its own directory now; the staged copy is removed afterwards.
            with open(staged, "rb") as stream:
                run[f"{namespace}/{name}"] = file.from_stream(stream, extension=extension)
            present.add(name)
        for name in sorted(present - item["kept"]):
            del run[f"{namespace}/{name}"]
            present.discard(name)
        for path, value in item["atoms"].items():
            run[path] = value

    def _checkpoints_in_run(self, namespace: str) -> set[str]:
        """The checkpoints the run holds, read once: an earlier session's count too, so stale ones get removed."""
        if self._present is None:
            self._present = set()
            root, full = root_of(self.run), full_path(self.run, namespace)
            if root.exists(full):
                structure: Any = root.get_structure()
                for part in full.split("/"):
                    structure = structure.get(part, {}) if isinstance(structure, Mapping) else {}
                if isinstance(structure, Mapping):
                    self._present = neptune_values.leaf_paths(structure)
        return self._present

    def _say(self, topic: str, message: str) -> None:
        if topic not in self._said:
            self._said.add(topic)
            warn(message)


def root_of(run: Any) -> Any:
    """The run itself, for a run or a namespace of one (``run["finetune"]``)."""
    get_root = getattr(run, "get_root_object", None)
    return get_root() if get_root is not None else run


def full_path(run: Any, path: str) -> str:
    """``path`` from the root of the run, for a run or a namespace of one."""
    namespace = getattr(run, "_path", None) if is_instance_by_name(run, "neptune.handler.Handler") else None
    return f"{namespace}/{path}" if namespace else path
