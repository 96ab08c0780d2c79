"""Operators that run iflow task actions, one concept per module.

Names are imported lazily so that ``kinds``/``run_env`` users (the
loader, the CLI) do not pay for importing Airflow until an operator is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "IflowCommandOperator": "command",
    "IflowCallableOperator": "callable",
    "IflowAgentOperator": "agent",
    "IflowCheckpointOperator": "checkpoint",
    "IflowWaitOperator": "wait",
    "IflowItemsOperator": "items",
    "IflowRunWorkflowOperator": "run_workflow",
    "resolve_callable": "iflow_airflow.allowlist",
    "check_callable_target": "iflow_airflow.allowlist",
    "split_target": "iflow_airflow.allowlist",
    "CallableTargetError": "iflow_airflow.allowlist",
    "ModuleNotAllowedError": "iflow_airflow.allowlist",
    "build_env": "run_env",
    "env_name": "run_env",
    "builtin_kind_for": "kinds",
    "builtin_operator_class": "kinds",
    "available_kinds": "kinds",
    "load_custom_operator": "kinds",
    "ENTRY_POINT_GROUP": "kinds",
}

_SUBMODULES = frozenset(
    {"agent", "callable", "checkpoint", "command", "items", "kinds", "process", "run_env", "run_workflow", "wait"}
)

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from iflow_airflow.allowlist import (
        CallableTargetError,
        ModuleNotAllowedError,
        check_callable_target,
        resolve_callable,
        split_target,
    )
    from iflow_airflow.operators.agent import IflowAgentOperator
    from iflow_airflow.operators.callable import IflowCallableOperator
    from iflow_airflow.operators.checkpoint import IflowCheckpointOperator
    from iflow_airflow.operators.command import IflowCommandOperator
    from iflow_airflow.operators.items import IflowItemsOperator
    from iflow_airflow.operators.kinds import (
        ENTRY_POINT_GROUP,
        available_kinds,
        builtin_kind_for,
        builtin_operator_class,
        load_custom_operator,
    )
    from iflow_airflow.operators.run_env import build_env, env_name
    from iflow_airflow.operators.run_workflow import IflowRunWorkflowOperator
    from iflow_airflow.operators.wait import IflowWaitOperator


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:  # ``operators.kinds`` works without importing it first
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module if "." in module else f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
