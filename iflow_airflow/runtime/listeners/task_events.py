"""Task instance hooks: run in the worker's task process with a RuntimeTaskInstance (no database).

For iflow DAGs only (a plan registered by ``build_dag`` in this process, or the
``iflow`` tag): one ``iflow.monitor`` line per event, metrics, and alerts:

==================  =========================================  ======================
event               metrics                                    alert
==================  =========================================  ======================
task_running        ``iflow.task.running``                     -
task_success        ``iflow.task.success``, ``.duration``      -
task_retry          ``iflow.task.retry``, ``.duration``        ``task_retry``
task_failed         ``iflow.task.failed``, ``.duration``       ``task_failed``
task_skipped        ``iflow.task.skipped``                     -
==================  =========================================  ======================

``task_failed`` is the final failure (the task instance's state is ``failed``:
no retries left); a failure that will be retried is ``task_retry``. Every hook
body is wrapped: an error is logged and swallowed, never failing the task. The
alert's deliveries (webhook, email, Slack: one lane each, side by side) keep the
task process at most ``alerts.BUDGET`` seconds plus a margin (see ``runtime/notify``).

Airflow may also call these hooks in the api-server with an ORM TaskInstance
(a state set through the UI/API); the same code works from its attributes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from airflow.listeners import hookimpl

from iflow_airflow.build import registry
from iflow_airflow.runtime import alerts, monitor

log = logging.getLogger(__name__)
from iflow_airflow.constants import IFLOW_TAG  # noqa: E402


def _state(ti: Any) -> str | None:
    s = getattr(ti, "state", None)
    return None if s is None else str(getattr(s, "value", s))


def _context(ti: Any) -> tuple[Any, dict[str, Any]] | None:
    """(plan or None, common fields) for an iflow task instance; None for any other DAG."""
    dag_id = getattr(ti, "dag_id", None)
    if not dag_id:
        return None
    plan = registry.plan_for(dag_id)
    if plan is None:
        task = getattr(ti, "task", None)
        dag = getattr(task, "dag", None) if task is not None else None
        tags = getattr(dag, "tags", None) or ()
        if IFLOW_TAG not in tags:
            return None
    fields = {
        "workflow": dag_id,
        "run_id": getattr(ti, "run_id", None),
        "task": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
    }
    map_index = getattr(ti, "map_index", -1)
    if map_index not in (None, -1):
        fields["map_index"] = map_index
    return plan, fields


def _duration_ms(ti: Any) -> float | None:
    start = getattr(ti, "start_date", None)
    if start is None:
        return None
    end = getattr(ti, "end_date", None) or datetime.now(timezone.utc)
    try:
        return max(0.0, (end - start).total_seconds() * 1000.0)
    except TypeError:  # naive vs aware
        return None


def _error_text(error: Any) -> str | None:
    if error is None:
        return None
    if isinstance(error, BaseException):
        text = str(error)
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    return str(error)


def _guard(name: str, fn, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # monitoring never fails a task
        log.exception("iflow: the %s listener failed (ignored)", name)


def _running(ti: Any) -> None:
    ctx = _context(ti)
    if ctx is None:
        return
    _, f = ctx
    monitor.incr("iflow.task.running", workflow=f["workflow"], task=f["task"])
    monitor.log_event("task_running", **f, queue=getattr(ti, "queue", None),
                      pool=getattr(getattr(ti, "task", None), "pool", None) or getattr(ti, "pool", None))


def _success(ti: Any) -> None:
    ctx = _context(ti)
    if ctx is None:
        return
    _, f = ctx
    ms = _duration_ms(ti)
    monitor.incr("iflow.task.success", workflow=f["workflow"], task=f["task"])
    if ms is not None:
        monitor.timing("iflow.task.duration", ms, workflow=f["workflow"], task=f["task"], state="success")
    monitor.log_event("task_success", **f, duration_ms=ms)


def _skipped(ti: Any) -> None:
    ctx = _context(ti)
    if ctx is None:
        return
    _, f = ctx
    monitor.incr("iflow.task.skipped", workflow=f["workflow"], task=f["task"])
    monitor.log_event("task_skipped", **f)


def is_final_failure(ti: Any) -> bool:
    """True when no retry follows: the state is ``failed`` (``up_for_retry`` otherwise).

    Without a state (should not happen) the tries decide: try_number > max_tries.
    """
    state = _state(ti)
    if state in ("failed", "up_for_retry"):
        return state == "failed"
    try_number = getattr(ti, "try_number", None) or 0
    max_tries = getattr(ti, "max_tries", None)
    if max_tries is None:
        return True
    return try_number > max_tries


def _failed(ti: Any, error: Any) -> None:
    ctx = _context(ti)
    if ctx is None:
        return
    plan, f = ctx
    final = is_final_failure(ti)
    event = "task_failed" if final else "task_retry"
    ms = _duration_ms(ti)
    err = _error_text(error)
    monitor.incr("iflow.task.failed" if final else "iflow.task.retry", workflow=f["workflow"], task=f["task"])
    if ms is not None:
        monitor.timing("iflow.task.duration", ms, workflow=f["workflow"], task=f["task"],
                       state="failed" if final else "up_for_retry")
    monitor.log_event(event, level=logging.ERROR if final else logging.WARNING, **f,
                      max_tries=getattr(ti, "max_tries", None), duration_ms=ms, error=err)
    alerts.alert_for(plan, event, workflow=f["workflow"], run_id=f["run_id"], task=f["task"],
                     try_number=f["try_number"], error=err, max_tries=getattr(ti, "max_tries", None),
                     **({"map_index": f["map_index"]} if "map_index" in f else {}))


@hookimpl
def on_task_instance_running(previous_state, task_instance):
    _guard("task running", _running, task_instance)


@hookimpl
def on_task_instance_success(previous_state, task_instance):
    _guard("task success", _success, task_instance)


@hookimpl
def on_task_instance_failed(previous_state, task_instance, error):
    _guard("task failed", _failed, task_instance, error)


@hookimpl
def on_task_instance_skipped(previous_state, task_instance):
    _guard("task skipped", _skipped, task_instance)
