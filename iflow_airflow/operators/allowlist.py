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
