"""The planner's named passes: each reads and fills one part of the draft (draft.py).

``CHECKS`` run first, in order, and only collect problems (so a file gets all
of them at once); ``RESOLVE`` runs once the file has none, and decides the
values that need every check to have passed (weights, conflicts). Each pass
is a plain function ``(Draft) -> None`` that can be run alone in a test after
the passes it names as inputs.
"""

from __future__ import annotations

from collections import deque
from datetime import date, datetime
from typing import Any, Callable

import pendulum

from iflow_airflow import constants
from iflow_airflow.errors import did_you_mean
from iflow_airflow.plan import alerting, custom, fanout, groups, priorities, schedules
from iflow_airflow.plan import conflicts as conflict_rules
from iflow_airflow.plan import queues as queue_rules
from iflow_airflow.plan.actions import ACTION_FIELDS, action_of
from iflow_airflow.plan.draft import Draft, TaskDraft, given
from iflow_airflow.plan.ir import CheckpointAction, CommandAction, PlannedResource, PromptAction
from iflow_airflow.schema.models import PRIORITY_NAMES, Task, TaskFields

Pass = Callable[[Draft], None]


# --- ids, groups and dependencies: plan/groups.py ----------------------------------------

ids, dependencies, group_defaults = groups.ids, groups.dependencies, groups.defaults


def _collisions(d: Draft, prefix: str, names: list[tuple[tuple[Any, ...], str]], what: str) -> None:
    seen: dict[str, str] = {}
    for path, name in names:
        var = constants.env_name(prefix, name)
        if var in seen:
            d.problems.add(path, f"{what} {name!r} and {what} {seen[var]!r} both become the environment "
                           f"variable {var}", f"{what}s that differ in more than `-`, `.` and `_`",
                           code="env_collision")
        else:
            seen[var] = name


def env_names(d: Draft) -> None:
    """Task ids and params that would share one environment variable (``a-b``, ``a_b``, ``a.b``). Needs: ids.

    Results and params reach processes as ``IFLOW_RESULT_*``/``IFLOW_PARAM_*``; two names
    that map to one variable would hand a task the wrong value without any error (D11).
    """
    _collisions(d, constants.RESULT_PREFIX, [(t.path + ("id",), t.task_id) for t in d.tasks.values()], "task id")
    _collisions(d, constants.PARAM_PREFIX, [(("workflow", "params", k), k) for k in d.wf.workflow.params], "param")


# --- order ---------------------------------------------------------------------------------

def topological(ids_: list[str], upstream: dict[str, list[str]]) -> tuple[list[str], list[str] | None]:
    """(order, cycle): a stable topological order (file order among ready tasks) or a cycle."""
    indegree = {t: len(upstream[t]) for t in ids_}
    downstream = downstream_of(ids_, upstream)
    ready = deque(t for t in ids_ if indegree[t] == 0)
    order: list[str] = []
    while ready:
        t = ready.popleft()
        order.append(t)
        for dep in downstream[t]:
            indegree[dep] -= 1
            if indegree[dep] == 0:
                ready.append(dep)
    if len(order) == len(ids_):
        return order, None
    return order, _a_cycle(ids_, upstream, {t for t in ids_ if indegree[t] > 0})


def downstream_of(ids_: list[str], upstream: dict[str, list[str]]) -> dict[str, list[str]]:
    downstream: dict[str, list[str]] = {t: [] for t in ids_}
    for t in ids_:
        for u in upstream[t]:
            downstream[u].append(t)
    return downstream


def _a_cycle(ids_: list[str], upstream: dict[str, list[str]], remaining: set[str]) -> list[str]:
    """Walk upstream inside the tasks left over by the sort until a task repeats: that loop, in run order."""
    start = next(t for t in ids_ if t in remaining)
    path, seen = [start], {start: 0}
    while True:
        nxt = next(u for u in upstream[path[-1]] if u in remaining)
        if nxt in seen:
            return list(reversed(path[seen[nxt]:] + [nxt]))
        seen[nxt] = len(path)
        path.append(nxt)


def order(d: Draft) -> None:
    """Topological order and critical paths; a cycle is an error naming it. Needs: dependencies."""
    ids_ = list(d.tasks)
    upstream = {t: d.tasks[t].upstream for t in ids_}
    d.order, cycle = topological(ids_, upstream)
    if cycle:
        d.problems.add(d.tasks[cycle[0]].path + ("dependencies",), "dependency cycle: " + " -> ".join(cycle),
                       "dependencies without a cycle", code="cycle")
        d.order, d.has_cycle = ids_, True  # keep checking everything else
        return
    crit = priorities.critical_paths(d.order, downstream_of(ids_, upstream))
    for t in d.order:
        d.tasks[t].critical_path = crit[t]


# --- schedule ------------------------------------------------------------------------------

