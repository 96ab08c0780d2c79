"""Validated model -> WorkflowPlan: every rule of SPEC §3 resolved in plain Python.

The checks that need the whole file (ids, dependencies, cycles, priority
ranges, declared resources, actions, allowed code) live here; each problem is
located and all are raised together.
"""

from __future__ import annotations

import difflib
from collections import deque
from datetime import date, datetime
from typing import Any, Callable, Sequence

import pendulum

from iflow_airflow import code_policy, conflicts, extensions, priorities, queues, schedules
from iflow_airflow.errors import PathPart, Problem, WorkflowFileError
from iflow_airflow.operators import run_env
from iflow_airflow.models import PRIORITY_NAMES, Task, TaskFields, WorkflowFile
from iflow_airflow.plan_types import (
    AlertSettings, CallableAction, CheckpointAction, CommandAction, OperatorAction, ParamSpec,
    PlannedResource, PlannedTask, PromptAction, WaitAction, WorkflowPlan, WorkflowSettings,
)
from iflow_airflow.settings import IflowSettings

Locator = Callable[[Sequence[PathPart]], "tuple[str, int | None, int | None]"]
ACTION_FIELDS = ("command", "callable", "prompt", "wait", "operator")


class _Problems:
    def __init__(self, file: str, locate: Locator):
        self.file = file
        self.locate = locate
        self.items: list[Problem] = []

    def add(self, path: Sequence[PathPart], message: str, expected: str | None = None, code: str = "invalid"):
        where, line, col = self.locate(path)
        self.items.append(Problem(where, message, tuple(path), line, col, expected, code))


def _topological(ids: list[str], upstream: dict[str, list[str]]) -> tuple[list[str], list[str] | None]:
    """(order, cycle): a stable topological order (file order among ready tasks) or a cycle."""
    indegree = {t: len(upstream[t]) for t in ids}
    downstream: dict[str, list[str]] = {t: [] for t in ids}
    for t in ids:
        for u in upstream[t]:
            downstream[u].append(t)
    ready = deque(t for t in ids if indegree[t] == 0)
    order: list[str] = []
    while ready:
        t = ready.popleft()
        order.append(t)
        for d in downstream[t]:
            indegree[d] -= 1
            if indegree[d] == 0:
                ready.append(d)
    if len(order) == len(ids):
        return order, None
    remaining = {t for t in ids if indegree[t] > 0}
    start = next(t for t in ids if t in remaining)  # walk upstream inside the remainder until a repeat
    path, seen = [start], {start: 0}
    while True:
        nxt = next(u for u in upstream[path[-1]] if u in remaining)
        if nxt in seen:
            cycle = path[seen[nxt]:] + [nxt]
            return order, list(reversed(cycle))
        seen[nxt] = len(path)
        path.append(nxt)


def _stray_env(p: _Problems, task: Task, fields: dict[str, Any], action: Any, path: tuple[PathPart, ...]) -> None:
    """``env`` reaches only the processes of ``command:`` and ``prompt:`` tasks; elsewhere it
    would be silently ignored, so it is an error (located at the task, or its task type)."""
    if fields.get("env") and not isinstance(action, (CommandAction, PromptAction, type(None))):
        where = path + ("env",) if task.env else ("task_types", str(task.type), "env")
        p.add(where, f"`env` is only given to `command:` and `prompt:` processes; this task is a "
                     f"{action.kind} and would ignore it", "remove `env`, or set it on a command or prompt task",
              code="stray_env")


def _env_collisions(p: _Problems, prefix: str, names: list[tuple[tuple[PathPart, ...], str]], what: str) -> None:
    """Names that become one environment variable (``a-b``, ``a_b``, ``a.b`` -> ``IFLOW_RESULT_a_b``).

    Results and params reach processes as environment variables; two names that map to
    one variable would hand a task the wrong value without any error, so the second is one.
    """
    seen: dict[str, str] = {}
    for path, name in names:
        var = run_env.env_name(prefix, name)
        if var in seen:
            p.add(path, f"{what} {name!r} and {what} {seen[var]!r} both become the environment variable {var}",
                  f"{what}s that differ in more than `-`, `.` and `_`", code="env_collision")
        else:
            seen[var] = name


def _given(model: TaskFields) -> dict[str, Any]:
    """The fields a person wrote (nested values complete with their defaults)."""
    return {k: v.model_dump() if hasattr(v, "model_dump") else v
            for k, v in ((k, getattr(model, k)) for k in model.model_fields_set)}


