"""``run_workflow`` across the folder (SPEC §6): unknown names, unknown params and cycles.

These need every plan of the deployment at once, so ``compiler.check_across_files``
calls :func:`check` after each file was planned on its own.

Rules and their reasons:

* A name that is no iflow workflow of the folder is an error of the file that
  names it, with the closest known name. The file keeps its DAG (like a
  resource-size conflict): a child that is deleted or broken must not take
  its parents' schedules down; the task would fail when it runs.
* A parameter the child does not declare is an error of the same kind.
* A workflow that runs itself, directly or through others, is a cycle error on
  every file of the cycle, naming the chain, and those files get no DAG (each
  run would trigger the next, without end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from iflow_airflow.errors import PathPart, did_you_mean
from iflow_airflow.plan.ir import PlannedTask, RunWorkflowAction, WorkflowPlan


@dataclass(frozen=True)
class LinkProblem:
    dag_id: str  # the workflow whose file has the problem
    path: tuple[PathPart, ...]
    message: str
    expected: str
    code: str
    drops_dag: bool = False


def _runs(plan: WorkflowPlan) -> Iterable[tuple[PlannedTask, RunWorkflowAction]]:
    for t in plan.tasks:
        if isinstance(t.action, RunWorkflowAction):
            yield t, t.action


def _chain(edges: Mapping[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A shortest run_workflow chain ``start -> ... -> goal`` (breadth first), or None."""
    came: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        nxt: list[str] = []
        for node in todo:
            for child in sorted(edges.get(node, ())):
                if child not in came:
                    came[child] = node
                    nxt.append(child)
                if child == goal:
                    path, at = [goal], node
                    while at is not None:
                        path.append(at)
                        at = came[at]
                    return list(reversed(path))
        todo = nxt
    return None


def _names(plans: Mapping[str, Any], plan: WorkflowPlan) -> list[LinkProblem]:
    out = []
    for t, action in _runs(plan):
        child = plans.get(action.workflow)
        if child is None:
            out.append(LinkProblem(plan.dag_id, t.path + ("run_workflow",), f"no iflow workflow is named "
                                   f"{action.workflow!r} in this deployment",
                                   did_you_mean(action.workflow, plans, "the workflow.name of another iflow file"),
                                   "unknown_workflow"))
            continue
        for key in action.params:
            if child.params and key not in child.params:
                out.append(LinkProblem(plan.dag_id, t.path + ("params", key), f"workflow {action.workflow!r} has no "
                                       f"run parameter {key!r}", did_you_mean(key, child.params, "one of "
                                       + ", ".join(child.params)), "unknown_child_param"))
    return out


@dataclass(frozen=True)
class Linked:
    """A workflow of another parse unit, as far as links need it: its run parameters and the workflows it runs."""

    params: Mapping[str, Any] | tuple[str, ...]
    runs: tuple[str, ...] = ()


def check(plans: Mapping[str, WorkflowPlan], others: Mapping[str, Linked] | None = None) -> list[LinkProblem]:
    """Every cross-file run_workflow problem of ``plans`` (by dag_id); ``others`` may be named but get no problems."""
    known: dict[str, Any] = {**(others or {}), **plans}
    edges = {name: set(o.runs) & set(known) for name, o in (others or {}).items()}
    edges.update({p.dag_id: {a.workflow for _, a in _runs(p) if a.workflow in known} for p in plans.values()})
    problems: list[LinkProblem] = []
    for plan in plans.values():
        problems.extend(_names(known, plan))
        for t, action in _runs(plan):
            chain = _chain(edges, action.workflow, plan.dag_id) if action.workflow in known else None
            if chain is not None and action.workflow != plan.dag_id:
                problems.append(LinkProblem(
                    plan.dag_id, t.path + ("run_workflow",), "run_workflow cycle: "
                    + " -> ".join([plan.dag_id, *chain]), "workflows that do not run each other in a circle",
                    "workflow_cycle", drops_dag=True))
    return problems
