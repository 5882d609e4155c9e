"""Optional dependencies: imported the first time a logger needs them, with an error that names the fix."""

from __future__ import annotations

import importlib
from types import ModuleType

from tracklight._errors import MissingDependencyError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an error that tells the user which tracklight extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"{module!r} is needed here but could not be imported ({err}). "
            f"Install it with: pip install 'tracklight[{extra}]'"
        ) from err


def type_name(obj: object) -> str:
    """``module.Class`` of an object's type, to recognise foreign types without importing their package."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def is_instance_by_name(obj: object, *qualified_names: str) -> bool:
    """Whether ``obj`` is an instance of a class named ``module.Class`` (or of a subclass of one)."""
    return any(f"{cls.__module__}.{cls.__qualname__}" in qualified_names for cls in type(obj).__mro__)


def module_prefix(obj: object) -> str:
    """The top-level package a value's type comes from (``torch``, ``numpy``, ``PIL``...)."""
    return type(obj).__module__.partition(".")[0]
