"""Groups, fan-out and sub-workflows of a plan in words: for ``explain`` and the DAG docs."""

from __future__ import annotations

import json
from typing import Any

from iflow_airflow.errors import plural
from iflow_airflow.plan.ir import PlannedTask, RunRef, RunWorkflowAction, WorkflowPlan


def task_facts(t: PlannedTask) -> dict[str, str]:
    """What the plan decided for one task, each fact as text: the one vocabulary of ``explain``'s
    table and the DAG docs' table (which lay the same facts out for a terminal and a narrow modal)."""
    return {
        "task": t.task_id,
        "level": f"{t.level_name}({t.level})",
        "weight": str(t.priority_weight),
        "critical_path": str(t.critical_path),
        "pool": f"{t.pool} x{t.pool_slots}" if t.pool else "-",
        "queue": t.queue or "-",
        "retries": plural(t.retries, "retry", "retries"),
        "delay": f"{t.retry_delay:g}s{' exp' if t.exponential_backoff else ''}",
        "timeout": f"{t.timeout:g}s" if t.timeout else "-",
        "action": t.action.kind,
        "upstream": ",".join(t.upstream) or "-",
    }


def ref_text(value: Any) -> str:
    """``{result: build.package}`` / ``{param: shards}`` for a reference, JSON for a literal."""
    if isinstance(value, RunRef):
        return f"{{{value.source}: {value.name}}}"
    return json.dumps(value, ensure_ascii=False, default=str)


def _items(t: PlannedTask) -> str:
    assert t.for_each is not None
    src = t.for_each
    what = f"{len(src.items)} listed items" if src.items is not None else ref_text(src.ref)
    cap = f", at most {t.max_parallel} at once" if t.max_parallel else ""
    return f"{t.task_id}: one mapped task instance per item of {what}{cap}"


def decomposition(plan: WorkflowPlan) -> list[str]:
    """One line per group, mapped task and sub-workflow (nothing when the plan has none)."""
    lines = []
    for g in plan.groups:
        members = [t.task_id for t in plan.tasks if g.group_id in t.group]
        lines.append(f"group {g.group_id}: {', '.join(members)}")
    for t in plan.tasks:
        if t.for_each is not None:
            lines.append(_items(t))
        if isinstance(t.action, RunWorkflowAction):
            params = ", ".join(f"{k}={ref_text(v)}" for k, v in t.action.params.items()) or "no params"
            lines.append(f"{t.task_id}: runs workflow {t.action.workflow} ({params}) and waits for it")
    return lines
