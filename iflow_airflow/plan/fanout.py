"""``for_each``/``max_parallel`` and ``run_workflow``/``params`` (SPEC §6), as two planning passes.

Rules:

* ``for_each`` is a literal list, ``{param: name}`` (a declared run parameter)
  or ``{result: task}`` (a task upstream of this one, whose result is a JSON
  list at run time; results need ``coordination.state_persistence: true``).
  It maps a ``command``, ``callable``, ``prompt`` or checkpoint task; a
  ``wait``, ``run_workflow`` or custom operator cannot be mapped.
  ``max_parallel`` needs ``for_each``.
* ``run_workflow`` names another iflow workflow (checked across the folder:
  ``plan/links.py``); a workflow that runs itself is a cycle. ``params`` values
  are literals (JSON values) or ``{param: name}`` / ``{result: task}`` as above.

Run-time values are only ever data: they reach actions through the
environment, keywords and the child run's configuration, never code.
"""

from __future__ import annotations

import json
from typing import Any

from iflow_airflow.errors import PathPart, did_you_mean
from iflow_airflow.plan import groups
from iflow_airflow.plan.draft import Draft, TaskDraft
from iflow_airflow.plan.ir import ItemSource, RunRef, RunWorkflowAction
from iflow_airflow.schema.models import Reference

MAPPABLE = ("command", "callable", "prompt", "checkpoint")
from iflow_airflow.constants import ITEMS_SUFFIX  # noqa: E402  (build: the task that reads the list)


def _ancestors(d: Draft, task_id: str) -> set[str]:
    seen: set[str] = set()
    todo = list(d.tasks[task_id].upstream)
    while todo:
        u = todo.pop()
        if u not in seen:
            seen.add(u)
            todo.extend(d.tasks[u].upstream)
    return seen


def _result_ref(d: Draft, t: TaskDraft, name: str, path: tuple[PathPart, ...]) -> RunRef | None:
    found = groups.lookup(d, t.group, name)
    if found is None:
        d.problems.add(path, f"unknown task id {name!r}",
                       did_you_mean(name, groups.choices(d, t.group), "the id of a task upstream of this one"),
                       code="unknown_result")
        return None
    kind, full = found
    if kind == "group" or full == t.task_id:
        d.problems.add(path, f"{name!r} is {'a group' if kind == 'group' else 'this task'}: a result comes from "
                       "one task upstream", "the id of one task upstream of this one", code="bad_result")
        return None
    if not d.has_cycle and full not in _ancestors(d, t.task_id):
        d.problems.add(path, f"the result of {name!r} is read, but {name!r} is not upstream of {t.task_id!r}",
                       f"add {name!r} to this task's dependencies", code="result_not_upstream")
        return None
    if not d.wf.coordination.state_persistence:
        d.problems.add(path, "results are not kept (coordination.state_persistence: false)",
                       "coordination.state_persistence: true", code="result_not_kept")
        return None
    return RunRef("result", full)


def reference(d: Draft, t: TaskDraft, ref: Reference, path: tuple[PathPart, ...]) -> RunRef | None:
    """A ``{param: name}`` / ``{result: task}`` of task ``t``, checked and resolved (full task id)."""
    if ref.param is not None:
        if ref.param not in d.wf.workflow.params:
            d.problems.add(path + ("param",), f"unknown run parameter {ref.param!r}",
                           did_you_mean(ref.param, d.wf.workflow.params, "a name declared under workflow.params"),
                           code="unknown_param")
            return None
        return RunRef("param", ref.param)
    assert ref.result is not None
    return _result_ref(d, t, ref.result, path + ("result",))


def _items(d: Draft, t: TaskDraft) -> None:
    path = t.path + ("for_each",)
    kind = t.action.kind if t.action is not None else None
    if kind is not None and kind not in MAPPABLE:
        d.problems.add(path, f"a {kind} task cannot have `for_each`", "for_each on a command, callable, prompt "
                       "or checkpoint task", code="for_each_action")
    if t.task_id + ITEMS_SUFFIX in d.tasks:
        d.problems.add(path, f"task id {t.task_id + ITEMS_SUFFIX!r} is taken, but this task needs it for its items",
                       f"rename that task (ids ending in {ITEMS_SUFFIX!r} are kept for for_each)",
                       code="for_each_id")
    fe = t.model.for_each
    if isinstance(fe, Reference):
        ref = reference(d, t, fe, path)
        t.items = ItemSource(ref=ref) if ref is not None else None
    else:
        t.items = ItemSource(items=tuple(fe))


def for_each(d: Draft) -> None:
    """``for_each`` -> the task's item source; ``max_parallel`` alone is an error. Needs: tasks, order."""
    for t in d.tasks.values():
        if t.model.for_each is not None:
            _items(d, t)
        elif t.model.max_parallel is not None:
            d.problems.add(t.path + ("max_parallel",), "`max_parallel` caps the items of `for_each`, which this "
                           "task does not have", "add `for_each:`, or remove `max_parallel`", code="max_parallel")


def _param_value(d: Draft, t: TaskDraft, value: Any, path: tuple[PathPart, ...]) -> Any:
    if isinstance(value, dict) and len(value) == 1 and set(value) <= {"param", "result"}:
        return reference(d, t, Reference.model_validate(value), path)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        d.problems.add(path, f"{type(value).__name__} value {value!r} cannot be a run parameter",
                       "a JSON value (quote dates and times as strings)", code="params_value")
    return value


def _sub_workflow(d: Draft, t: TaskDraft) -> None:
    assert isinstance(t.action, RunWorkflowAction)
    name = t.action.workflow
    if name == d.wf.workflow.name:
        d.problems.add(t.path + ("run_workflow",), f"workflow {name!r} runs itself: run_workflow cycle "
                       f"{name} -> {name}", "another workflow's name", code="workflow_cycle")
    params = {}
    for key, value in (t.fields.get("params") or {}).items():
        params[key] = _param_value(d, t, value, t.path + ("params", key))
    poke = float(min(5.0, d.wf.coordination.communication_timeout))
    t.action = RunWorkflowAction(name, params, poke)


def sub_workflows(d: Draft) -> None:
    """``run_workflow`` + ``params`` -> the action with its references resolved. Needs: tasks, order."""
    for t in d.tasks.values():
        if isinstance(t.action, RunWorkflowAction):
            _sub_workflow(d, t)