def _start_date(value: date | datetime, tz: str) -> datetime:
    zone = pendulum.timezone(tz)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return pendulum.instance(value.replace(tzinfo=None), tz=zone)
        return pendulum.instance(value)
    return pendulum.datetime(value.year, value.month, value.day, tz=zone)


def schedule(d: Draft) -> None:
    """``schedule``, ``start_date`` and ``timezone`` -> plan values; bad ones are errors."""
    flow = d.wf.workflow
    parsed = schedules.parse_schedule(flow.schedule)
    if isinstance(parsed, str):
        d.problems.add(("workflow", "schedule"), parsed, code="schedule")
        parsed = schedules.Schedule("none")
    d.schedule = parsed
    try:
        d.start_date = _start_date(flow.start_date, flow.timezone)
    except Exception:
        d.problems.add(("workflow", "timezone"), f"unknown time zone {flow.timezone!r}",
                       did_you_mean(flow.timezone, sorted(pendulum.timezones()),
                                    "an IANA name such as 'UTC' or 'Europe/Berlin'"), code="timezone")
        d.start_date = pendulum.datetime(2026, 1, 1, tz="UTC")


# --- resources -----------------------------------------------------------------------------

def resources(d: Draft) -> None:
    """``resources:`` -> planned pools (``[iflow] pool_prefix`` + name); max_slots >= slots."""
    for name, r in d.wf.resources.items():
        d.resources[name] = PlannedResource(name, d.settings.pool_prefix + name, r.slots, r.max_slots,
                                            r.description, d.file)
        if r.max_slots is not None and r.max_slots < r.slots:
            d.problems.add(("resources", name, "max_slots"), f"max_slots {r.max_slots} is below slots {r.slots}",
                           f"max_slots >= {r.slots}")


# --- tasks ---------------------------------------------------------------------------------

