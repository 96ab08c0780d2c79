"""What code a workflow file may reach: only modules the deployment allows, checked before any import.

A workflow file is data; naming ``os:system`` in it must not run anything. Only
modules under ``[iflow] allowed_modules`` may be imported on its behalf
(``callable: pkg.mod:func``, custom ``operator:`` kinds, extensions), and the
check happens BEFORE any import, at load time (the planner asks
:func:`callable_problem` / :func:`operator_problem`) and again at run time (the
callable operator calls :func:`resolve_callable`). A module outside the list is
never imported, not even to check it exists. Pure Python, no Airflow.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from iflow_airflow import entry_points
from iflow_airflow.constants import OPERATOR_KINDS, OPERATORS_GROUP

if TYPE_CHECKING:
    from iflow_airflow.settings import IflowSettings

class ModuleNotAllowedError(PermissionError, ValueError):
    """A workflow names code from a module outside ``[iflow] allowed_modules``."""


def not_allowed_message(module: str, settings: IflowSettings, what: str) -> str:
    """What is wrong and the one setting that fixes it: which file (or variable) to change, and to what.

    The fix names exactly ``module`` (never a parent package such as ``os``): widening a
    grant is the deployment's own decision.
    """
    from iflow_airflow import settings as iflow_settings

    current = ", ".join(settings.allowed_modules)
    _, source = iflow_settings.lookup("allowed_modules", load=False)
    now = f"[iflow] allowed_modules = {current}" if current else "[iflow] allowed_modules is empty"
    wanted = ",".join((*settings.allowed_modules, module))
    return (f"{what}: module {module!r} is not in the allowed modules ({now}; from {source}); to allow it, "
            f"{iflow_settings.how_to_set('allowed_modules', wanted, load=False)}")


def require_module_allowed(module: str, settings: IflowSettings, what: str) -> None:
    """Raise ModuleNotAllowedError unless ``settings.module_allowed(module)``."""
    if not settings.module_allowed(module):
        raise ModuleNotAllowedError(not_allowed_message(module, settings, what))


# --- callable targets ("pkg.mod:func") -------------------------------------------

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_TARGET = re.compile(rf"^(?P<module>{_DOTTED}):(?P<attr>{_DOTTED})$")


class CallableTargetError(ValueError):
    """A ``callable:`` target that is malformed, missing or not callable."""


def split_target(target: str) -> tuple[str, str]:
    """``"pkg.mod:Class.method"`` -> ``("pkg.mod", "Class.method")``; CallableTargetError if malformed."""
    m = _TARGET.match(target.strip()) if isinstance(target, str) else None
    if not m:
        raise CallableTargetError(
            f"callable target {target!r} is not of the form 'package.module:function' "
            f"(or 'package.module:Class.method')"
        )
    return m.group("module"), m.group("attr")


def _resolve(target: str, settings: IflowSettings) -> Callable[..., Any]:
    module_name, attr_path = split_target(target)
    if not settings.module_allowed(module_name):
        raise ModuleNotAllowedError(not_allowed_message(module_name, settings, f"callable {target!r}"))
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failing while it imports
        raise CallableTargetError(
            f"callable {target!r}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    seen: list[str] = []
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            where = f"{module_name}:{'.'.join(seen)}" if seen else f"module {module_name!r}"
            raise CallableTargetError(f"callable {target!r}: {where} has no attribute {part!r}")
        obj = getattr(obj, part)
        seen.append(part)
        if inspect.ismodule(obj):  # `allowed.mod:os.system` must not reach a module the allowed one imported
            raise ModuleNotAllowedError(not_allowed_message(obj.__name__, settings, f"callable {target!r}"))
    if not callable(obj):
        raise CallableTargetError(f"callable {target!r} is a {type(obj).__name__}, not callable")
    defined_in = getattr(obj, "__module__", None) or ""
    if not settings.module_allowed(defined_in):  # e.g. a name re-exported from another package
        raise ModuleNotAllowedError(not_allowed_message(defined_in, settings, f"callable {target!r}"))
    return obj


def resolve_callable(target: str, settings: IflowSettings) -> Callable[..., Any]:
    """Import and return the callable named by ``target``.

    Raises ModuleNotAllowedError (a ValueError and PermissionError) without
    importing when the module is outside ``[iflow] allowed_modules``, and
    CallableTargetError (a ValueError) when it is malformed, missing or not callable.
    """
    return _resolve(target, settings)


def check_callable_target(target: str, settings: IflowSettings) -> str | None:
    """An error message for ``target``, or None when it names an allowed, existing callable.

    A module that is not allowed is never imported.
    """
    try:
        _resolve(target, settings)
    except (ModuleNotAllowedError, CallableTargetError) as exc:
        return str(exc)
    return None


# --- problems for the planner (messages, never exceptions) ---------------------------


def callable_problem(target: str, settings: IflowSettings) -> str | None:
    """None when ``target`` may be called; otherwise what is wrong and how to fix it."""
    try:
        return check_callable_target(target, settings)
    except Exception as exc:  # an allowed module that fails oddly must not crash the loader
        return f"checking {target!r} failed: {type(exc).__name__}: {exc}"


def custom_kinds() -> dict[str, str]:
    """Registered operator kinds: name -> ``module:Class`` (from installed packages' entry points)."""
    return {name: ep.value for name, ep in entry_points.registered(OPERATORS_GROUP).items()}


def operator_problem(name: str, settings: IflowSettings) -> str | None:
    if name in OPERATOR_KINDS:
        return None
    kinds = custom_kinds()
    if name not in kinds:
        known = sorted(set(OPERATOR_KINDS) | set(kinds))
        return f"unknown operator kind {name!r}; known kinds: {', '.join(known)}"
    module = kinds[name].partition(":")[0]
    if not settings.module_allowed(module):
        return not_allowed_message(module, settings, f"operator kind {name!r}")
    return None
