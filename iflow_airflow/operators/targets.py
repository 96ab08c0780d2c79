"""Callable targets (``"pkg.mod:func"``): parse, allow-list check, import, without Airflow.

Used at load time by the loader (``check_callable_target``) and at run time by
the callable operator (``resolve_callable``). A module outside
``[iflow] allowed_modules`` is never imported.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from iflow_airflow.operators.allowlist import ModuleNotAllowedError, not_allowed_message

if TYPE_CHECKING:
    from iflow_airflow.settings import IflowSettings

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
