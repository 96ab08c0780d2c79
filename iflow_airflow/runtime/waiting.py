"""Why is it waiting? Pure functions over plain rows (no Airflow, no database).

For every task instance of an active run that is not running (no state yet,
``scheduled``, ``queued``, ``deferred``, ``up_for_retry``, ``up_for_reschedule``),
:func:`explain` gives one reason in words and its kind, checked in the order
Airflow's scheduler applies its limits:

``upstream``        no state yet: upstream tasks of the same run are not done (named, with their states);
``resource``        scheduled, and its pool has fewer free slots than it needs: the holders
                    (task, workflow, priority level, since when) are listed;
``priority``        scheduled, the pool has room, but tasks of a higher weight wait for it first;
``max_concurrent``  scheduled, and its run already has ``max_concurrent_tasks`` running or queued;
``executor``        scheduled and every executor slot (``[core] parallelism``) is taken, or
                    ``queued``: handed to the executor, waiting for a worker on its queue;
``deferred``        waiting in the triggerer for its condition (the ``wait:`` of the file);
``retry``           waiting for its retry delay; ``reschedule``: for its next poke;
``scheduler``       nothing above holds it: the scheduler's next loop will take it.

Limits: the answer is what the database says at one moment (the scheduler may
change it a loop later); holders are the ``running``/``queued`` rows read, so a
pool used by non-iflow DAGs shows those too; "since" is the holder's
``queued_dttm`` (when it took the slot).

:func:`priority_inversions` counts, per pool, the grants of a slot (a task
``queued``) to a task of a lower priority level while a task of a strictly higher
level in the same pool was waiting for it (``scheduled`` before, still not
queued). Priority levels come from absolute weights (``weight // LEVEL_SPAN``,
the plan's bands). It is a sweep over the rows' wait intervals: O(n log n).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from iflow_airflow.constants import LEVEL_SPAN

NOT_RUNNING = ("none", "scheduled", "queued", "deferred", "up_for_retry", "up_for_reschedule")
HOLDING = frozenset({"running", "queued"})
DONE = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
MAX_HOLDERS = 5  # holders named per reason; the count says how many there are
#: Order of the answer: the limits people act on first, tasks merely behind their upstream last.
KIND_ORDER = ("resource", "priority", "max_concurrent", "executor", "deferred", "retry", "reschedule", "scheduler",
              "upstream")


class ActiveRow(NamedTuple):
    """A task instance that runs, holds a slot or waits (from every DAG: pools are shared)."""

    dag_id: str
    run_id: str
    task_id: str
    state: str | None
    pool: str | None
    pool_slots: int
    priority_weight: int | None
    queued_dttm: datetime | None = None
    start_date: datetime | None = None
    scheduled_dttm: datetime | None = None
    queue: str | None = None
    map_index: int = -1


class Context(NamedTuple):
    """What the reasons are measured against (all from the same read)."""

    pool_slots: Mapping[str, int]  # pool -> slots
    upstream: Mapping[str, Mapping[str, Sequence[str]]]  # dag_id -> task -> upstream task ids
    max_active: Mapping[str, int]  # dag_id -> max_concurrent_tasks (per run)
    parallelism: int | None = None  # executor slots ([core] parallelism); None: unknown
    level_names: Mapping[tuple[str, str], str] = {}  # (dag_id, task_id) -> "high", from the plans
    conditions: Mapping[tuple[str, str], str] = {}  # (dag_id, task_id) -> "file /data/x", for deferred tasks


def level(weight: int | None) -> int:
    """The priority level of an absolute weight (the plan's bands; 0 for none)."""
    return int(weight or 0) // LEVEL_SPAN


def _level_text(ctx: Context, dag_id: str, task_id: str, weight: int | None) -> str:
    name = ctx.level_names.get((dag_id, task_id))
    lv = level(weight)
    return f"{name} ({lv})" if name and name != str(lv) else f"level {lv}"


def _when(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t else None


def holder(ctx: Context, r: ActiveRow) -> dict[str, Any]:
    """One slot holder as the page shows it."""
    return {"task": r.task_id, "workflow": r.dag_id, "run_id": r.run_id, "state": r.state, "slots": r.pool_slots,
            "priority": _level_text(ctx, r.dag_id, r.task_id, r.priority_weight), "since": _when(r.queued_dttm)}


class _Index:
    """The active rows grouped the ways the rules ask (built once per page view)."""

    def __init__(self, active: Iterable[ActiveRow]) -> None:
        self.holders: dict[str, list[ActiveRow]] = defaultdict(list)
        self.waiting_by_pool: dict[str, list[ActiveRow]] = defaultdict(list)
        self.run_busy: dict[tuple[str, str], int] = defaultdict(int)
        self.busy = 0
        for r in active:
            state = r.state or "none"
            if state in HOLDING:
                self.busy += 1
                self.run_busy[(r.dag_id, r.run_id)] += 1
                if r.pool:
                    self.holders[r.pool].append(r)
            elif state == "scheduled" and r.pool:
                self.waiting_by_pool[r.pool].append(r)
        self._used = {pool: sum(r.pool_slots for r in rows) for pool, rows in self.holders.items()}
        for rows in self.holders.values():  # longest holder first
            rows.sort(key=lambda r: (r.queued_dttm is None, r.queued_dttm or 0))
        # per pool: waiting weights ascending, and the slots they need summed from the top (for "ahead")
        self._weights: dict[str, list[int]] = {}
        self._slots_above: dict[str, list[int]] = {}
        for pool, rows in self.waiting_by_pool.items():
            ordered = sorted(rows, key=lambda r: r.priority_weight or 0)
            self._weights[pool] = [r.priority_weight or 0 for r in ordered]
            acc, above = 0, [0] * (len(ordered) + 1)
            for i in range(len(ordered) - 1, -1, -1):
                acc += max(1, ordered[i].pool_slots)
                above[i] = acc
            self._slots_above[pool] = above

    def used(self, pool: str) -> int:
        return self._used.get(pool, 0)

    def ahead(self, pool: str, weight: int) -> tuple[int, int]:
        """(tasks waiting for ``pool`` with a higher weight, the slots they need)."""
        weights = self._weights.get(pool)
        if not weights:
            return 0, 0
        i = bisect.bisect_right(weights, weight)
        return len(weights) - i, self._slots_above[pool][i]


def _upstream_reason(ctx: Context, t: Any, states: Mapping[tuple[str, str, str], str | None]) -> dict[str, Any]:
    ups = ctx.upstream.get(t.dag_id, {}).get(t.task_id) or ()
    pending = [(u, states.get((t.dag_id, t.run_id, u)) or "none") for u in ups]
    pending = [(u, s) for u, s in pending if s not in DONE]
    if pending:
        names = ", ".join(f"{u} ({s})" for u, s in pending)
        return {"kind": "upstream", "reason": f"waiting for upstream task{'s' if len(pending) > 1 else ''} {names}",
                "upstream": [u for u, _ in pending]}
    return {"kind": "scheduler", "reason": "its upstream tasks are done: the scheduler's next loop will schedule it"}


def _resource_reason(ctx: Context, idx: _Index, t: Any) -> dict[str, Any] | None:
    slots = ctx.pool_slots.get(t.pool)
    if slots is None:
        return None
    used = idx.used(t.pool)
    need = max(1, int(t.pool_slots or 1))
    if slots - used < need:
        held = idx.holders.get(t.pool, [])
        names = "; ".join(f"{h.task_id} of {h.dag_id} ({_level_text(ctx, h.dag_id, h.task_id, h.priority_weight)},"
                          f" since {_when(h.queued_dttm) or '?'})" for h in held[:MAX_HOLDERS])
        more = f" and {len(held) - MAX_HOLDERS} more" if len(held) > MAX_HOLDERS else ""
        return {"kind": "resource", "resource": t.pool, "slots": slots, "used": used, "needs": need,
                "holders": [holder(ctx, h) for h in held[:MAX_HOLDERS]], "holder_count": len(held),
                "reason": f"waiting for resource {t.pool}: {used} of {slots} slot{'s' if slots != 1 else ''} "
                          f"taken (needs {need}), held by {names or 'nobody it can see'}{more}"}
    ahead, ahead_slots = idx.ahead(t.pool, t.priority_weight or 0)
    if ahead and slots - used < need + ahead_slots:
        return {"kind": "priority", "resource": t.pool, "ahead": ahead,
                "reason": f"waiting behind {ahead} higher-priority task{'s' if ahead > 1 else ''} "
                          f"for resource {t.pool} ({slots - used} free slot{'s' if slots - used != 1 else ''})"}
    return None


def _scheduled_reason(ctx: Context, idx: _Index, t: Any) -> dict[str, Any]:
    if t.pool:
        found = _resource_reason(ctx, idx, t)
        if found is not None:
            return found
    cap = ctx.max_active.get(t.dag_id)
    busy = idx.run_busy.get((t.dag_id, t.run_id), 0)
    if cap is not None and busy >= cap:
        return {"kind": "max_concurrent", "limit": cap, "busy": busy,
                "reason": f"waiting for max_concurrent_tasks: {busy} of {cap} tasks of this run are running or queued"}
    if ctx.parallelism is not None and idx.busy >= ctx.parallelism:
        return {"kind": "executor", "limit": ctx.parallelism, "busy": idx.busy,
                "reason": f"waiting for executor slots: {idx.busy} of {ctx.parallelism} ([core] parallelism) taken"}
    return {"kind": "scheduler", "reason": "scheduled: the scheduler's next loop will queue it"}


def reason(ctx: Context, idx: _Index, t: Any, states: Mapping[tuple[str, str, str], str | None]) -> dict[str, Any]:
    """The reason one not-running task instance waits (see the module docs)."""
    state = t.state or "none"
    if state == "none":
        return _upstream_reason(ctx, t, states)
    if state == "scheduled":
        return _scheduled_reason(ctx, idx, t)
    if state == "queued":
        queue = getattr(t, "queue", None)
        return {"kind": "executor", "reason": f"queued since {_when(t.queued_dttm) or '?'}: the executor has it, "
                                              f"waiting for a free worker{f' on queue {queue}' if queue else ''}"}
    if state == "deferred":
        cond = ctx.conditions.get((t.dag_id, t.task_id))
        return {"kind": "deferred", "reason": "deferred: waiting in the triggerer for "
                                              + (cond or "its condition")}
    if state == "up_for_retry":
        return {"kind": "retry", "reason": "failed a try; waiting for its retry delay"}
    return {"kind": "reschedule", "reason": "waiting for its next poke (rescheduled)"}


def explain(tis: Sequence[Any], active: Sequence[ActiveRow], ctx: Context,
            active_runs: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every not-running task instance of ``active_runs`` ((dag_id, run_id)) with its reason, in
    :data:`KIND_ORDER` (then workflow, run, task).

    ``tis`` are the task rows of those runs (anything with dag_id, run_id, task_id, state,
    pool, pool_slots, priority_weight, queued_dttm); ``active`` the running/queued/scheduled
    rows of every DAG.
    """
    runs = set(active_runs)
    idx = _Index(active)
    mine = [t for t in tis if (t.dag_id, t.run_id) in runs]
    states = {(t.dag_id, t.run_id, t.task_id): t.state for t in mine}
    out = []
    for t in mine:
        if (t.state or "none") not in NOT_RUNNING:
            continue
        out.append({"workflow": t.dag_id, "run_id": t.run_id, "task_id": t.task_id, "state": t.state or "none",
                    "priority": _level_text(ctx, t.dag_id, t.task_id, t.priority_weight),
                    **reason(ctx, idx, t, states)})
    rank = {k: i for i, k in enumerate(KIND_ORDER)}
    out.sort(key=lambda w: (rank.get(w["kind"], len(rank)), w["workflow"], w["run_id"], w["task_id"]))
    return out


def priority_inversions(rows: Iterable[Any]) -> dict[str, int]:
    """Per pool: slot grants to a lower level while a strictly higher level waited (module docs)."""
    by_pool: dict[str, list[tuple[datetime, datetime | None, int]]] = defaultdict(list)
    for r in rows:
        if r.pool and r.scheduled_dttm is not None and (r.queued_dttm is None or r.queued_dttm >= r.scheduled_dttm):
            by_pool[r.pool].append((r.scheduled_dttm, r.queued_dttm, level(r.priority_weight)))
    return {pool: _sweep(items) for pool, items in sorted(by_pool.items())}


def _sweep(items: list[tuple[datetime, datetime | None, int]]) -> int:
    """Count grants at which a higher level was waiting: events in time order, ends before checks before
    starts at one instant (tasks queued in the same loop were not waiting for each other)."""
    events: list[tuple[datetime, int, int]] = []  # (time, order, level): 0 = stop waiting, 1 = grant, 2 = start
    for sched, queued, lv in items:
        if queued is not None:
            events.append((queued, 1, lv))
            if queued == sched:  # queued in the loop that scheduled it: never waited
                continue
            events.append((queued, 0, lv))
        events.append((sched, 2, lv))
    events.sort(key=lambda e: (e[0], e[1]))
    waiting: dict[int, int] = defaultdict(int)
    count = 0
    for _, kind, lv in events:
        if kind == 2:
            waiting[lv] += 1
        elif kind == 0:
            waiting[lv] -= 1
        elif any(n > 0 and w > lv for w, n in waiting.items()):
            count += 1
    return count
