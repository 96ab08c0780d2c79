"""Validated model -> WorkflowPlan: every rule of SPEC §3 resolved in plain Python, by named passes.

The checks that need the whole file (ids, dependencies, cycles, priority
ranges, declared resources, actions, allowed code) are the passes of
``passes.CHECKS``; each problem is located and all are raised together. Then
``passes.RESOLVE`` decides weights and conflicts, and :func:`to_plan` freezes
the draft into the plan IR.
"""

from __future__ import annotations

from typing import Sequence

from iflow_airflow.errors import WorkflowFileError
from iflow_airflow.plan import passes
from iflow_airflow.plan.draft import Draft, Locator, Problems, TaskDraft
from iflow_airflow.plan.ir import (
    ParamSpec,
    PlannedGroup,
    PlannedTask,
    WorkflowPlan,
    WorkflowSettings,
)
from iflow_airflow.schema.models import WorkflowFile
from iflow_airflow.settings import IflowSettings

__all__ = ["Locator", "make_plan", "run_passes", "to_plan"]


def run_passes(draft: Draft, steps: Sequence[passes.Pass]) -> Draft:
    """Run ``steps`` in order over ``draft`` (tests run a prefix of the passes this way)."""
    for step in steps:
        step(draft)
    return draft


def make_plan(wf: WorkflowFile, *, file: str, source_text: str, locate: Locator,
              settings: IflowSettings | None = None, task_lines: dict[int, int] | None = None) -> WorkflowPlan:
    """Resolve a validated workflow into a plan; raises ``WorkflowFileError`` with every problem."""
    draft = Draft(wf, file, source_text, settings or IflowSettings.from_config(), Problems(file, locate),
                  dict(task_lines or {}))
    run_passes(draft, passes.CHECKS)
    if draft.problems.items:
        raise WorkflowFileError(file, draft.problems.items)
    return to_plan(run_passes(draft, passes.RESOLVE))


def _planned_task(d: Draft, t: TaskDraft) -> PlannedTask:
    orch, coord, f = d.wf.orchestration, d.wf.coordination, t.fields
    timeout = f.get("timeout", orch.task_timeout)
    assert t.action is not None
    return PlannedTask(
        task_id=t.task_id, description=f.get("description"), upstream=tuple(t.upstream), level=t.level[0],
        level_name=t.level[1], priority_weight=t.weight, critical_path=t.critical_path, resource=t.resource,
        pool=t.pool, pool_slots=t.slots, queue=t.queue, cost=t.cost,
        retries=f["retries"] if f.get("retries") is not None else orch.retry_attempts,
        retry_delay=float(f["retry_delay"] if f.get("retry_delay") is not None else orch.retry_delay),
        exponential_backoff=(f.get("retry_backoff") or orch.retry_backoff) == "exponential",
        max_retry_delay=orch.max_retry_delay, timeout=float(timeout) if timeout is not None else None,
        trigger_rule=f.get("trigger_rule") or "all_success", env=dict(f.get("env") or {}),
        emits=tuple(f.get("emits") or ()), action=t.action, persist_result=coord.state_persistence,
        deferrable=coord.sync_mode == "asynchronous", wait_timeout=float(coord.communication_timeout),
        line=t.line, group=t.group, for_each=t.items,
        max_parallel=f.get("max_parallel") if t.items is not None else None, path=t.path,
    )


def to_plan(d: Draft) -> WorkflowPlan:
    """The finished draft as the frozen plan IR (tasks in topological order)."""
    orch, sched, coord, flow = d.wf.orchestration, d.wf.scheduling, d.wf.coordination, d.wf.workflow
    assert d.schedule is not None and d.start_date is not None
    return WorkflowPlan(
        dag_id=flow.name, description=flow.description, source_path=d.file, source_text=d.source_text,
        schedule=d.schedule, start_date=d.start_date, timezone=flow.timezone, catchup=flow.catchup,
        tags=tuple(flow.tags), owner=flow.owner,
        params={k: ParamSpec(v.default, v.type, v.description, tuple(v.enum) if v.enum is not None else None)
                for k, v in flow.params.items()},
        enabled=orch.enabled, max_active_tasks=orch.max_concurrent_tasks,
        settings=WorkflowSettings(orch.mode, sched.strategy, coord.sync_mode, coord.conflict_resolution,
                                  sched.priority_levels, sched.load_threshold, sched.auto_scaling,
                                  tuple(sched.queues), coord.state_persistence, float(coord.communication_timeout)),
        alerts=d.alerts,
        resources=d.resources, tasks=tuple(_planned_task(d, t) for t in d.ordered()),
        conflicts=tuple(d.conflicts), notes=tuple(d.notes), monitors=tuple(d.monitors),
        groups=tuple(PlannedGroup(g.group_id, g.model.description, g.parent.group_id if g.parent else None)
                     for g in d.groups.values()),
    )
