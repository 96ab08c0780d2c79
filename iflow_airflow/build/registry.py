"""Which workflow plan belongs to a DAG id, in whatever process asks.

* In a worker (and in ``dag.test()``) the DAG file was parsed in this very
  process, so :func:`iflow_airflow.build.dag.build_dag` has called :func:`register`
  for every plan it built.
* In the scheduler nothing is parsed in-process; the resource keeper's folder
  scan holds the plans, and :func:`plan_for` falls back to it.

The listeners read a workflow's ``alerts`` settings from here.
"""

from __future__ import annotations

import sys
import threading

from iflow_airflow.plan.ir import WorkflowPlan

_plans: dict[str, WorkflowPlan] = {}
_lock = threading.Lock()


def register(plan: WorkflowPlan) -> None:
    """Remember ``plan`` under its ``dag_id`` (a newer build replaces an older one)."""
    with _lock:
        _plans[plan.dag_id] = plan


def plan_for(dag_id: str) -> WorkflowPlan | None:
    """The plan of ``dag_id``: built in this process, else the scheduler's keeper's; else None.

    The keeper is only asked where it was loaded (the scheduler): a task of another
    DAG must not pay for importing it.
    """
    plan = _plans.get(dag_id)
    if plan is not None:
        return plan
    keeper = sys.modules.get("iflow_airflow.runtime.keeper")
    if keeper is None:
        return None
    try:
        return keeper.plan_for(dag_id)
    except Exception:
        return None


def registered() -> dict[str, WorkflowPlan]:
    """A copy of the plans built in this process."""
    with _lock:
        return dict(_plans)


def clear() -> None:
    """Forget every plan (tests)."""
    with _lock:
        _plans.clear()
