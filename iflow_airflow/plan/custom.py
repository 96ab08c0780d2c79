"""The workflow's custom strategy, resolver and monitors (extensions.py), loaded, run and checked.

Rule: a custom strategy chooses every task's tie-break (0..999,999) and may put
the tasks that name no queue on one of ``scheduling.queues``; a custom resolver
orders each group of tied tasks, which becomes a vote of 99, 98, ... added by the
built-in tie-break. An extension that cannot be loaded, raises, or answers out
of range is a located error on the key that selected it; the plan is then not
made (planning stays pure: nothing here runs at task time).
"""

from __future__ import annotations

from typing import Any

from iflow_airflow import extensions
from iflow_airflow.errors import PathPart
from iflow_airflow.plan import priorities
from iflow_airflow.plan.draft import Draft, TaskDraft

STRATEGY_PATH: tuple[PathPart, ...] = ("scheduling", "strategy")
RESOLVER_PATH: tuple[PathPart, ...] = ("coordination", "conflict_resolution")


class Extensions:
    """One workflow's custom strategy and resolver (``None`` when built in)."""

    def __init__(self, draft: Draft):
        self.wf, self.p, self.settings = draft.wf, draft.problems, draft.settings
        self.strategy = self._load("strategy", self.wf.scheduling.strategy, STRATEGY_PATH)
        self.resolver = self._load("resolver", self.wf.coordination.conflict_resolution, RESOLVER_PATH)

    @property
    def custom(self) -> bool:
        return self.strategy is not None or self.resolver is not None

    def _load(self, kind: str, name: str, path: tuple[PathPart, ...]) -> Any:
        if extensions.is_builtin(kind, name):
            return None
        try:  # registration was checked by the models; here: allowed modules, loading, type
            return extensions.load(kind, name, self.settings)
        except extensions.ExtensionError as exc:
            self.p.add(path, str(exc), code="extension")
            return None

    def monitors(self) -> list[str]:
        """``workflow.monitors`` checked: each loads, none is listed twice."""
        names: list[str] = []
        for i, name in enumerate(self.wf.workflow.monitors):
            if name in names:
                self.p.add(("workflow", "monitors", i), f"monitor {name!r} is listed twice", code="duplicate_monitor")
            elif self._load("monitor", name, ("workflow", "monitors", i)) is not None:
                names.append(name)
        return names

    def context(self, bonus: dict[str, int]) -> extensions.PlanContext:
        wf = self.wf
        return extensions.PlanContext(
            workflow=wf.workflow.name, mode=wf.orchestration.mode, priority_levels=wf.scheduling.priority_levels,
            queues=tuple(wf.scheduling.queues), strategy=wf.scheduling.strategy,
            conflict_resolution=wf.coordination.conflict_resolution, resolver_bonus=dict(bonus))

    def fail(self, kind: str, what: str, exc: BaseException) -> None:
        path = STRATEGY_PATH if kind == "strategy" else RESOLVER_PATH
        self.p.add(path, f"{kind} {what} failed: {type(exc).__name__}: {exc}", code="extension")


def task_infos(draft: Draft) -> list[extensions.TaskInfo]:
    """What a strategy or resolver learns about each task, in topological order."""
    return [extensions.TaskInfo(
        task_id=t.task_id, level=t.level[0], level_name=t.level[1], critical_path=t.critical_path, cost=t.cost,
        queue=t.fields.get("queue"), upstream=tuple(t.upstream), resource=t.resource, position=i)
        for i, t in enumerate(draft.ordered())]


def resolver_votes(ext: Extensions, infos: list[extensions.TaskInfo]) -> dict[str, int]:
    """The conflict resolution rule's vote per task (0..99): seeded for ``random``, a custom resolver's order."""
    name = ext.wf.coordination.conflict_resolution
    if ext.resolver is None:  # only `random` votes among the built-in rules
        return {t.task_id: priorities.builtin_vote(name, ext.wf.workflow.name, t.task_id)
                for t in infos} if name == "random" else {}
    bonus: dict[str, int] = {}
    context = ext.context({})
    for group in extensions.tie_groups(infos, ext.wf.orchestration.mode):
        ids = [t.task_id for t in group]
        try:
            ordered = [str(x) for x in ext.resolver.order(group, context)]
        except Exception as exc:
            ext.fail("resolver", repr(name), exc)
            return {}
        if sorted(ordered) != sorted(ids):
            ext.p.add(RESOLVER_PATH, f"resolver {name!r} returned {ordered} for the tied tasks {ids}",
                      "each of the given task ids exactly once", code="extension")
            return {}
        bonus.update(extensions.bonus_from_order(ordered))
    return bonus


def _take_strategy_answer(ext: Extensions, t: TaskDraft, tie: Any, queue: Any) -> int | None:
    """One task's tie-break from a custom strategy (and its queue into ``t``), or None if out of range."""
    name, queues = ext.wf.scheduling.strategy, ext.wf.scheduling.queues
    if isinstance(tie, bool) or not isinstance(tie, int) or not 0 <= tie <= extensions.TIE_BREAK_MAX:
        ext.p.add(STRATEGY_PATH, f"strategy {name!r} gave task {t.task_id!r} the tie-break {tie!r}",
                  f"an integer 0..{extensions.TIE_BREAK_MAX:,} for every task (a higher level "
                  "must always outweigh a lower one)", code="extension")
        return None
    if t.fields.get("queue") is None:
        if queue is not None and queue not in queues:
            ext.p.add(STRATEGY_PATH, f"strategy {name!r} put task {t.task_id!r} on queue {queue!r}, "
                                     "which is not in scheduling.queues", f"one of {', '.join(queues)}",
                      code="extension")
            return tie
        t.queue = queue
    return tie


def tie_breaks(ext: Extensions, draft: Draft) -> dict[str, int]:
    """Tie-break per task (0..999,999); a custom strategy also sets the queues of the tasks it places."""
    infos = task_infos(draft)
    context = ext.context(resolver_votes(ext, infos))
    if ext.strategy is None:
        return {t.task_id: extensions.default_tie_break(t, context) for t in infos}
    ties: dict[str, int] = {t.task_id: 0 for t in infos}
    try:
        got = dict(ext.strategy.tie_breaks(infos, context))
        queues_got = dict(ext.strategy.assign_queues(infos, context))
    except Exception as exc:
        ext.fail("strategy", repr(ext.wf.scheduling.strategy), exc)
        return ties
    for t in draft.ordered():
        tie = _take_strategy_answer(ext, t, got.get(t.task_id), queues_got.get(t.task_id))
        if tie is not None:
            ties[t.task_id] = tie
    return ties
