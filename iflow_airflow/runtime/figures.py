"""The figures of the iflow page: pure functions over plain rows (no Airflow, no database).

``summary.py`` reads the rows from Airflow's metadata database and calls these;
the tests call them with fixed rows and hand-computed answers. All durations are
seconds (floats rounded to milliseconds); percentiles use the *nearest-rank*
method (p of n sorted values is the ceil(p/100*n)-th), so every figure is one of
the observed values.

Per workflow, over the runs given (the page passes the last N runs):

* ``runs`` - how many, by state; ``in_progress`` - queued/running runs with
  ``done``/``total`` task instances and ``progress`` = done/total (done = success,
  failed, skipped, upstream_failed or removed; total = the run's task instances,
  or the plan's task count if more are planned than created yet);
  ``latest_run`` - the same for the newest run, whatever its state.
* ``completion_rate`` - successful runs / finished (success + failed) runs.
* ``scheduling_latency`` - per task instance ``start_date - queued_dttm``: how long
  a task waited for a worker after the scheduler queued it.
* ``sync_delay`` - per task instance with upstream tasks (from the plan): its
  ``start_date`` minus the latest ``end_date`` of its upstream task instances in the
  same run: the coordination overhead between a dependency finishing and the
  dependant starting (clamped at 0).
* ``resource_wait`` - per task instance in a resource pool (``pool`` is not
  ``default_pool``): ``queued_dttm - scheduled_dttm``. The scheduler queues a task
  only when its pool has a free slot, so this is the time spent waiting for the
  resource (plus at most one scheduler loop). Worker wait is in the latency above.
* ``retries`` - sum over task instances of ``try_number - 1`` (tries beyond the first).
* ``throughput`` - finished (success or failed) task instances per minute between
  the first start and the last end among them, given only when that span is at least
  :data:`THROUGHPUT_MIN_SPAN` (a minute): one 0.3 s task is not "200 tasks/min".
  ``finished_tasks`` and ``finished_span`` (seconds) are always given, so a short
  span reads "2 tasks in 0.6 s".
* ``total_time`` - ``last`` finished run's ``end_date - start_date`` and the ``mean``
  over the finished runs.
* ``concurrency`` - the most task instances running at the same moment (intervals
  ``[start, end)``, a running one ends "now").

Per resource (pool): ``slots``, ``busy`` (occupied slots: running + queued, by
``pool_slots``), ``busy_share`` = busy / slots, ``waiting`` (task instances in state
``scheduled``), ``saturated`` = busy_share > load_threshold while tasks wait (the
instantaneous test; the keeper's alert needs it on two ticks in a row).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from iflow_airflow.constants import DEFAULT_LOAD_THRESHOLD

DONE_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
FINISHED_TASK_STATES = frozenset({"success", "failed"})
ACTIVE_RUN_STATES = frozenset({"queued", "running"})
FINISHED_RUN_STATES = frozenset({"success", "failed"})
DEFAULT_POOL = "default_pool"


class TaskRow(NamedTuple):  # a tuple: 10,000 of them are built per page view
    dag_id: str
    run_id: str
    task_id: str
    state: str | None
    queued_dttm: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    try_number: int
    pool: str | None
    pool_slots: int
    priority_weight: int | None
    scheduled_dttm: datetime | None = None
    map_index: int = -1


class RunRow(NamedTuple):
    dag_id: str
    run_id: str
    state: str | None
    start_date: datetime | None
    end_date: datetime | None
    queued_at: datetime | None = None
    run_after: datetime | None = None
    run_type: str | None = None


@dataclass(frozen=True)
class PoolRow:
    name: str
    slots: int
    busy: int = 0  # occupied slots (running + queued, by pool_slots)
    waiting: int = 0  # task instances in state scheduled
    running: int = 0
    queued: int = 0
    description: str | None = None


# --- small pieces ---------------------------------------------------------------


#: Shortest span (seconds) of finished task instances over which a per-minute rate is given.
THROUGHPUT_MIN_SPAN = 60.0


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def seconds(a: datetime | None, b: datetime | None) -> float | None:
    """``b - a`` in seconds, or None when either is missing."""
    if a is None or b is None:
        return None
    return (b - a).total_seconds()


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the ceil(p/100*n)-th smallest value (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(k, len(ordered)) - 1]


def distribution(values: Iterable[float | None]) -> dict[str, Any]:
    """``{count, p50, p95, max}`` of the non-None values (seconds)."""
    vals = [v for v in values if v is not None]
    return {"count": len(vals), "p50": _r(percentile(vals, 50)), "p95": _r(percentile(vals, 95)),
            "max": _r(max(vals) if vals else None)}


def max_concurrency(intervals: Iterable[tuple[datetime | None, datetime | None]], now: datetime) -> int:
    """Most intervals ``[start, end)`` open at once; ``end`` None means still open at ``now``."""
    events: list[tuple[datetime, int]] = []
    for start, end in intervals:
        if start is None:
            continue
        end = end or now
        if end <= start:
            continue
        events.append((start, 1))
        events.append((end, -1))
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def run_progress(run: RunRow, tis: Sequence[TaskRow], total_tasks: int | None = None) -> dict[str, Any]:
    """Done/total of one run (see the module docs)."""
    by_state: dict[str, int] = defaultdict(int)
    for t in tis:
        by_state[t.state or "none"] += 1
    done = sum(n for s, n in by_state.items() if s in DONE_STATES)
    total = max(len(tis), total_tasks or 0)
    return {
        "run_id": run.run_id,
        "state": run.state,
        "start_date": run.start_date.isoformat() if run.start_date else None,
        "done": done,
        "total": total,
        "progress": round(done / total, 3) if total else 0.0,
        "running": by_state.get("running", 0),
        "failed": by_state.get("failed", 0) + by_state.get("upstream_failed", 0),
        "states": dict(sorted(by_state.items())),
    }


def sync_delays(tis: Sequence[TaskRow], upstream: Mapping[str, Sequence[str]]) -> list[float]:
    """Per task instance with upstream tasks: start minus the latest upstream end, same run (>= 0)."""
    by_key: dict[tuple[str, str], TaskRow] = {}
    for t in tis:
        if t.map_index in (-1, 0) or (t.run_id, t.task_id) not in by_key:
            by_key[(t.run_id, t.task_id)] = t
    out: list[float] = []
    for t in tis:
        ups = upstream.get(t.task_id) or ()
        if not ups or t.start_date is None:
            continue
        ends = []
        for u in ups:
            row = by_key.get((t.run_id, u))
            if row is None or row.end_date is None:
                ends = []
                break
            ends.append(row.end_date)
        if ends:
            out.append(max(0.0, (t.start_date - max(ends)).total_seconds()))
    return out


def workflow_figures(name: str, runs: Sequence[RunRow], tis: Sequence[TaskRow], *, now: datetime,
                     upstream: Mapping[str, Sequence[str]] | None = None,
                     total_tasks: int | None = None) -> dict[str, Any]:
    """Every per-workflow figure (see the module docs) over ``runs`` and their ``tis``."""
    tis_by_run: dict[str, list[TaskRow]] = defaultdict(list)
    for t in tis:
        tis_by_run[t.run_id].append(t)
    runs_by_state: dict[str, int] = defaultdict(int)
    for r in runs:
        runs_by_state[r.state or "none"] += 1
    ordered = sorted(runs, key=lambda r: (r.start_date or r.queued_at or r.run_after or now), reverse=True)
    in_progress = [run_progress(r, tis_by_run.get(r.run_id, []), total_tasks)
                   for r in ordered if r.state in ACTIVE_RUN_STATES]
    finished = [r for r in ordered if r.state in FINISHED_RUN_STATES]
    succeeded = sum(1 for r in finished if r.state == "success")
    durations = [d for d in (seconds(r.start_date, r.end_date) for r in finished) if d is not None]
    last_duration = next((seconds(r.start_date, r.end_date) for r in finished
                          if seconds(r.start_date, r.end_date) is not None), None)

    latency = [seconds(t.queued_dttm, t.start_date) for t in tis]
    resource_wait = [seconds(t.scheduled_dttm, t.queued_dttm) for t in tis
                     if t.pool and t.pool != DEFAULT_POOL]
    done_tis = [t for t in tis if t.state in FINISHED_TASK_STATES and t.start_date and t.end_date]
    throughput, span = None, None
    if done_tis:
        span = (max(t.end_date for t in done_tis) - min(t.start_date for t in done_tis)).total_seconds()  # type: ignore
        throughput = _r(len(done_tis) / (span / 60.0)) if span >= THROUGHPUT_MIN_SPAN else None
    return {
        "name": name,
        "runs": {"total": len(runs), "by_state": dict(sorted(runs_by_state.items()))},
        "in_progress": in_progress,
        "latest_run": run_progress(ordered[0], tis_by_run.get(ordered[0].run_id, []), total_tasks) if ordered
        else None,
        "completion_rate": _r(succeeded / len(finished)) if finished else None,
        "scheduling_latency": distribution(latency),
        "sync_delay": distribution(sync_delays(tis, upstream or {})),
        "resource_wait": distribution(resource_wait),
        "retries": sum(max(0, (t.try_number or 0) - 1) for t in tis),
        "throughput_per_min": throughput,
        "finished_tasks": len(done_tis),
        "finished_span": _r(span),
        "total_time": {"last": _r(last_duration),
                       "mean": _r(sum(durations) / len(durations)) if durations else None},
        "concurrency": max_concurrency(((t.start_date, t.end_date) for t in tis if t.state != "removed"), now),
        "task_instances": len(tis),
    }


def resource_figures(pool: PoolRow, *, threshold: float = DEFAULT_LOAD_THRESHOLD, resource: str | None = None,
                     declared_slots: int | None = None, max_slots: int | None = None,
                     workflows: Sequence[str] = ()) -> dict[str, Any]:
    """The figures of one pool (see the module docs)."""
    share = pool.busy / pool.slots if pool.slots > 0 else (1.0 if pool.busy else 0.0)
    return {
        "pool": pool.name,
        "resource": resource,
        "slots": pool.slots,
        "declared_slots": declared_slots,
        "max_slots": max_slots,
        "busy": pool.busy,
        "busy_share": _r(share),
        "running": pool.running,
        "queued": pool.queued,
        "waiting": pool.waiting,
        "threshold": threshold,
        "saturated": bool(pool.waiting > 0 and share > threshold),
        "workflows": list(workflows),
    }


def timeline(run: RunRow, tis: Sequence[TaskRow], *, now: datetime,
             order: Sequence[str] | None = None) -> dict[str, Any]:
    """One run's task instances as bars: offsets in seconds from the run's start.

    ``queued``/``start``/``end`` are offsets (``end`` of a running task is "now");
    rows follow ``order`` (the plan's topological order), then start time.
    """
    times = [x for t in tis for x in (t.queued_dttm, t.start_date) if x is not None]
    origin = run.start_date or (min(times) if times else None)
    rank = {tid: i for i, tid in enumerate(order or ())}
    bars = []
    for t in tis:
        end = t.end_date or (now if t.state == "running" and t.start_date else None)
        bars.append({
            "task_id": t.task_id,
            "state": t.state,
            "try_number": t.try_number,
            "pool": t.pool,
            "queued": _r(seconds(origin, t.queued_dttm)) if origin else None,
            "start": _r(seconds(origin, t.start_date)) if origin else None,
            "end": _r(seconds(origin, end)) if origin else None,
        })
    bars.sort(key=lambda b: (rank.get(b["task_id"], len(rank)),
                             b["start"] if b["start"] is not None else math.inf, b["task_id"]))
    ends = [b["end"] for b in bars if b["end"] is not None]
    span = max(ends) if ends else 0.0
    if run.end_date and origin:
        span = max(span, seconds(origin, run.end_date) or 0.0)
    return {"run_id": run.run_id, "state": run.state,
            "start_date": origin.isoformat() if origin else None, "span": _r(span), "bars": bars}
