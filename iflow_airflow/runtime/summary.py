"""The iflow page's data: Airflow's metadata database -> plain rows -> ``figures``.

:func:`workflows_summary` is what ``GET /iflow/api/workflows`` answers; it reads
with a fixed number of queries whatever the number of workflows:

1. iflow DAGs (``dag`` joined with ``dag_tag`` = ``iflow``);
2. their last ``runs_per_workflow`` runs (``row_number()`` over ``dag_id``);
3. the task instances of exactly those runs (one join);
4. all pools;
5. the pools' task instance counts by state (running/queued/scheduled/deferred);
6. the task instances of every DAG that run, hold a slot or wait for one
   (running/queued/scheduled, at most ``MAX_ACTIVE_ROWS``): who holds a resource,
   for "why is it waiting?" (``waiting.py``).

Dependencies, planned task counts, resource declarations and thresholds come
from the plans (the dags folder compiled in this process, recompiled only when a
YAML file changed); without a readable dags folder the figures that need them
(sync delay, planned totals, declared slots) are simply missing.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from iflow_airflow.plan.ir import WorkflowPlan
from iflow_airflow.runtime import deadlines, waiting
from iflow_airflow.runtime import figures as fig
from iflow_airflow.runtime.pools import MANAGED_MARK, POOL_STATES, pool_usage

log = logging.getLogger(__name__)

from iflow_airflow.constants import DEFAULT_LOAD_THRESHOLD, IFLOW_TAG  # noqa: E402

RUNS_PER_WORKFLOW = 20
MAX_ACTIVE_ROWS = 5000
DEFAULT_THRESHOLD = DEFAULT_LOAD_THRESHOLD

_scanner_lock = threading.Lock()
_scanner: Any = None


def current_plans() -> dict[str, WorkflowPlan]:
    """Plans of the dags folder of this process's Airflow configuration (cached; {} on any error)."""
    global _scanner
    try:
        from iflow_airflow.build import registry
        from iflow_airflow.runtime import keeper as resource_keeper

        keeper = resource_keeper.current()
        if keeper is not None and keeper.plans:
            return dict(keeper.plans)
        with _scanner_lock:
            if _scanner is None:
                from airflow.configuration import conf

                from iflow_airflow.plan import cache as plan_cache
                from iflow_airflow.runtime.pools import FolderScanner

                _scanner = FolderScanner(Path(conf.get("core", "dags_folder")), cache=plan_cache.from_config())
            results, _ = _scanner.scan()
        plans = {c.plan.dag_id: c.plan for c in results if c.plan is not None}
        for dag_id, plan in registry.registered().items():
            plans.setdefault(dag_id, plan)
        return plans
    except Exception:
        log.exception("iflow: could not read the workflow files for the iflow page")
        return {}


def _s(v: Any) -> str | None:
    return None if v is None else str(getattr(v, "value", v))


_UTC = timezone.utc


def _dt(v: Any) -> datetime | None:
    """A timestamp as the driver returned it (see ``_raw``) -> aware UTC datetime."""
    if v is None:
        return None
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    return v if v.tzinfo is not None else v.replace(tzinfo=_UTC)


def _raw(col: Any) -> Any:
    """``col`` without Airflow's UtcDateTime result processing (SQLite: a string; PostgreSQL/MySQL:
    the driver's datetime); ``_dt`` finishes the job several times faster for 10,000 rows."""
    from sqlalchemy import String, type_coerce

    return type_coerce(col, String).label(col.key)


