"""Operators that run iflow task actions, one concept per module.

Names are imported lazily so that ``registry``/``targets``/``run_env`` users (the
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
    "resolve_callable": "targets",
    "check_callable_target": "targets",
    "split_target": "targets",
    "CallableTargetError": "targets",
    "ModuleNotAllowedError": "allowlist",
    "build_env": "run_env",
    "env_name": "run_env",
    "builtin_kind_for": "registry",
    "builtin_operator_class": "registry",
    "available_kinds": "registry",
    "load_custom_operator": "registry",
    "ENTRY_POINT_GROUP": "registry",
}

_SUBMODULES = frozenset(
    {"agent", "allowlist", "callable", "checkpoint", "command", "process", "registry", "run_env", "targets", "wait"}
)

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from iflow_airflow.operators.agent import IflowAgentOperator
    from iflow_airflow.operators.allowlist import ModuleNotAllowedError
    from iflow_airflow.operators.callable import IflowCallableOperator
    from iflow_airflow.operators.checkpoint import IflowCheckpointOperator
    from iflow_airflow.operators.command import IflowCommandOperator
    from iflow_airflow.operators.registry import (
        ENTRY_POINT_GROUP,
        available_kinds,
        builtin_kind_for,
        builtin_operator_class,
        load_custom_operator,
    )
    from iflow_airflow.operators.run_env import build_env, env_name
    from iflow_airflow.operators.targets import (
        CallableTargetError,
        check_callable_target,
        resolve_callable,
        split_target,
    )
    from iflow_airflow.operators.wait import IflowWaitOperator


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:  # ``operators.registry`` works without importing it first
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
