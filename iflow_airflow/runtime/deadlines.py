"""``workflow.deadline``: a run not finished that long after it started raises ``run_late``, once.

The rule (SPEC §7): a run of a workflow with a deadline ``D`` that is still
``running`` at ``start_date + D`` is late; ``run_late`` is raised for it exactly
once, through the workflow's alert channels, and the iflow page marks it (and
any run that finished after its deadline).

Who checks: the resource keeper, in the scheduler, every ``[iflow]
keeper_interval`` seconds (:class:`DeadlineWatch`), with one query for the
running runs of the workflows that have a deadline. "Once" survives a scheduler
restart: before raising, the watch writes an audit-log row (Airflow's ``log``
table, event ``iflow.run_late``, shown in the run's *Audit Log* in the UI) and
it never raises for a run that has one. The alert is raised after the row is
committed, so a crash between the two loses an alert rather than doubling it.

Why not Airflow 3's ``DeadlineAlert``: its references are the run's logical
date or queued time (not its start), and its callback runs in the triggerer or
an executor as an import path with serialized arguments; the keeper already
reads the runs, knows the workflow's channels, and needs no triggerer.
Limits: lateness is seen within one keeper interval; with several schedulers,
each keeper checks, and the audit-log row keeps the alert to one in all but a
race within the same instant.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

AUDIT_EVENT = "iflow.run_late"


class Late(NamedTuple):
    dag_id: str
    run_id: str
    start_date: datetime
    deadline_s: float
    late_by_s: float


def format_duration(seconds: float) -> str:
    """``2700`` -> ``"45m"``, ``5400`` -> ``"1h30m"``, ``90061`` -> ``"1d1h1m1s"``."""
    left, parts = int(round(seconds)), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"


def lateness(start: datetime | None, end: datetime | None, deadline_s: float | None,
             now: datetime) -> dict[str, Any] | None:
    """``{deadline_at, late, late_by_s}`` of one run (None without a deadline or a start).

    A run is late when it ends (or, still running, is at ``now``) after ``start + deadline``.
    """
    if deadline_s is None or start is None:
        return None
    at = start + timedelta(seconds=deadline_s)
    over = ((end or now) - at).total_seconds()
    return {"deadline_at": at.isoformat(), "deadline": format_duration(deadline_s), "late": over > 0,
            "late_by_s": round(over, 3) if over > 0 else None}


def late_runs(running: Iterable[tuple[str, str, datetime | None]], deadlines: Mapping[str, float],
              now: datetime) -> list[Late]:
    """The running runs ``(dag_id, run_id, start_date)`` past their workflow's deadline at ``now``."""
    out = []
    for dag_id, run_id, start in running:
        d = deadlines.get(dag_id)
        if d is None or start is None:
            continue
        over = (now - (start + timedelta(seconds=d))).total_seconds()
        if over > 0:
            out.append(Late(dag_id, run_id, start, d, over))
    return out


class DeadlineWatch:
    """The keeper's deadline check (module docs); ``fired`` remembers runs already alerted."""

    def __init__(self) -> None:
        self.fired: set[tuple[str, str]] = set()

    def check(self, plans: Mapping[str, Any], now: datetime | None = None) -> list[Late]:
        """One look at the running runs of every workflow with a deadline; returns the runs alerted now."""
        deadlines = {d: p.alerts.deadline for d, p in plans.items() if getattr(p.alerts, "deadline", None)}
        if not deadlines:
            return []
        now = now or datetime.now(UTC)
        running = _running_runs(list(deadlines))
        self.fired &= {(d, r) for d, r, _ in running}  # forget finished runs
        late = [x for x in late_runs(running, deadlines, now) if (x.dag_id, x.run_id) not in self.fired]
        if not late:
            return []
        fresh = _claim(late)
        self.fired |= {(x.dag_id, x.run_id) for x in late}
        for x in fresh:
            _raise(plans.get(x.dag_id), x)
        return fresh


def _running_runs(dag_ids: list[str]) -> list[tuple[str, str, datetime | None]]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    with create_session() as s:
        return [(d, r, st) for d, r, st in s.execute(
            select(DagRun.dag_id, DagRun.run_id, DagRun.start_date)
            .where(DagRun.dag_id.in_(dag_ids), DagRun.state == DagRunState.RUNNING)).all()]


def _claim(late: list[Late]) -> list[Late]:
    """The late runs with no ``iflow.run_late`` audit row yet; writes one for each (one transaction)."""
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as s:
        seen = set(s.execute(select(Log.dag_id, Log.run_id).where(
            Log.event == AUDIT_EVENT, Log.dag_id.in_({x.dag_id for x in late}),
            Log.run_id.in_({x.run_id for x in late}))).all())
        fresh = [x for x in late if (x.dag_id, x.run_id) not in seen]
        for x in fresh:
            s.add(Log(event=AUDIT_EVENT, dag_id=x.dag_id, run_id=x.run_id, owner="iflow",
                      extra=f"not finished {format_duration(x.deadline_s)} after it started"))
    return fresh


def _raise(plan: Any, x: Late) -> None:
    from iflow_airflow.runtime import alerts, monitor

    monitor.incr("iflow.run.late", workflow=x.dag_id)
    alerts.alert_for(plan, "run_late", workflow=x.dag_id, run_id=x.run_id, background=True,
                     deadline=format_duration(x.deadline_s), started_at=x.start_date.isoformat(),
                     late_by_s=round(x.late_by_s, 3))
