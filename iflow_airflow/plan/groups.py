"""Task ids, groups and dependencies (SPEC §3 and §6 "Groups"), as two planning passes.

Rules:

* A task with ``tasks:`` is a group (an Airflow TaskGroup); groups nest. Ids
  are unique inside their group; a task's full id is its groups' ids and its
  own, joined by ``.`` (``build.compile``), which is also its Airflow task id.
* A dependency is looked up from the inside out: in the task's own group
  (``compile``), then each enclosing group, then at the top (``build.compile``
  from anywhere). A dependency on a group means on every task in it; a group's
  own ``dependencies`` hold for every task in it.
* Everything downstream of these passes (order, weights, conflicts, queues,
  the plan table) sees only tasks: groups are seen through.
"""

from __future__ import annotations

from typing import Sequence

from iflow_airflow.errors import PathPart, did_you_mean
from iflow_airflow.plan.draft import Draft, GroupDraft, TaskDraft, given
from iflow_airflow.schema.models import Task

#: Keys a group may not set: it has no action and no items of its own (its tasks do).
GROUP_FORBIDDEN = ("command", "callable", "prompt", "wait", "operator", "run_workflow", "for_each", "args",
                   "kwargs")
#: Keys of a group that are about the group itself, not defaults for its tasks.
GROUP_OWN = frozenset({"id", "dependencies", "tasks", "description", "for_each"})


def _line(d: Draft, path: tuple[PathPart, ...], top_index: int | None) -> int | None:
    if top_index is not None:
        return d.task_lines.get(top_index)
    return d.problems.locate(path)[1]


def _collect(d: Draft, models: Sequence[Task], base: tuple[PathPart, ...], parent: GroupDraft | None) -> None:
    """Add the tasks and groups of one ``tasks:`` list (recursively); duplicates are errors."""
    seen: dict[str, int] = {}
    for i, task in enumerate(models):
        path = base + (i,)
        full = f"{parent.group_id}.{task.id}" if parent else task.id
        if task.id in seen or full in d.tasks or full in d.groups:
            also = f"tasks[{seen[task.id]}]" if task.id in seen else "another task or group"
            d.problems.add(path + ("id",), f"duplicate task id {full!r} (also {also})", "unique ids",
                           code="duplicate_id")
            continue
        seen[task.id] = i
        if task.tasks is not None:
            group = d.groups[full] = GroupDraft(full, task, path, parent)
            _collect(d, task.tasks, path + ("tasks",), group)
            continue
        t = d.tasks[full] = TaskDraft(full, task, path, i if parent is None else -1)
        t.group = parent.scope() if parent else ()
        t.line = _line(d, path, i if parent is None else None)
        for g in t.group:
            d.groups[g].members.append(full)


def ids(d: Draft) -> None:
    """Every task's full id and every group, in file order; a repeated id is an error naming the first."""
    _collect(d, d.wf.workflow.tasks, ("workflow", "tasks"), None)
    for g in d.groups.values():
        for key in GROUP_FORBIDDEN:
            if getattr(g.model, key) is not None:
                d.problems.add(g.path + (key,), f"group {g.group_id!r} cannot have `{key}`: a group has no "
                               "action of its own", f"put `{key}` on a task inside `tasks:`", code="group_key")


def lookup(d: Draft, scope: tuple[str, ...], name: str) -> tuple[str, str] | None:
    """``("task" | "group", full id)`` that ``name`` means seen from inside ``scope`` (innermost last)."""
    for prefix in [f"{g}." for g in reversed(scope)] + [""]:
        full = prefix + name
        if full in d.tasks:
            return "task", full
        if full in d.groups:
            return "group", full
    return None


def resolve(d: Draft, scope: tuple[str, ...], name: str) -> list[str] | None:
    """The task ids ``name`` means seen from inside ``scope`` (a group: all its tasks), or None."""
    found = lookup(d, scope, name)
    if found is None:
        return None
    return [found[1]] if found[0] == "task" else list(d.groups[found[1]].members)


def choices(d: Draft, scope: tuple[str, ...]) -> list[str]:
    """Names a dependency could have meant from ``scope``: local ids first, then full ids."""
    local = [n[len(scope[-1]) + 1:] for n in (*d.tasks, *d.groups) if scope and n.startswith(scope[-1] + ".")]
    return [*local, *d.tasks, *d.groups]


def _unknown(d: Draft, path: tuple[PathPart, ...], scope: tuple[str, ...], dep: str) -> None:
    where = "in this file" if not scope else f"in group {scope[-1]!r} or this file (`group.task` from outside)"
    d.problems.add(path, f"unknown task id {dep!r}", did_you_mean(dep, choices(d, scope), f"the id of a task {where}"),
                   code="unknown_dependency")


def _task_dependencies(d: Draft, t: TaskDraft) -> None:
    listed: set[str] = set()
    for j, dep in enumerate(t.model.dependencies):
        path = t.path + ("dependencies", j)
        found = resolve(d, t.group, dep)
        if found is None:
            _unknown(d, path, t.group, dep)
        elif t.task_id in found:
            what = "itself" if found == [t.task_id] else f"its own group {dep!r}"
            d.problems.add(path, f"task {t.task_id!r} depends on {what}", "ids of other tasks",
                           code="self_dependency")
        elif dep in listed:
            d.problems.add(path, f"dependency {dep!r} is listed twice", code="duplicate_dependency")
        else:
            listed.add(dep)
            t.upstream.extend(u for u in found if u not in t.upstream)


def _group_dependencies(d: Draft, g: GroupDraft) -> None:
    scope = g.parent.scope() if g.parent else ()
    for j, dep in enumerate(g.model.dependencies):
        path = g.path + ("dependencies", j)
        found = resolve(d, scope, dep)
        if found is None:
            _unknown(d, path, scope, dep)
        elif set(found) & set(g.members):
            d.problems.add(path, f"group {g.group_id!r} depends on {dep!r}, which is (inside) itself",
                           "tasks or groups outside this group", code="self_dependency")
        else:
            for m in g.members:
                t = d.tasks[m]
                t.upstream.extend(u for u in found if u not in t.upstream)


def dependencies(d: Draft) -> None:
    """``dependencies`` -> upstream task ids (groups seen through); unknown, self and repeated ones are errors."""
    for t in d.tasks.values():
        _task_dependencies(d, t)
    for g in d.groups.values():
        _group_dependencies(d, g)


def defaults(d: Draft) -> None:
    """Each group's keys (over its parent group's) become defaults for its tasks' fields. Needs: ids."""
    for g in d.groups.values():  # outer groups come first
        own = {k: v for k, v in given(g.model).items() if k not in GROUP_OWN and k not in GROUP_FORBIDDEN}
        base = dict(g.parent.defaults) if g.parent else {}
        env = {**(base.get("env") or {}), **(own.get("env") or {})}
        g.defaults = {**base, **own, **({"env": env} if env else {})}
