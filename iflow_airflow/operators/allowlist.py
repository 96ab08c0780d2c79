"""The module allow-list gate for code that workflow files may name (callables, operator classes).

A workflow file is data; naming ``os:system`` in it must not run anything. Only
modules under ``[iflow] allowed_modules`` may be imported on its behalf, and
the check happens BEFORE any import, at load time and again at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iflow_airflow.settings import IflowSettings


class ModuleNotAllowedError(PermissionError, ValueError):
    """A workflow names code from a module outside ``[iflow] allowed_modules``."""


def not_allowed_message(module: str, settings: IflowSettings, what: str) -> str:
    allowed = ", ".join(settings.allowed_modules) or "(none)"
    return (
        f"{what}: module {module!r} is not in the allowed modules ({allowed}); "
        f"add it (or a parent package) to [iflow] allowed_modules in airflow.cfg "
        f"or to the environment variable AIRFLOW__IFLOW__ALLOWED_MODULES (comma separated)"
    )


def require_module_allowed(module: str, settings: IflowSettings, what: str) -> None:
    """Raise ModuleNotAllowedError unless ``settings.module_allowed(module)``."""
    if not settings.module_allowed(module):
        raise ModuleNotAllowedError(not_allowed_message(module, settings, what))
