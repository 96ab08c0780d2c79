"""Groups, fan-out and sub-workflows of a plan in words: for ``explain`` and the DAG docs."""

from __future__ import annotations

import json
from typing import Any

from iflow_airflow.plan.ir import PlannedTask, RunRef, RunWorkflowAction, WorkflowPlan


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