def _merged_fields(task: Task, template: TaskFields | None) -> dict[str, Any]:
    """The task's own fields over its type's template; an own action replaces the template's."""
    own = _given(task)
    if template is None:
        return own
    base = _given(template)
    if any(k in own for k in ACTION_FIELDS):
        for k in (*ACTION_FIELDS, "args", "kwargs"):
            if k not in own or k == "operator" and own.get("operator") is None:
                base.pop(k, None)
    env = {**(base.get("env") or {}), **(own.get("env") or {})}
    merged = {**base, **own}
    if env:
        merged["env"] = env
    return merged


def _level(value: Any, levels: int) -> tuple[int, str] | str:
    if value is None:
        value = priorities.DEFAULT_PRIORITY
    if isinstance(value, str):
        return priorities.level_of_name(value, levels), value
    if 1 <= value <= levels:
        return value, str(value)
    return f"priority {value} is outside 1..{levels} (scheduling.priority_levels)"


def _action(fields: dict[str, Any], path: tuple[PathPart, ...], p: _Problems, settings: IflowSettings):
    given = [k for k in ("command", "callable", "prompt", "wait") if fields.get(k) is not None]
    kind = fields.get("operator")
    if kind is not None:
        problem = code_policy.operator_problem(kind, settings)
        if problem:
            p.add(path + ("operator",), problem, code="operator")
            return None
        builtin = code_policy.BUILTIN_KINDS.get(kind)
        if builtin is None:  # a custom kind takes only kwargs
            if given:
                p.add(path + ("operator",), f"operator kind {kind!r} cannot be combined with {given[0]}",
                      "either a custom `operator:` with `kwargs:`, or one built-in action")
                return None
            return OperatorAction(kind, dict(fields.get("kwargs") or {}))
        if builtin == "checkpoint":
            if given:
                p.add(path + ("operator",), f"a checkpoint has no action, but {given[0]} is set")
                return None
            return CheckpointAction()
        if builtin not in given:
            p.add(path + ("operator",), f"operator {kind!r} needs `{builtin}:`",
                  f"add `{builtin}:` to the task or its task_types entry", code="missing_action")
            return None
    if len(given) > 1:
        p.add(path + (given[1],), f"a task has at most one action, but {', '.join(given)} are set",
              "one of command / callable / prompt / wait / operator", code="several_actions")
        return None
    if fields.get("args") is not None or fields.get("kwargs") is not None:
        if given != ["callable"] and not (kind and code_policy.BUILTIN_KINDS.get(kind) is None):
            key = "args" if fields.get("args") is not None else "kwargs"
            p.add(path + (key,), f"`{key}` is only used with `callable:` or a custom `operator:`",
                  code="stray_args")
    if not given:
        return CheckpointAction()
    what = given[0]
    if what == "command":
        if not fields["command"].strip():
            p.add(path + ("command",), "empty command", "a shell command, or no action for a checkpoint")
        return CommandAction(fields["command"])
    if what == "callable":
        problem = code_policy.callable_problem(fields["callable"], settings)
        if problem:
            p.add(path + ("callable",), problem, code="callable")
            return None
        return CallableAction(fields["callable"], tuple(fields.get("args") or ()), dict(fields.get("kwargs") or {}))
    if what == "prompt":
        if not fields["prompt"].strip():
            p.add(path + ("prompt",), "empty prompt")
        return PromptAction(fields["prompt"])
    w = fields["wait"]
    return WaitAction(file=w.get("file"), url=w.get("url"), until=w.get("until"), workflow=w.get("workflow"),
                      task=w.get("task"), poke_interval=w.get("poke_interval", 5.0))


def _start_date(value: date | datetime, tz: str) -> datetime:
    zone = pendulum.timezone(tz)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return pendulum.instance(value.replace(tzinfo=None), tz=zone)
        return pendulum.instance(value)
    return pendulum.datetime(value.year, value.month, value.day, tz=zone)


