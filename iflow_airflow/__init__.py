"""iflow-airflow: iflow workflow files (YAML) as Apache Airflow 3 DAGs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["WorkflowEngine", "WorkflowResult", "TaskResult"]

if TYPE_CHECKING:
    from iflow_airflow.client.engine import TaskResult, WorkflowEngine, WorkflowResult


def __getattr__(name: str) -> Any:  # lazy: the DAG loader imports this package and needs none of it
    if name in __all__:
        from iflow_airflow.client import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