def _task_rows(rows: list[Any]) -> list[fig.TaskRow]:
    """Raw task instance rows -> ``TaskRow``; timestamps converted inline (no call per value: 40,000
    of them for 10,000 task instances)."""
    make, U, P = fig.TaskRow._make, _UTC, datetime.fromisoformat
    sample = next((v for r in rows[:50] for v in (r[4], r[5], r[6], r[11]) if v is not None), None)
    try:
        if isinstance(sample, str):  # SQLite: naive UTC text
            return [make((d, r, t, x, P(q).replace(tzinfo=U) if q else None, P(st).replace(tzinfo=U) if st else None,
                          P(en).replace(tzinfo=U) if en else None, tn, p, ps, pw,
                          P(sc).replace(tzinfo=U) if sc else None, mi))
                    for d, r, t, x, q, st, en, tn, p, ps, pw, sc, mi in rows]
        if sample is None or (isinstance(sample, datetime) and sample.tzinfo is not None):  # PostgreSQL
            return [make((d, r, t, x, q, st, en, tn, p, ps, pw, sc, mi))
                    for d, r, t, x, q, st, en, tn, p, ps, pw, sc, mi in rows]
    except (TypeError, ValueError, AttributeError):
        pass
    return [make((d, r, t, x, _dt(q), _dt(st), _dt(en), tn, p, ps, pw, _dt(sc), mi))  # anything else, one by one
            for d, r, t, x, q, st, en, tn, p, ps, pw, sc, mi in rows]


# --- queries ----------------------------------------------------------------------


def read_rows(session: Any, *, runs_per_workflow: int = RUNS_PER_WORKFLOW, dag_ids: Iterable[str] | None = None,
              only_dag: str | None = None) -> dict[str, Any]:
    """The raw rows the figures need (five queries, see the module docs)."""
    from airflow.models.dag import DagModel, DagTag
    from airflow.models.dagrun import DagRun
    from airflow.models.pool import Pool
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import and_, func, select

    stmt = (select(DagModel.dag_id, DagModel.is_paused, DagModel.is_stale, DagModel.description,
                   DagModel.max_active_tasks)
            .join(DagTag, DagTag.dag_id == DagModel.dag_id).where(DagTag.name == IFLOW_TAG))
    if only_dag is not None:
        stmt = stmt.where(DagModel.dag_id == only_dag)
    dags = {d: {"paused": bool(p), "stale": bool(st), "description": desc, "max_active_tasks": mat}
            for d, p, st, desc, mat in session.execute(stmt).all()}
    if dag_ids is not None:
        allowed = set(dag_ids)
        dags = {k: v for k, v in dags.items() if k in allowed}

    runs: list[fig.RunRow] = []
    tis: list[fig.TaskRow] = []
    if dags:
        rn = func.row_number().over(partition_by=DagRun.dag_id, order_by=DagRun.id.desc()).label("rn")
        ranked = (select(DagRun.dag_id, DagRun.run_id, DagRun._state, DagRun.start_date, DagRun.end_date,
                         DagRun.queued_at, DagRun.run_after, DagRun.run_type, rn)
                  .where(DagRun.dag_id.in_(list(dags))).subquery())
        for r in session.execute(select(ranked).where(ranked.c.rn <= runs_per_workflow)).all():
            runs.append(fig.RunRow(r.dag_id, r.run_id, _s(r[2]), r.start_date, r.end_date, r.queued_at,
                                   r.run_after, _s(r.run_type)))
        ti_stmt = (select(TI.dag_id, TI.run_id, TI.task_id, TI.state, _raw(TI.queued_dttm), _raw(TI.start_date),
                          _raw(TI.end_date), TI.try_number, TI.pool, TI.pool_slots, TI.priority_weight,
                          _raw(TI.scheduled_dttm), TI.map_index)
                   .join(ranked, and_(TI.dag_id == ranked.c.dag_id, TI.run_id == ranked.c.run_id))
                   .where(ranked.c.rn <= runs_per_workflow))
        tis = _task_rows(session.execute(ti_stmt).all())

    pools = {name: {"slots": int(slots), "include_deferred": bool(deferred), "description": desc or ""}
             for name, slots, deferred, desc in session.execute(
                 select(Pool.pool, Pool.slots, Pool.include_deferred, Pool.description)).all()}
    usage = pool_usage(session.execute(
        select(TI.pool, TI.state, func.count(), func.sum(TI.pool_slots))
        .where(TI.state.in_(POOL_STATES)).group_by(TI.pool, TI.state)).all(),
        {name: p["include_deferred"] for name, p in pools.items()})
    return {"dags": dags, "runs": runs, "tis": tis, "pools": pools, "usage": usage,
            "active": read_active(session)}


