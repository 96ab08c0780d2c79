"""What code a workflow file may reach: only modules the deployment allows.

A YAML author names code (``callable: pkg.mod:func``, custom ``operator:``
kinds); the deployment decides which module prefixes may be imported
(``[iflow] allowed_modules``). A module outside the list is never imported, not
even to check it exists.
"""

from __future__ import annotations

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


def callable_problem(target: str, settings: IflowSettings) -> str | None:
    """None when ``target`` may be called; otherwise what is wrong and how to fix it."""
    from iflow_airflow.operators.targets import check_callable_target

    try:
        return check_callable_target(target, settings)
    except Exception as exc:  # an allowed module that fails oddly must not crash the loader
        return f"checking {target!r} failed: {type(exc).__name__}: {exc}"


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
        from iflow_airflow.operators.allowlist import not_allowed_message

        return not_allowed_message(module, settings, f"operator kind {name!r}")
    return None