class _Extensions:
    """The workflow's custom strategy, resolver and monitors (extensions.py), checked and located."""

    def __init__(self, wf: WorkflowFile, p: _Problems, settings: IflowSettings):
        self.wf, self.p, self.settings = wf, p, settings
        sched, coord = wf.scheduling, wf.coordination
        self.strategy = self._load("strategy", sched.strategy, ("scheduling", "strategy"))
        self.resolver = self._load("resolver", coord.conflict_resolution, ("coordination", "conflict_resolution"))

    def _load(self, kind: str, name: str, path: tuple[PathPart, ...]) -> Any:
        if extensions.is_builtin(kind, name):
            return None
        try:  # registration was checked by the models; here: allowed modules, loading, type
            return extensions.load(kind, name, self.settings)
        except extensions.ExtensionError as exc:
            self.p.add(path, str(exc), code="extension")
            return None

    def monitors(self) -> list[str]:
        names: list[str] = []
        for i, name in enumerate(self.wf.workflow.monitors):
            if name in names:
                self.p.add(("workflow", "monitors", i), f"monitor {name!r} is listed twice", code="duplicate_monitor")
            elif self._load("monitor", name, ("workflow", "monitors", i)) is not None:
                names.append(name)
        return names

    def _context(self, bonus: dict[str, int]) -> extensions.PlanContext:
        wf = self.wf
        return extensions.PlanContext(
            workflow=wf.workflow.name, mode=wf.orchestration.mode, priority_levels=wf.scheduling.priority_levels,
            queues=tuple(wf.scheduling.queues), strategy=wf.scheduling.strategy,
            conflict_resolution=wf.coordination.conflict_resolution, resolver_bonus=dict(bonus))

    def _fail(self, kind: str, what: str, exc: BaseException) -> None:
        path = ("scheduling", "strategy") if kind == "strategy" else ("coordination", "conflict_resolution")
        self.p.add(path, f"{kind} {what} failed: {type(exc).__name__}: {exc}", code="extension")

    def _bonus(self, infos: list[extensions.TaskInfo]) -> dict[str, int]:
        name = self.wf.coordination.conflict_resolution
        if self.resolver is None:
            if name == "random":
                return {t.task_id: priorities.shuffle_rank(self.wf.workflow.name, t.task_id) for t in infos}
            return {}
        bonus: dict[str, int] = {}
        context = self._context({})
        for group in extensions.tie_groups(infos, self.wf.orchestration.mode):
            ids = [t.task_id for t in group]
            try:
                ordered = [str(x) for x in self.resolver.order(group, context)]
            except Exception as exc:
                self._fail("resolver", repr(name), exc)
                return {}
            if sorted(ordered) != sorted(ids):
                self.p.add(("coordination", "conflict_resolution"),
                           f"resolver {name!r} returned {ordered} for the tied tasks {ids}",
                           "each of the given task ids exactly once", code="extension")
                return {}
            bonus.update(extensions.bonus_from_order(ordered))
        return bonus

    def tie_breaks(self, infos: list[extensions.TaskInfo], assignment: dict[str, str | None]) -> dict[str, int]:
        """Tie-break per task (0..999,999); a custom strategy also fills ``assignment`` with its queues."""
        context = self._context(self._bonus(infos))
        if self.strategy is None:
            return {t.task_id: extensions.default_tie_break(t, context) for t in infos}
        name = self.wf.scheduling.strategy
        ties: dict[str, int] = {t.task_id: 0 for t in infos}
        try:
            got = dict(self.strategy.tie_breaks(infos, context))
            queues_got = dict(self.strategy.assign_queues(infos, context))
        except Exception as exc:
            self._fail("strategy", repr(name), exc)
            return ties
        path = ("scheduling", "strategy")
        for t in infos:
            v = got.get(t.task_id)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= extensions.TIE_BREAK_MAX:
                self.p.add(path, f"strategy {name!r} gave task {t.task_id!r} the tie-break {v!r}",
                           f"an integer 0..{extensions.TIE_BREAK_MAX:,} for every task (a higher level "
                           "must always outweigh a lower one)", code="extension")
                continue
            ties[t.task_id] = v
            if t.queue is None:
                q = queues_got.get(t.task_id)
                if q is not None and q not in self.wf.scheduling.queues:
                    self.p.add(path, f"strategy {name!r} put task {t.task_id!r} on queue {q!r}, "
                                     "which is not in scheduling.queues",
                               f"one of {', '.join(self.wf.scheduling.queues)}", code="extension")
                    continue
                assignment[t.task_id] = q
        return ties


