"""Extension points of the iflow design: custom scheduling strategies, conflict resolvers and monitors.

A package registers an extension under an entry point group and a workflow
file selects it by name:

==============================  ===========================================  =================================
entry point group               base class                                   selected in the workflow file by
==============================  ===========================================  =================================
``iflow_airflow.strategies``    :class:`SchedulingStrategy`                  ``scheduling.strategy: <name>``
``iflow_airflow.resolvers``     :class:`ConflictResolver`                    ``coordination.conflict_resolution: <name>``
``iflow_airflow.monitors``      :class:`WorkflowMonitor`                     ``workflow.monitors: [<name>, ...]``
==============================  ===========================================  =================================

For example, in the extension package's ``pyproject.toml``::

    [project.entry-points."iflow_airflow.strategies"]
    gpu_first = "my_pkg.iflow_ext:GpuFirst"

The built-in names (``priority_based``/``round_robin``/``load_balanced``,
``priority``/``timestamp``/``random``) cannot be taken. An entry point names a
class (instantiated once per process, without arguments) or an instance. Like
``callable:`` tasks, an extension's module must be inside ``[iflow]
allowed_modules``; this is checked BEFORE anything is imported. An unknown name,
a module that is not allowed, or an extension that fails or answers out of
range is a located error of the workflow file (listing the known names).

Strategies and resolvers run when the file is planned (in the dag-processor
and in ``iflow-airflow validate``/``explain``), so they must be pure and fast.
Monitors run wherever the iflow listeners emit an event (the worker for task
events, the scheduler for run events, ``dag.test()`` in-process) and must not
block: an exception in a monitor is logged and ignored.

The band rule always holds: a task's ``priority_weight`` is ``level *
1,000,000 + tie_break`` with ``0 <= tie_break <= 999,999``, so a task of a
higher level outweighs every task of a lower level, in any workflow; a strategy
only chooses the tie-break inside a level.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iflow_airflow import entry_points
from iflow_airflow.constants import (
    BUILTIN_RESOLVERS,
    BUILTIN_STRATEGIES,
    CRITICAL_PATH_CAP,
    LEVEL_SPAN,
    MONITORS_GROUP,
    RANDOM_BUCKETS,
    RESOLVERS_GROUP,
    STRATEGIES_GROUP,
)
from iflow_airflow.settings import IflowSettings

log = logging.getLogger(__name__)

STRATEGY_GROUP = STRATEGIES_GROUP
RESOLVER_GROUP = RESOLVERS_GROUP
MONITOR_GROUP = MONITORS_GROUP
TIE_BREAK_MAX = LEVEL_SPAN - 1  # 999,999
RESOLVER_BONUS_MAX = RANDOM_BUCKETS - 1  # 99


@dataclass(frozen=True)
class TaskInfo:
    """What a strategy or resolver learns about one task of the plan."""

    task_id: str
    level: int  # 1..priority_levels, higher is more urgent
    level_name: str  # as written: "high", or "3"
    critical_path: int  # tasks on the longest path from this task to an end, itself included
    cost: float  # the `cost` hint (default 1)
    queue: str | None  # the queue the task names itself (it always wins over the strategy)
    upstream: tuple[str, ...]
    resource: str | None
    position: int  # index in the plan's topological order


@dataclass(frozen=True)
class PlanContext:
    """The workflow-level settings a strategy or resolver may consult."""

    workflow: str
    mode: str  # basic | intelligent | advanced
    priority_levels: int
    queues: tuple[str, ...]  # scheduling.queues
    strategy: str
    conflict_resolution: str
    # The conflict resolution rule's vote per task, 0..99 (higher goes first among tasks that
    # otherwise tie); built-in strategies add it to the tie-break, custom ones may.
    resolver_bonus: Mapping[str, int] = field(default_factory=dict)


class SchedulingStrategy:
    """A custom ``scheduling.strategy``: within-level tie-breaks (weights) and executor queues.

    The default methods behave like ``priority_based``, so a subclass overrides
    only what it changes.
    """

    def tie_breaks(self, tasks: Sequence[TaskInfo], context: PlanContext) -> Mapping[str, int]:
        """``{task_id: tie_break}`` with ``0 <= tie_break <= 999,999`` for every task.

        The task's priority weight becomes ``level * 1,000,000 + tie_break``; a
        higher value is scheduled first among waiting tasks of the same level.
        Default: the critical path length x 100 under ``intelligent``/``advanced``
        plus the resolver's vote (``context.resolver_bonus``).
        """
        return {t.task_id: default_tie_break(t, context) for t in tasks}

    def assign_queues(self, tasks: Sequence[TaskInfo], context: PlanContext) -> Mapping[str, str | None]:
        """``{task_id: queue}``: each queue one of ``context.queues`` (None: the executor's default).

        Tasks that name a ``queue`` themselves keep it whatever this returns.
        Default: only the tasks' own queues.
        """
        return {t.task_id: t.queue for t in tasks}


class ConflictResolver:
    """A custom ``coordination.conflict_resolution``: who goes first among tasks that tie.

    ``order`` is called once per group of tasks that tie under the mode (same
    level, and the same critical path length under ``intelligent``/``advanced``),
    in topological order. The first 100 tasks of the returned order get a vote
    of 99, 98, ... (later ones 0), which the built-in strategies add to their
    tie-break; so a resolver never lifts a task above a longer critical path or
    a higher level.
    """

    def order(self, tasks: Sequence[TaskInfo], context: PlanContext) -> Sequence[str]:
        """The task ids of ``tasks`` in the order they should get a free slot (first goes first)."""
        return [t.task_id for t in tasks]


class WorkflowMonitor:
    """A custom monitor: receives every event the iflow listeners emit for its workflows.

    Events (see ``docs/monitoring.md``): ``task_running``, ``task_success``,
    ``task_retry``, ``task_failed``, ``task_skipped``, ``run_running``,
    ``run_success``, ``run_failed``. ``fields`` holds ``workflow``, ``run_id``
    and, for task events, ``task`` and ``try_number`` plus event details
    (``duration_ms``, ``error`` ...). Called in the process that emits the event
    (worker, scheduler, or ``dag.test()``); keep it fast, never block.
    """

    def on_event(self, event: str, fields: Mapping[str, Any]) -> None:
        """Handle one event; exceptions are logged and ignored."""


#: Modes in which the longer critical path wins ties within a level (SPEC §3).
CRITICAL_PATH_MODES = ("intelligent", "advanced")


def critical_path_share(critical_path: int, mode: str) -> int:
    """The mode's part of a tie-break: critical path (capped) x 100 under intelligent/advanced, else 0."""
    if mode in CRITICAL_PATH_MODES:
        return min(critical_path, CRITICAL_PATH_CAP) * RANDOM_BUCKETS
    return 0


def tie_break(critical_path: int, mode: str, vote: int = 0) -> int:
    """THE built-in tie-break rule: the mode's critical-path share plus the resolver's vote (0..99).

    Every built-in weight is ``level * 1,000,000 + tie_break(...)``; the cap on
    the critical path keeps it below 1,000,000, so the level band always holds.
    """
    within = critical_path_share(critical_path, mode) + int(vote)
    assert 0 <= within <= TIE_BREAK_MAX
    return within


def default_tie_break(task: TaskInfo, context: PlanContext) -> int:
    """The built-in tie-break of one task: :func:`tie_break` with the resolver's vote from the context."""
    return tie_break(task.critical_path, context.mode, context.resolver_bonus.get(task.task_id, 0))


def tie_groups(tasks: Sequence[TaskInfo], mode: str) -> list[list[TaskInfo]]:
    """Tasks that tie before conflict resolution: same level (and critical path, intelligent/advanced)."""
    groups: dict[tuple[int, int], list[TaskInfo]] = {}
    for t in tasks:
        key = (t.level, critical_path_share(t.critical_path, mode))
        groups.setdefault(key, []).append(t)
    return list(groups.values())


def bonus_from_order(order: Sequence[str]) -> dict[str, int]:
    """Position -> vote: 99 for the first, 98 for the second, ... 0 from the 100th on."""
    return {task_id: max(0, RESOLVER_BONUS_MAX - i) for i, task_id in enumerate(order)}


# --- registry ---------------------------------------------------------------------------

_KINDS: dict[str, tuple[str, type, tuple[str, ...], str]] = {
    # kind: (entry point group, base class, built-in names, key in the workflow file)
    "strategy": (STRATEGY_GROUP, SchedulingStrategy, BUILTIN_STRATEGIES, "scheduling.strategy"),
    "resolver": (RESOLVER_GROUP, ConflictResolver, BUILTIN_RESOLVERS, "coordination.conflict_resolution"),
    "monitor": (MONITOR_GROUP, WorkflowMonitor, (), "workflow.monitors"),
}
_instances: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


class ExtensionError(LookupError):
    """An extension that is unknown, not allowed, cannot be loaded or is of the wrong type."""


def registered(kind: str) -> dict[str, importlib.metadata.EntryPoint]:
    """Registered extensions of ``kind`` by name (first registration wins; built-in names cannot be taken)."""
    group, _, builtins, _ = _KINDS[kind]
    return entry_points.registered(group, builtins)


def known_names(kind: str) -> list[str]:
    """Every name a workflow file may use for ``kind``: the built-ins, then registered ones."""
    return list(_KINDS[kind][2]) + sorted(registered(kind))


def is_builtin(kind: str, name: str) -> bool:
    return name in _KINDS[kind][2]


def load(kind: str, name: str, settings: IflowSettings) -> Any:
    """The extension instance registered as ``name`` (cached per process).

    Raises :class:`ExtensionError` with what is wrong and what would be right;
    a module outside ``[iflow] allowed_modules`` is never imported.
    """
    group, base, builtins, key = _KINDS[kind]
    ep = registered(kind).get(name)
    if ep is None:
        known = ", ".join(known_names(kind)) or "(none)"
        raise ExtensionError(f"unknown {kind} {name!r} for {key}; known: {known} "
                             f"(custom ones are registered under the entry point group {group!r})")
    if not settings.module_allowed(ep.module):
        from iflow_airflow.allowlist import not_allowed_message

        raise ExtensionError(not_allowed_message(ep.module, settings, f"{kind} {name!r} ({ep.value})"))
    cache_key = (kind, name, ep.value)
    with _lock:
        if cache_key in _instances:
            return _instances[cache_key]
    try:
        obj = ep.load()
        instance = obj() if isinstance(obj, type) else obj
    except Exception as exc:
        raise ExtensionError(f"{kind} {name!r}: cannot load {ep.value!r}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(instance, base):
        raise ExtensionError(f"{kind} {name!r}: {ep.value!r} is not a {base.__module__}.{base.__qualname__}")
    with _lock:
        return _instances.setdefault(cache_key, instance)


def clear_cache() -> None:
    """Forget loaded extension instances (tests)."""
    with _lock:
        _instances.clear()
        _monitor_settings.clear()


# --- monitors ---------------------------------------------------------------------------

_monitor_settings: list[IflowSettings] = []


def dispatch_event(event: str, fields: Mapping[str, Any], names: Sequence[str]) -> None:
    """Hand ``event`` to each monitor in ``names`` (the workflow's ``workflow.monitors``). Never raises."""
    try:
        if not names:
            return
        if not _monitor_settings:
            _monitor_settings.append(IflowSettings.from_config())
        for name in names:
            try:
                load("monitor", name, _monitor_settings[0]).on_event(event, dict(fields))
            except Exception:
                log.exception("iflow: monitor %r failed on event %s (ignored)", name, event)
    except Exception:  # monitoring never fails a task or a scheduler loop
        log.exception("iflow: dispatching event %s to monitors failed (ignored)", event)