def read_active(session: Any) -> list[waiting.ActiveRow]:
    """Query 6: the running, queued and scheduled task instances of every DAG (at most MAX_ACTIVE_ROWS)."""
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select

    rows = session.execute(
        select(TI.dag_id, TI.run_id, TI.task_id, TI.state, TI.pool, TI.pool_slots, TI.priority_weight,
               TI.queued_dttm, TI.start_date, TI.scheduled_dttm, TI.queue, TI.map_index)
        .where(TI.state.in_(["running", "queued", "scheduled"])).limit(MAX_ACTIVE_ROWS)).all()
    return [waiting.ActiveRow(*r)._replace(state=_s(r[3])) for r in rows]


# --- figures ----------------------------------------------------------------------


def _featured_run(runs: list[fig.RunRow]) -> fig.RunRow | None:
    """The run whose timeline is shown: the newest running/queued one, else the newest."""
    if not runs:
        return None
    oldest = datetime.min.replace(tzinfo=timezone.utc)

    def key(r: fig.RunRow) -> datetime:
        return r.start_date or r.queued_at or r.run_after or oldest

    active = [r for r in runs if r.state in fig.ACTIVE_RUN_STATES and r.start_date is not None]
    return max(active, key=key) if active else max(runs, key=key)


def _upstream(plan: WorkflowPlan | None) -> dict[str, tuple[str, ...]]:
    return {t.task_id: tuple(t.upstream) for t in plan.tasks} if plan else {}


def _condition(action: Any) -> str | None:
    """A ``wait:`` action in words (what a deferred task waits for)."""
    if getattr(action, "kind", None) != "wait":
        return None
    if action.file:
        return f"file {action.file}"
    if action.url:
        return f"an HTTP 2xx from {action.url}"
    if action.until:
        return f"the time {action.until.isoformat()}"
    return f"task {action.task} of workflow {action.workflow}"


def _parallelism() -> int | None:
    try:
        from airflow.configuration import conf

        return conf.getint("core", "parallelism")
    except Exception:
        return None


def waiting_context(rows: Mapping[str, Any], plans: Mapping[str, WorkflowPlan]) -> waiting.Context:
    """What ``waiting.explain`` measures against, from the rows and the plans."""
    max_active = {d: int(m["max_active_tasks"]) for d, m in rows["dags"].items() if m.get("max_active_tasks")}
    max_active.update({d: p.max_active_tasks for d, p in plans.items()})
    return waiting.Context(
        pool_slots={name: info["slots"] for name, info in rows["pools"].items()},
        upstream={d: _upstream(p) for d, p in plans.items()}, max_active=max_active, parallelism=_parallelism(),
        level_names={(d, t.task_id): t.level_name for d, p in plans.items() for t in p.tasks},
        conditions={(d, t.task_id): c for d, p in plans.items() for t in p.tasks
                    if (c := _condition(t.action)) is not None})


def waiting_by_workflow(rows: Mapping[str, Any], plans: Mapping[str, WorkflowPlan]) -> dict[str, list[dict]]:
    """"Why is it waiting?" for every not-running task of every active run read, by workflow."""
    active_runs = [(r.dag_id, r.run_id) for r in rows["runs"] if r.state in fig.ACTIVE_RUN_STATES]
    out: dict[str, list[dict]] = defaultdict(list)
    if active_runs:
        for w in waiting.explain(rows["tis"], rows["active"], waiting_context(rows, plans), active_runs):
            out[w["workflow"]].append(w)
    return out


def _inversion_rows(rows: Mapping[str, Any], pools: set[str]) -> list[Any]:
    """The task rows read (recent runs) and the active rows of every DAG in ``pools``, each once."""
    mine = [t for t in rows["tis"] if t.pool in pools]
    known = {(t.dag_id, t.run_id, t.task_id, t.map_index) for t in mine}
    return mine + [t for t in rows["active"] if t.pool in pools
                   and (t.dag_id, t.run_id, t.task_id, t.map_index) not in known]