def make_plan(wf: WorkflowFile, *, file: str, source_text: str, locate: Locator,
              settings: IflowSettings | None = None, task_lines: dict[int, int] | None = None) -> WorkflowPlan:
    """Resolve a validated workflow into a plan; raises ``WorkflowFileError`` with every problem."""
    settings = settings or IflowSettings.from_config()
    p = _Problems(file, locate)
    orch, sched, coord, flow = wf.orchestration, wf.scheduling, wf.coordination, wf.workflow

    # ids and dependencies
    ids: list[str] = []
    first_index: dict[str, int] = {}
    for i, task in enumerate(flow.tasks):
        if task.id in first_index:
            p.add(("workflow", "tasks", i, "id"), f"duplicate task id {task.id!r} (also tasks[{first_index[task.id]}])",
                  "unique ids", code="duplicate_id")
            continue
        first_index[task.id] = i
        ids.append(task.id)
    id_paths = [(("workflow", "tasks", first_index[t], "id"), t) for t in ids]
    _env_collisions(p, run_env.RESULT_PREFIX, id_paths, "task id")
    _env_collisions(p, run_env.PARAM_PREFIX, [(("workflow", "params", k), k) for k in flow.params], "param")
    upstream: dict[str, list[str]] = {t: [] for t in ids}
    for i, task in enumerate(flow.tasks):
        if first_index.get(task.id) != i:
            continue
        for j, dep in enumerate(task.dependencies):
            path = ("workflow", "tasks", i, "dependencies", j)
            if dep == task.id:
                p.add(path, f"task {task.id!r} depends on itself", "ids of other tasks", code="self_dependency")
            elif dep not in first_index:
                near = difflib.get_close_matches(dep, ids, n=1)
                p.add(path, f"unknown task id {dep!r}",
                      f"did you mean {near[0]!r}?" if near else "the id of a task in this file", code="unknown_dependency")
            elif dep in upstream[task.id]:
                p.add(path, f"dependency {dep!r} is listed twice", code="duplicate_dependency")
            else:
                upstream[task.id].append(dep)
    order, cycle = _topological(ids, upstream)
    if cycle:
        i = first_index[cycle[0]]
        p.add(("workflow", "tasks", i, "dependencies"), "dependency cycle: " + " -> ".join(cycle),
              "dependencies without a cycle", code="cycle")
        order = ids  # keep checking everything else
    downstream: dict[str, list[str]] = {t: [] for t in ids}
    for t in ids:
        for u in upstream[t]:
            downstream[u].append(t)
    crit = priorities.critical_paths(order, downstream) if not cycle else {t: 1 for t in ids}

    # schedule, time zone, dates
    schedule = schedules.parse_schedule(flow.schedule)
    if isinstance(schedule, str):
        p.add(("workflow", "schedule"), schedule, code="schedule")
        schedule = schedules.Schedule("none")
    try:
        start = _start_date(flow.start_date, flow.timezone)
    except Exception:
        near = difflib.get_close_matches(flow.timezone, sorted(pendulum.timezones()), n=1)
        p.add(("workflow", "timezone"), f"unknown time zone {flow.timezone!r}",
              f"did you mean {near[0]!r}?" if near else "an IANA name such as 'UTC' or 'Europe/Berlin'",
              code="timezone")
        start = pendulum.datetime(2026, 1, 1, tz="UTC")

    # resources
    resources = {
        name: PlannedResource(name, settings.pool_prefix + name, r.slots, r.max_slots, r.description, file)
        for name, r in wf.resources.items()
    }
    for name, r in wf.resources.items():
        if r.max_slots is not None and r.max_slots < r.slots:
            p.add(("resources", name, "max_slots"), f"max_slots {r.max_slots} is below slots {r.slots}",
                  f"max_slots >= {r.slots}")

    # tasks
    resolved: dict[str, dict[str, Any]] = {}
    for i, task in enumerate(flow.tasks):
        if first_index.get(task.id) != i:
            continue
        path: tuple[PathPart, ...] = ("workflow", "tasks", i)
        template = wf.task_types.get(task.type) if task.type else None
        fields = _merged_fields(task, template)
        level = _level(fields.get("priority"), sched.priority_levels)
        if isinstance(level, str):
            p.add(path + ("priority",), level, f"1..{sched.priority_levels} or one of {', '.join(PRIORITY_NAMES)}",
                  code="priority")
            level = (1, "1")
        use = fields.get("resource")
        pool = None
        if use is not None:
            decl = resources.get(use["name"])
            if decl is None:
                near = difflib.get_close_matches(use["name"], list(resources), n=1)
                p.add(path + ("resource",), f"resource {use['name']!r} is not declared",
                      f"did you mean {near[0]!r}?" if near else
                      "declare it under `resources:` in this file or in an iflow.defaults.yaml",
                      code="unknown_resource")
            elif use["slots"] > decl.slots:
                p.add(path + ("resource",), f"needs {use['slots']} slots of {use['name']!r}, which has {decl.slots}",
                      f"at most {decl.slots}", code="resource_slots")
            else:
                pool = decl.pool
        if fields.get("emits") and coord.sync_mode != "event_driven":
            p.add(path + ("emits",), "`emits` needs coordination.sync_mode: event_driven",
                  "sync_mode: event_driven, or no emits", code="emits_mode")
        action = _action(fields, path, p, settings)
        _stray_env(p, task, fields, action, path)
        resolved[task.id] = dict(fields=fields, level=level, pool=pool, use=use, action=action, index=i)

    cost = {t: float(resolved[t]["fields"].get("cost") or 1.0) for t in order if t in resolved}
    pinned = {t: resolved[t]["fields"].get("queue") for t in order if t in resolved}
    assignment = queues.assign_queues(sched.strategy, [t for t in order if t in resolved], sched.queues, pinned, cost)
    ext = _Extensions(wf, p, settings)
    monitors = ext.monitors()
    custom_ties: dict[str, int] | None = None
    if ext.strategy is not None or ext.resolver is not None:
        infos = [extensions.TaskInfo(
            task_id=t, level=resolved[t]["level"][0], level_name=resolved[t]["level"][1],
            critical_path=crit[t], cost=cost[t], queue=pinned[t], upstream=tuple(upstream[t]),
            resource=(resolved[t]["use"] or {}).get("name"), position=i)
            for i, t in enumerate(t for t in order if t in resolved)]
        custom_ties = ext.tie_breaks(infos, assignment)

    if p.items:
        raise WorkflowFileError(file, p.items)

    planned: list[PlannedTask] = []
    for t in order:
        r = resolved[t]
        f, (level, level_name) = r["fields"], r["level"]
        if custom_ties is not None and sched.strategy != "round_robin":  # a custom strategy or resolver
            w = level * priorities.LEVEL_SPAN + custom_ties[t]
        elif sched.strategy == "round_robin":  # SPEC §3: "in turn with equal weights"
            w = priorities.level_of_name(priorities.DEFAULT_PRIORITY, sched.priority_levels) * priorities.LEVEL_SPAN
        else:
            w = priorities.weight(level, critical_path=crit[t], mode=orch.mode,
                                  conflict_resolution=coord.conflict_resolution, dag_id=flow.name, task_id=t)
        backoff = (f.get("retry_backoff") or orch.retry_backoff) == "exponential"
        timeout = f.get("timeout", orch.task_timeout)
        action = r["action"]
        planned.append(PlannedTask(
            task_id=t, description=f.get("description"), upstream=tuple(upstream[t]), level=level,
            level_name=level_name, priority_weight=w, critical_path=crit[t], resource=(r["use"] or {}).get("name"),
            pool=r["pool"], pool_slots=(r["use"] or {}).get("slots", 1), queue=assignment[t], cost=cost[t],
            retries=f["retries"] if f.get("retries") is not None else orch.retry_attempts,
            retry_delay=float(f["retry_delay"] if f.get("retry_delay") is not None else orch.retry_delay),
            exponential_backoff=backoff, max_retry_delay=orch.max_retry_delay,
            timeout=float(timeout) if timeout is not None else None,
            trigger_rule=f.get("trigger_rule") or "all_success", env=dict(f.get("env") or {}),
            emits=tuple(f.get("emits") or ()), action=action, persist_result=coord.state_persistence,
            deferrable=coord.sync_mode == "asynchronous", wait_timeout=float(coord.communication_timeout),
            line=(task_lines or {}).get(r["index"]),
        ))

    by_id = {t.task_id: t for t in planned}
    found, notes = conflicts.detect(
        order, upstream, {t: by_id[t].resource for t in order}, {t: by_id[t].pool_slots for t in order},
        {n: r.slots for n, r in resources.items()}, {t: by_id[t].priority_weight for t in order},
        coord.conflict_resolution)
    checkpoints = [t.task_id for t in planned if isinstance(t.action, CheckpointAction)]
    if checkpoints:
        notes.append("checkpoint (no action: logs and succeeds): " + ", ".join(checkpoints))

    return WorkflowPlan(
        dag_id=flow.name, description=flow.description, source_path=file, source_text=source_text,
        schedule=schedule, start_date=start, timezone=flow.timezone, catchup=flow.catchup, tags=tuple(flow.tags),
        owner=flow.owner,
        params={k: ParamSpec(v.default, v.type, v.description, tuple(v.enum) if v.enum is not None else None)
                for k, v in flow.params.items()},
        enabled=orch.enabled, max_active_tasks=orch.max_concurrent_tasks,
        settings=WorkflowSettings(orch.mode, sched.strategy, coord.sync_mode, coord.conflict_resolution,
                                  sched.priority_levels, sched.load_threshold, sched.auto_scaling,
                                  tuple(sched.queues), coord.state_persistence, float(coord.communication_timeout)),
        alerts=AlertSettings(flow.alerts.webhook, tuple(flow.alerts.events)),
        resources=resources, tasks=tuple(planned), conflicts=tuple(found), notes=tuple(notes),
        monitors=tuple(monitors),
    )
