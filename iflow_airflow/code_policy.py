"""What code a workflow file may reach: only modules the deployment allows.

A YAML author names code (``callable: pkg.mod:func``, custom ``operator:``
kinds); the deployment decides which module prefixes may be imported
(``[iflow] allowed_modules``). A module outside the list is never imported, not
even to check it exists.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from iflow_airflow.settings import IflowSettings

ENTRY_POINT_GROUP = "iflow_airflow.operators"
BUILTIN_KINDS = {
    "command": "command", "bash": "command",
    "callable": "callable", "python": "callable",
    "prompt": "prompt", "agent": "prompt",
    "wait": "wait",
    "checkpoint": "checkpoint",
}


def _not_allowed(module: str, what: str, settings: IflowSettings) -> str:
    allowed = ", ".join(settings.allowed_modules) or "nothing"
    return (f"{what} module {module!r} is not allowed by the deployment (allowed: {allowed}); "
            "add its prefix to [iflow] allowed_modules (AIRFLOW__IFLOW__ALLOWED_MODULES)")


def resolve_target(target: str, settings: IflowSettings):
    """Import and return the callable named ``module:attr.path``; raises ``PermissionError``/``ImportError``."""
    module, _, attr = target.partition(":")
    if not settings.module_allowed(module):
        raise PermissionError(_not_allowed(module, "callable", settings))
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


def callable_problem(target: str, settings: IflowSettings) -> str | None:
    """None when ``target`` may be called; otherwise what is wrong and how to fix it."""
    try:
        resolve_target(target, settings)
    except PermissionError as exc:
        return str(exc)
    except ImportError as exc:
        return f"cannot import {target.partition(':')[0]!r}: {exc}"
    except AttributeError:
        return f"{target.partition(':')[0]!r} has no attribute {target.partition(':')[2]!r}"
    except TypeError as exc:
        return str(exc)
    except Exception as exc:  # an allowed module that fails on import must not crash the loader
        return f"importing {target!r} failed: {type(exc).__name__}: {exc}"
    return None


def custom_kinds() -> dict[str, str]:
    """Registered operator kinds: name -> ``module:Class`` (from installed packages' entry points)."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def operator_problem(name: str, settings: IflowSettings) -> str | None:
    if name in BUILTIN_KINDS:
        return None
    kinds = custom_kinds()
    if name not in kinds:
        known = sorted(set(BUILTIN_KINDS) | set(kinds))
        return f"unknown operator kind {name!r}; known kinds: {', '.join(known)}"
    module = kinds[name].partition(":")[0]
    if not settings.module_allowed(module):
        return _not_allowed(module, f"operator kind {name!r}:", settings)
    return None