def resources_summary(rows: Mapping[str, Any], plans: Mapping[str, WorkflowPlan]) -> list[dict[str, Any]]:
    """Figures of every pool an iflow plan uses or iflow manages, by pool name."""
    declared: dict[str, Any] = {}
    users: dict[str, set[str]] = defaultdict(set)
    thresholds: dict[str, list[float]] = defaultdict(list)
    for plan in plans.values():
        for r in plan.resources.values():
            declared.setdefault(r.pool, r)
        for t in plan.tasks:
            if t.pool:
                users[t.pool].add(plan.dag_id)
                thresholds[t.pool].append(plan.settings.load_threshold)
    names = {p for p, info in rows["pools"].items() if info["description"].startswith(MANAGED_MARK)} | set(users)
    inversions = waiting.priority_inversions(_inversion_rows(rows, names))
    out = []
    for name in sorted(names):
        info = rows["pools"].get(name)
        u = rows["usage"].get(name, {})
        r = declared.get(name)
        pool = fig.PoolRow(name, info["slots"] if info else 0, busy=u.get("busy", 0), waiting=u.get("waiting", 0),
                           running=u.get("running", 0), queued=u.get("queued", 0),
                           description=info["description"] if info else None)
        f = fig.resource_figures(pool, threshold=min(thresholds.get(name) or [DEFAULT_THRESHOLD]),
                                 resource=r.name if r else None, declared_slots=r.slots if r else None,
                                 max_slots=r.max_slots if r else None, workflows=sorted(users.get(name, ())))
        f["exists"] = info is not None
        f["priority_inversions"] = inversions.get(name, 0)
        out.append(f)
    return out


def _mark_late(f: dict[str, Any], runs: list[fig.RunRow], plan: WorkflowPlan | None, now: datetime) -> None:
    """Each run in progress gets ``deadline`` facts (``late``: past its deadline); ``late_runs`` counts them."""
    deadline = plan.alerts.deadline if plan else None
    by_id = {r.run_id: r for r in runs}
    for entry in f["in_progress"]:
        r = by_id.get(entry["run_id"])
        entry["deadline"] = deadlines.lateness(r.start_date, None, deadline, now) if r else None
    f["deadline"] = deadlines.format_duration(deadline) if deadline else None
    f["late_runs"] = sum(1 for e in f["in_progress"] if (e["deadline"] or {}).get("late"))


def _workflow(name: str, meta: Mapping[str, Any], runs: list[fig.RunRow], tis: list[fig.TaskRow],
              plan: WorkflowPlan | None, now: datetime, run_id: str | None = None,
              waits: list[dict] | None = None) -> dict[str, Any]:
    f = fig.workflow_figures(name, runs, tis, now=now, upstream=_upstream(plan),
                             total_tasks=len(plan.tasks) if plan else None)
    _mark_late(f, runs, plan, now)
    f["waiting"] = waits or []
    featured = next((r for r in runs if r.run_id == run_id), None) if run_id else _featured_run(runs)
    if featured is not None:
        order = [t.task_id for t in plan.tasks] if plan else None
        f["timeline"] = fig.timeline(featured, [t for t in tis if t.run_id == featured.run_id], now=now, order=order)
    else:
        f["timeline"] = None
    f.update(
        description=(plan.description if plan else None) or meta.get("description"),
        paused=meta.get("paused"),
        stale=meta.get("stale"),
        planned_tasks=len(plan.tasks) if plan else None,
        resources=sorted({t.pool for t in plan.tasks if t.pool} if plan
                         else {t.pool for t in tis if t.pool and t.pool != fig.DEFAULT_POOL}),
        strategy=plan.settings.strategy if plan else None,
        load_threshold=plan.settings.load_threshold if plan else None,
        alerts={"webhook": bool(plan.alerts.webhook), "channels": list(plan.alerts.channels),
                "events": list(plan.alerts.events)} if plan else None,
    )
    return f


