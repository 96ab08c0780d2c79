"""DAG run hooks: run in the scheduler (and in ``dag.test()``) with the ORM DagRun.

For iflow DAGs only (a plan known to this process, from ``build_dag`` or the
scheduler's resource keeper, or the ``iflow`` tag on the run's DAG):

==============  ===============================================================  ============
event           metrics                                                          alert
==============  ===============================================================  ============
run_running     ``iflow.run.running``                                            -
run_success     ``iflow.run.success``, ``iflow.run.duration``, per task below    -
run_failed      ``iflow.run.failed``, ``iflow.run.duration``, per task below     ``run_failed``
==============  ===============================================================  ============

When a run ends, its task instances are read once (in the scheduler's own
session: the worker cannot see queue times) and each one reports
``iflow.task.queue_latency`` (queued -> start, ms) and, for a task in a resource
pool, ``iflow.task.resource_wait`` (scheduled -> queued, ms).

The scheduler loop must not wait: the ``run_failed`` webhook POST runs on a
background thread. Every hook body is wrapped; errors are logged and swallowed.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from iflow_airflow.build import registry
from iflow_airflow.runtime import alerts, monitor

log = logging.getLogger(__name__)
from iflow_airflow.constants import IFLOW_TAG  # noqa: E402

FAILED_TASK_STATES = ("failed", "upstream_failed")


def _is_iflow(dag_run: Any) -> tuple[bool, Any]:
    plan = registry.plan_for(dag_run.dag_id)
    if plan is not None:
        return True, plan
    dag = getattr(dag_run, "dag", None)
    tags = getattr(dag, "tags", None) or ()
    return IFLOW_TAG in tags, None


def _ms(a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    return max(0.0, (b - a).total_seconds() * 1000.0)


def _task_rows(dag_run: Any) -> list[Any]:
    """(task_id, state, scheduled_dttm, queued_dttm, start_date, pool) of the run's task instances."""
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    stmt = select(TI.task_id, TI.state, TI.scheduled_dttm, TI.queued_dttm, TI.start_date, TI.pool).where(
        TI.dag_id == dag_run.dag_id, TI.run_id == dag_run.run_id)
    session = object_session(dag_run)
    if session is not None:  # the scheduler's session: sees its own pending changes
        return list(session.execute(stmt).all())
    from airflow.utils.session import create_session

    with create_session() as s:  # a detached run (dag.test)
        return list(s.execute(stmt).all())


def _per_task_metrics(workflow: str, rows: list[Any]) -> None:
    for task_id, _state, scheduled, queued, started, pool in rows:
        latency = _ms(queued, started)
        if latency is not None:
            monitor.timing("iflow.task.queue_latency", latency, workflow=workflow, task=task_id)
        if pool and pool != "default_pool":
            wait = _ms(scheduled, queued)
            if wait is not None:
                monitor.timing("iflow.task.resource_wait", wait, workflow=workflow, task=task_id, pool=pool)


def _running(dag_run: Any, msg: str) -> None:
    ok, _ = _is_iflow(dag_run)
    if not ok:
        return
    monitor.incr("iflow.run.running", workflow=dag_run.dag_id)
    monitor.log_event("run_running", workflow=dag_run.dag_id, run_id=dag_run.run_id,
                      run_type=str(getattr(dag_run.run_type, "value", dag_run.run_type)))


def _finished(dag_run: Any, msg: str, state: str) -> None:
    ok, plan = _is_iflow(dag_run)
    if not ok:
        return
    wf, run_id = dag_run.dag_id, dag_run.run_id
    duration = _ms(dag_run.start_date, dag_run.end_date)
    monitor.incr(f"iflow.run.{state}", workflow=wf)
    if duration is not None:
        monitor.timing("iflow.run.duration", duration, workflow=wf, state=state)
    rows: list[Any] = []
    try:
        rows = _task_rows(dag_run)
        _per_task_metrics(wf, rows)
    except Exception:
        log.exception("iflow: could not read the task instances of %s/%s", wf, run_id)
    failed = sorted(r[0] for r in rows if str(getattr(r[1], "value", r[1])) in FAILED_TASK_STATES)
    monitor.log_event(f"run_{state}", level=logging.ERROR if state == "failed" else logging.INFO, workflow=wf,
                      run_id=run_id, duration_ms=duration, tasks=len(rows) or None,
                      failed_tasks=",".join(failed) or None, reason=msg)
    if state == "failed":
        alerts.alert_for(plan, "run_failed", workflow=wf, run_id=run_id, background=True,
                         error=f"run failed: {msg}", failed_tasks=failed, duration_ms=duration)


def _guard(name: str, fn, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # monitoring never disturbs the scheduler
        log.exception("iflow: the %s listener failed (ignored)", name)


@hookimpl
def on_dag_run_running(dag_run, msg):
    _guard("run running", _running, dag_run, msg)


@hookimpl
def on_dag_run_success(dag_run, msg):
    _guard("run success", _finished, dag_run, msg, "success")


@hookimpl
def on_dag_run_failed(dag_run, msg):
    _guard("run failed", _finished, dag_run, msg, "failed")