def _over(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """``own`` over ``base``; ``env`` merges name by name."""
    env = {**(base.get("env") or {}), **(own.get("env") or {})}
    merged = {**base, **own}
    if env:
        merged["env"] = env
    return merged


def merged_fields(task: Task, template: TaskFields | None, group: dict[str, Any] | None = None) -> dict[str, Any]:
    """The task's own fields over its type's template over its group's keys; an own action replaces the template's."""
    own = given(task)
    base = given(template) if template is not None else {}
    if template is not None and any(k in own for k in ACTION_FIELDS):
        for k in (*ACTION_FIELDS, "args", "kwargs", "params"):
            if k not in own or k == "operator" and own.get("operator") is None:
                base.pop(k, None)
    if not base and not group:
        return own
    return _over(_over(group or {}, base), own)


def level_of(value: Any, levels: int) -> tuple[int, str] | str:
    """(level, as written) of a priority name or number, or the error message."""
    if value is None:
        value = priorities.DEFAULT_PRIORITY
    if isinstance(value, str):
        return priorities.level_of_name(value, levels), value
    if 1 <= value <= levels:
        return value, str(value)
    return f"priority {value} is outside 1..{levels} (scheduling.priority_levels)"


def _resource_use(d: Draft, t: TaskDraft) -> None:
    """The task's resource: declared, and no more slots than it has."""
    use = t.use = t.fields.get("resource")
    if use is None:
        return
    decl = d.resources.get(use["name"])
    if decl is None:
        d.problems.add(t.path + ("resource",), f"resource {use['name']!r} is not declared",
                       did_you_mean(use["name"], d.resources,
                                    "declare it under `resources:` in this file or in an iflow.defaults.yaml"),
                       code="unknown_resource")
    elif use["slots"] > decl.slots:
        d.problems.add(t.path + ("resource",), f"needs {use['slots']} slots of {use['name']!r}, which has "
                       f"{decl.slots}", f"at most {decl.slots}", code="resource_slots")
    else:
        t.pool = decl.pool


def _task(d: Draft, t: TaskDraft) -> None:
    sched = d.wf.scheduling
    group = d.groups[t.group[-1]].defaults if t.group else {}
    kind = t.model.type or group.get("type")
    t.fields = merged_fields(t.model, d.wf.task_types.get(kind) if kind else None, group)
    level = level_of(t.fields.get("priority"), sched.priority_levels)
    if isinstance(level, str):
        d.problems.add(t.path + ("priority",), level,
                       f"1..{sched.priority_levels} or one of {', '.join(PRIORITY_NAMES)}", code="priority")
        level = (1, "1")
    t.level = level
    _resource_use(d, t)
    if t.fields.get("emits") and d.wf.coordination.sync_mode != "event_driven":
        d.problems.add(t.path + ("emits",), "`emits` needs coordination.sync_mode: event_driven",
                       "sync_mode: event_driven, or no emits", code="emits_mode")
    t.action = action_of(t.fields, t.path, d.problems, d.settings)
    _stray_env(d, t, kind)
    t.cost = float(t.fields.get("cost") or 1.0)


def _stray_env(d: Draft, t: TaskDraft, kind: str | None) -> None:
    """``env`` reaches only the processes of ``command:`` and ``prompt:`` tasks; elsewhere it is an error (D15)."""
    if t.fields.get("env") and not isinstance(t.action, (CommandAction, PromptAction, type(None))):
        where = t.path + ("env",) if t.model.env else ("task_types", str(kind), "env")
        d.problems.add(where, f"`env` is only given to `command:` and `prompt:` processes; this task is a "
                       f"{t.action.kind} and would ignore it", "remove `env`, or set it on a command or prompt task",
                       code="stray_env")


def tasks(d: Draft) -> None:
    """Each task's fields (own over its type), priority level, resource use and action. Needs: resources."""
    for t in d.tasks.values():
        _task(d, t)


# --- queues, custom extensions -------------------------------------------------------------

def queues(d: Draft) -> None:
    """The strategy's executor queue per task; a queue a task names itself always wins. Needs: tasks."""
    ordered = d.ordered()
    pinned = {t.task_id: t.fields.get("queue") for t in ordered}
    assignment = queue_rules.assign_queues(d.wf.scheduling.strategy, list(pinned), d.wf.scheduling.queues,
                                           pinned, {t.task_id: t.cost for t in ordered})
    for t in ordered:
        t.queue = assignment[t.task_id]


def custom_extensions(d: Draft) -> None:
    """Monitors, and the tie-breaks (and queues) of a custom strategy or resolver. Needs: queues."""
    ext = d.extensions = custom.Extensions(d)
    d.monitors = ext.monitors()
    if ext.custom:
        d.custom_ties = custom.tie_breaks(ext, d)


# --- weights, conflicts (after every check passed) -----------------------------------------

def weights(d: Draft) -> None:
    """Absolute priority weights: ``level * 1,000,000 + tie-break`` (priorities.py, extensions.tie_break)."""
    sched, flow = d.wf.scheduling, d.wf.workflow
    for t in d.ordered():
        if sched.strategy == "round_robin":  # SPEC §3: "in turn with equal weights"
            t.weight = priorities.band(priorities.level_of_name(priorities.DEFAULT_PRIORITY,
                                                                sched.priority_levels), 0)
        elif d.custom_ties is not None:  # a custom strategy or resolver
            t.weight = priorities.band(t.level[0], d.custom_ties[t.task_id])
        else:
            t.weight = priorities.weight(t.level[0], critical_path=t.critical_path, mode=d.wf.orchestration.mode,
                                         conflict_resolution=d.wf.coordination.conflict_resolution,
                                         dag_id=flow.name, task_id=t.task_id)


def conflicts(d: Draft) -> None:
    """Pairs of tasks that may run at once and contend for a resource; checkpoints are noted. Needs: weights."""
    ordered = d.ordered()
    found, notes = conflict_rules.detect(
        d.order, {t.task_id: t.upstream for t in ordered}, {t.task_id: t.resource for t in ordered},
        {t.task_id: t.slots for t in ordered}, {n: r.slots for n, r in d.resources.items()},
        {t.task_id: t.weight for t in ordered}, d.wf.coordination.conflict_resolution)
    d.conflicts, d.notes = found, notes
    checkpoints = [t.task_id for t in ordered if isinstance(t.action, CheckpointAction)]
    if checkpoints:
        d.notes.append("checkpoint (no action: logs and succeeds): " + ", ".join(checkpoints))
    d.notes.extend(_unknown_type_notes(d))


def _unknown_type_notes(d: Draft) -> list[str]:
    """One note per ``type`` that names no ``task_types`` entry (a label is legal, but often a typo
    or a missing defaults file: the task then gets nothing from a template)."""
    unknown: dict[str, list[str]] = {}
    for t in d.ordered():
        kind = t.model.type
        if kind and kind not in d.wf.task_types:
            unknown.setdefault(kind, []).append(t.task_id)
    known = ", ".join(sorted(d.wf.task_types)) or "none declared"
    return [f"type {name!r} matches no task_types entry (known: {known}), so {', '.join(ids_)} "
            f"{'gets' if len(ids_) == 1 else 'get'} no template" for name, ids_ in unknown.items()]


for_each, sub_workflows = fanout.for_each, fanout.sub_workflows


def alerts(d: Draft) -> None:
    """Alert channels, their events and the deadline (``workflow.alerts``, ``workflow.deadline``; plan/alerting.py)."""
    d.alerts = alerting.plan_alerts(d.wf.workflow, d.problems)

CHECKS: tuple[Pass, ...] = (ids, env_names, dependencies, order, schedule, resources, group_defaults, tasks, for_each,
                            sub_workflows, queues, custom_extensions, alerts)
RESOLVE: tuple[Pass, ...] = (weights, conflicts)