def workflows_summary(session: Any, *, runs_per_workflow: int = RUNS_PER_WORKFLOW, now: datetime | None = None,
                      plans: Mapping[str, WorkflowPlan] | None = None,
                      dag_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """Every iflow workflow with its figures, and every iflow resource (``GET /iflow/api/workflows``).

    ``dag_ids`` limits the answer to DAGs the caller may read; ``plans`` defaults to
    :func:`current_plans`.
    """
    now = now or datetime.now(timezone.utc)
    plans = current_plans() if plans is None else plans
    rows = read_rows(session, runs_per_workflow=runs_per_workflow, dag_ids=dag_ids)
    runs_by: dict[str, list[fig.RunRow]] = defaultdict(list)
    tis_by: dict[str, list[fig.TaskRow]] = defaultdict(list)
    for r in rows["runs"]:
        runs_by[r.dag_id].append(r)
    for t in rows["tis"]:
        tis_by[t.dag_id].append(t)
    waits = waiting_by_workflow(rows, plans)
    workflows = [_workflow(name, meta, runs_by.get(name, []), tis_by.get(name, []), plans.get(name), now,
                           waits=waits.get(name))
                 for name, meta in sorted(rows["dags"].items())]
    visible_plans = {k: v for k, v in plans.items() if k in rows["dags"]} if dag_ids is not None else plans
    return {
        "generated_at": now.isoformat(),
        "runs_per_workflow": runs_per_workflow,
        "workflows": workflows,
        "resources": resources_summary(rows, visible_plans),
    }


def workflow_detail(session: Any, name: str, *, run_id: str | None = None,
                    runs_per_workflow: int = RUNS_PER_WORKFLOW, now: datetime | None = None,
                    plans: Mapping[str, WorkflowPlan] | None = None,
                    dag_ids: Iterable[str] | None = None) -> dict[str, Any] | None:
    """One workflow (``GET /iflow/api/workflows/{name}``), with its recent runs; None if unknown.

    Its resource figures name only the workflows the caller may read (``dag_ids``).
    """
    now = now or datetime.now(timezone.utc)
    dag_ids = set(dag_ids) if dag_ids is not None else None
    plans = current_plans() if plans is None else plans
    rows = read_rows(session, runs_per_workflow=runs_per_workflow, dag_ids=dag_ids, only_dag=name)
    if name not in rows["dags"]:
        return None
    runs = [r for r in rows["runs"] if r.dag_id == name]
    tis = [t for t in rows["tis"] if t.dag_id == name]
    plan = plans.get(name)
    out = _workflow(name, rows["dags"][name], runs, tis, plan, now, run_id=run_id,
                    waits=waiting_by_workflow(rows, plans).get(name))
    by_run: dict[str, list[fig.TaskRow]] = defaultdict(list)
    for t in tis:
        by_run[t.run_id].append(t)
    ordered = sorted(runs, key=lambda r: (r.start_date or r.queued_at or r.run_after or now), reverse=True)
    out["recent_runs"] = [
        {**fig.run_progress(r, by_run.get(r.run_id, []), len(plan.tasks) if plan else None),
         "end_date": r.end_date.isoformat() if r.end_date else None,
         "duration": round(fig.seconds(r.start_date, r.end_date), 3) if r.start_date and r.end_date else None,
         "run_type": r.run_type,
         "deadline": deadlines.lateness(r.start_date, r.end_date, plan.alerts.deadline if plan else None, now)}
        for r in ordered]
    out["tasks"] = [{"task_id": t.task_id, "upstream": list(t.upstream), "priority": t.level_name,
                     "priority_weight": t.priority_weight, "pool": t.pool, "action": t.action.kind}
                    for t in plan.tasks] if plan else []
    if plan is not None:
        mine = {t.pool for t in plan.tasks if t.pool}
        readable = plans if dag_ids is None else {k: v for k, v in plans.items() if k in dag_ids}
        out["resource_figures"] = [r for r in resources_summary(rows, readable) if r["pool"] in mine]
    else:
        out["resource_figures"] = []
    return out
