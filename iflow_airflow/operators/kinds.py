"""Operator kinds: the built-in actions and custom kinds from the ``iflow_airflow.operators`` entry points.

A package adds a kind with, in its pyproject.toml::

    [project.entry-points."iflow_airflow.operators"]
    my_kind = "my_pkg.operators:MyOperator"

Custom kinds are loaded lazily (only when a workflow names them) and only when
their module passes ``[iflow] allowed_modules``, checked before importing.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING

from iflow_airflow.allowlist import require_module_allowed

if TYPE_CHECKING:
    from iflow_airflow.settings import IflowSettings

from iflow_airflow.constants import OPERATOR_KINDS as BUILTIN_KINDS  # name as written -> canonical kind
from iflow_airflow.constants import OPERATORS_GROUP as ENTRY_POINT_GROUP

# canonical kind -> "module:Class" of its operator (imported on demand: Airflow is heavy)
BUILTIN_OPERATORS: dict[str, str] = {
    "command": "iflow_airflow.operators.command:IflowCommandOperator",
    "callable": "iflow_airflow.operators.callable:IflowCallableOperator",
    "prompt": "iflow_airflow.operators.agent:IflowAgentOperator",
    "wait": "iflow_airflow.operators.wait:IflowWaitOperator",
    "checkpoint": "iflow_airflow.operators.checkpoint:IflowCheckpointOperator",
}


def builtin_kind_for(name: str) -> str | None:
    """The canonical built-in kind for ``name`` (``bash`` -> ``command``), or None."""
    return BUILTIN_KINDS.get(name)


def builtin_operator_class(kind: str) -> type:
    """The operator class of a built-in kind or alias."""
    canonical = builtin_kind_for(kind)
    if canonical is None:
        raise LookupError(f"{kind!r} is not a built-in operator kind; built-in kinds: {', '.join(BUILTIN_KINDS)}")
    module_name, _, class_name = BUILTIN_OPERATORS[canonical].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def custom_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Registered custom kinds by name (first registration wins; built-in names cannot be taken)."""
    from iflow_airflow import entry_points

    return entry_points.registered(ENTRY_POINT_GROUP, BUILTIN_KINDS)


def available_kinds() -> list[str]:
    """Every name a workflow may use with ``operator:``: built-ins, their aliases, then custom kinds."""
    return list(BUILTIN_KINDS) + sorted(custom_entry_points())


def load_custom_operator(name: str, settings: IflowSettings) -> type:
    """Import the operator class registered as ``name`` in the ``iflow_airflow.operators`` group.

    Raises LookupError (listing the known kinds) when nothing is registered under
    ``name``; ModuleNotAllowedError (a ValueError and PermissionError) without
    importing when the class's module is outside ``[iflow] allowed_modules``;
    TypeError when the entry point is not an Airflow operator class.
    """
    if builtin_kind_for(name) is not None:
        return builtin_operator_class(name)
    ep = custom_entry_points().get(name)
    if ep is None:
        raise LookupError(
            f"unknown operator kind {name!r}; known kinds: {', '.join(available_kinds())} "
            f"(custom kinds are registered under the entry point group {ENTRY_POINT_GROUP!r})"
        )
    module_name = ep.module
    require_module_allowed(module_name, settings, f"operator kind {name!r} ({ep.value})")
    try:
        obj = ep.load()
    except Exception as exc:
        raise LookupError(
            f"operator kind {name!r}: cannot load {ep.value!r}: {type(exc).__name__}: {exc}"
        ) from exc

    from airflow.sdk import BaseOperator

    if not (isinstance(obj, type) and issubclass(obj, BaseOperator)):
        raise TypeError(
            f"operator kind {name!r}: {ep.value!r} is not a subclass of airflow.sdk.BaseOperator"
        )
    return obj
