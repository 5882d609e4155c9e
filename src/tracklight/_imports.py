"""Optional dependencies: imported the first time a logger needs them, with an error that names the fix.

This is the one place that decides whether an optional package is there. A module that a test suite put in
``sys.modules`` in place of an SDK (a ``ModuleType`` or a ``MagicMock``, which have no ``__spec__``) counts
as installed, as it does for ``import``: user suites stub SDKs to test training scripts without the service.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from tracklight._errors import MissingDependencyError

#: No extra installs torch (an extra cannot choose its build): it goes in first, as the README's Install says.
_TORCH_HINT = (
    "torch is not installed; install it first, e.g. the CPU build: "
    "pip install torch --index-url https://download.pytorch.org/whl/cpu "
    "(add ==VERSION to choose the version; see the README's Install)"
)


def is_available(module: str) -> bool:
    """Whether ``module`` can be imported: installed, or already in ``sys.modules`` (a stub included).

    Unlike ``importlib.util.find_spec``, never raises: a stub without ``__spec__`` is available, and a
    ``None`` entry in ``sys.modules`` (how tests hide a package) is not.

    Example:
        >>> is_available("json"), is_available("surely_not_a_module_name")
        (True, False)
    """
    if module in sys.modules:
        return sys.modules[module] is not None
    if _from_stub(module) is not None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, hidden or has no __path__
        return False


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise an error that tells the user which tracklight extra installs it.

    A submodule of a stubbed package (``neptune.types`` when ``neptune`` is a ``MagicMock``) is the stub's
    attribute of that name, as ``from neptune.types import File`` would not find it otherwise.
    """
    stub = _from_stub(module)
    if stub is not None:  # before the import system, which may hold the real submodule from before the stub
        return stub
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = (err.name or "").partition(".")[0]
        fix = f"pip install 'tracklight[{extra}]'"
        if missing == "torch":  # an extra cannot pin torch's build: it is installed first, as the README says
            fix = f"{_TORCH_HINT}, then {fix}"
        raise MissingDependencyError(
            f"{module!r} is needed here but could not be imported ({err}). Fix: {fix}"
        ) from err


def is_stubbed(package: str) -> bool:
    """Whether ``sys.modules`` holds a test suite's stand-in for ``package``: a ``unittest.mock`` object or a
    module made by hand (no ``__spec__``), which does no I/O and reads no file.

    Example:
        >>> is_stubbed("json")
        False
    """
    module = sys.modules.get(package)
    return module is not None and (is_mock(module) or getattr(module, "__spec__", None) is None)


def _from_stub(module: str) -> Any:
    """``module`` as an attribute path of a stub put in ``sys.modules`` for its top-level package (a module
    without ``__spec__``: a ``MagicMock`` or a bare ``ModuleType``), else None."""
    top, *rest = module.split(".")
    value: Any = sys.modules.get(top)
    if value is None or getattr(value, "__spec__", None) is not None:
        return None  # not there, or a real package: its submodules are found by the import system
    for name in rest:
        value = getattr(value, name, None)
        if value is None:
            return None
    return value


def type_name(obj: object) -> str:
    """``module.Class`` of an object's type, to recognise foreign types without importing their package."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def is_instance_by_name(obj: object, *qualified_names: str) -> bool:
    """Whether ``obj`` is an instance of a class named ``module.Class`` (or of a subclass of one)."""
    return any(f"{cls.__module__}.{cls.__qualname__}" in qualified_names for cls in type(obj).__mro__)


def is_mock(obj: object) -> bool:
    """Whether ``obj`` is a ``unittest.mock`` object: a test suite's stand-in for an SDK or for what it returns.

    A mock does no I/O and reads no file, so loggers call it as Lightning's do: at once, on the calling thread.

    Example:
        >>> from unittest.mock import MagicMock
        >>> is_mock(MagicMock().init()), is_mock(object())
        (True, False)
    """
    return is_instance_by_name(obj, "unittest.mock.NonCallableMock")


def module_prefix(obj: object) -> str:
    """The top-level package a value's type comes from (``torch``, ``numpy``, ``PIL``...)."""
    return type(obj).__module__.partition(".")[0]
