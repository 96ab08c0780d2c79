"""Alerts: always a log line, plus every channel the workflow names (SPEC §7).

A workflow says where its alerts go::

    workflow:
      deadline: 45m                                   # run_late after 45 min
      alerts:
        webhook: https://hooks.example.com/iflow      # JSON POST
        email: [oncall@example.com]                   # Airflow's SMTP notifier
        slack: {channel: "#data-oncall"}              # Airflow's Slack webhook notifier
        events: [task_failed, run_failed, resource_saturated, run_late]   # task_retry too, if wanted

Every alert is logged (logger ``iflow.alerts``, one ``key=value`` line). When the
workflow lists the event, the payload (:func:`build_payload`, plus ``url``: the
run in the Airflow UI) goes to each channel through ``runtime/notify``: one lane
per receiver, each delivery bounded by :data:`BUDGET` seconds for real (see
``notify/channels.py``), a full lane drops with a count. In a worker the task
process waits for its deliveries (``background=False``) at most the budget plus
a margin, all channels at once; in the scheduler (run, deadline and resource
alerts) nothing waits (``background=True``). Nothing here raises.

A webhook is never redirected (``http_policy``: a 3xx is a failed delivery), and
the ``error`` text (up to :data:`MAX_ERROR_CHARS` of a failed task's output) goes
through Airflow's secret masker first, as the task's log did.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from iflow_airflow.constants import ALERT_EVENTS
from iflow_airflow.runtime import monitor, notify
from iflow_airflow.runtime.notify import lanes, message
from iflow_airflow.runtime.notify.channels import ATTEMPT_TIMEOUT, BACKOFF, BUDGET, TRIES, Delivery
from iflow_airflow.version_compat import redact_secrets

log = logging.getLogger("iflow.alerts")

EVENTS = ALERT_EVENTS
MAX_PENDING = lanes.MAX_PENDING
EXIT_FLUSH = lanes.EXIT_FLUSH
MAX_ERROR_CHARS = 2000


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _message(event: str, workflow: str | None, fields: dict[str, Any]) -> str:
    wf = workflow or "?"
    if event == "task_failed":
        return (f"task {fields.get('task')} of workflow {wf} failed for good (try {fields.get('try_number')}) "
                f"in run {fields.get('run_id')}: {fields.get('error') or 'no error text'}")
    if event == "task_retry":
        return (f"task {fields.get('task')} of workflow {wf} failed on try {fields.get('try_number')} "
                f"and will be retried (run {fields.get('run_id')}): {fields.get('error') or 'no error text'}")
    if event == "run_failed":
        failed = fields.get("failed_tasks") or []
        return f"run {fields.get('run_id')} of workflow {wf} failed" + (f" (failed: {', '.join(failed)})" if failed
                                                                       else "")
    if event == "run_late":
        return (f"run {fields.get('run_id')} of workflow {wf} is late: not finished {fields.get('deadline')} "
                f"after it started (at {fields.get('started_at')})")
    if event == "resource_saturated":
        return (f"resource {fields.get('resource')} (pool {fields.get('pool')}) is saturated: "
                f"{fields.get('busy')}/{fields.get('slots')} slots busy, {fields.get('waiting')} task(s) waiting")
    return f"{event} in workflow {wf}"


def build_payload(event: str, workflow: str | None, *, run_id: str | None = None, task: str | None = None,
                  try_number: int | None = None, error: str | None = None, at: str | None = None,
                  **extra: Any) -> dict[str, Any]:
    """The JSON body of one alert: fixed keys first (always present, maybe null), then ``extra``."""
    if error is not None:
        error = str(redact_secrets(str(error)))  # a task's output may quote a connection's password
        if len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 1] + "…"
    fields = dict(run_id=run_id, task=task, try_number=try_number, error=error, **extra)
    payload: dict[str, Any] = {
        "event": event,
        "workflow": workflow,
        "run_id": run_id,
        "task": task,
        "try_number": try_number,
        "error": error,
        "at": at or _now_iso(),
        "message": _message(event, workflow, fields),
        "source": "iflow-airflow",
    }
    for k, v in extra.items():
        payload.setdefault(k, v)
    return payload


def post_json(url: str, payload: dict[str, Any], *, attempt_timeout: float = ATTEMPT_TIMEOUT, tries: int = TRIES,
              backoff: Iterable[float] = BACKOFF, budget: float = BUDGET) -> Delivery:
    """POST ``payload`` to ``url`` now, bounded by ``budget`` seconds in all (see ``notify/channels.py``)."""
    rx = notify.Receiver("webhook", url, options=dict(attempt_timeout=attempt_timeout, tries=tries,
                                                      backoff=tuple(backoff)))
    return notify.deliver(rx, payload, budget)


def wait_for_background(timeout: float = 30.0) -> bool:
    """Wait until no delivery is pending on any lane (tests; process exit); True if none is."""
    return lanes.wait_idle(timeout)


def alert(event: str, workflow: str | None, *, webhook: str | None = None, events: Iterable[str] = EVENTS,
          background: bool = False, post_kwargs: dict[str, Any] | None = None,
          receivers: list[notify.Receiver] | None = None, **fields: Any) -> Delivery | None:
    """Raise one alert: log it; deliver it to ``receivers`` (or the ``webhook``) when ``event`` is in ``events``.

    Returns the first receiver's :class:`Delivery` when delivered synchronously, else None.
    ``fields`` go into the payload (``run_id``, ``task``, ``try_number``, ``error`` and any extra key).
    """
    try:
        payload = build_payload(event, workflow, **fields)
        payload.setdefault("url", message.ui_link(message.base_url(), workflow, payload["run_id"], payload["task"]))
        to = list(receivers) if receivers is not None else (
            [notify.Receiver("webhook", webhook, options=dict(post_kwargs or {}))] if webhook else [])
        wanted = bool(to) and event in set(events)
        level = logging.WARNING if event in ("resource_saturated", "task_retry", "run_late") else logging.ERROR
        log.log(level, "%s", monitor.format_event(
            "alert", alert=event, workflow=workflow, run_id=payload["run_id"], task=payload["task"],
            try_number=payload["try_number"], channels=",".join(rx.channel for rx in to) if wanted else "none",
            message=payload["message"]))
        monitor.incr("iflow.alert", alert=event, workflow=workflow)
        if not wanted:
            return None
        results = notify.send(payload, to, background=background)
        return None if background else results.get(to[0].key)
    except Exception:
        log.exception("iflow: could not raise the %s alert of %s", event, workflow)
        return None


def alert_for(plan: Any, event: str, *, workflow: str | None = None, background: bool = False,
              **fields: Any) -> Delivery | None:
    """:func:`alert` with the channels and event list of ``plan`` (a WorkflowPlan; None: log only)."""
    alerts_cfg = getattr(plan, "alerts", None)
    return alert(event, getattr(plan, "dag_id", None) or workflow, events=getattr(alerts_cfg, "events", ()),
                 receivers=notify.receivers(alerts_cfg), background=background, **fields)
