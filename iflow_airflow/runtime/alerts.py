"""Alerts: always a log line, plus a JSON POST to the workflow's webhook.

A workflow says where its alerts go::

    workflow:
      alerts:
        webhook: https://hooks.example.com/iflow      # optional
        events: [task_failed, run_failed, resource_saturated]   # task_retry too, if wanted

Every alert is logged (logger ``iflow.alerts``, one ``key=value`` line). When the
workflow has a ``webhook`` and lists the event, the payload (:func:`build_payload`)
is POSTed as JSON:

* each attempt has a connect and read timeout of :data:`ATTEMPT_TIMEOUT` seconds;
* up to :data:`TRIES` attempts, waiting :data:`BACKOFF` seconds between them, on a
  connection error, a timeout, HTTP 408, 429 or 5xx (other 4xx answers are final);
* all attempts together never take more than :data:`BUDGET` seconds (the last
  attempt's timeout is cut to what is left), so a dead or hanging receiver delays
  the caller by at most that much.

In a worker the POST runs in the task process after the task's state is decided
(``background=False``): the budget bounds the delay. In the scheduler (run and
resource alerts) it runs on a background thread (``background=True``) so the
scheduler loop never waits; at most :data:`MAX_PENDING` deliveries queue up,
more are dropped with a log line, and a process that exits waits at most
:data:`EXIT_FLUSH` seconds for queued ones. Nothing here raises.

A webhook is never redirected (``runtime.http_policy``: a 3xx is a failed delivery),
and the ``error`` text (up to :data:`MAX_ERROR_CHARS` of a failed task's output) goes
through Airflow's secret masker first, as the task's log did.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from iflow_airflow.constants import ALERT_EVENTS
from iflow_airflow.runtime import monitor
from iflow_airflow.http_policy import redirect_allowed
from iflow_airflow.version_compat import redact_secrets

log = logging.getLogger("iflow.alerts")

EVENTS = ALERT_EVENTS
ATTEMPT_TIMEOUT = 3.0  # seconds, connect and each read
TRIES = 3
BACKOFF = (0.5, 1.0)  # seconds before the 2nd and the 3rd attempt
BUDGET = 6.0  # seconds for all attempts of one alert together
MAX_PENDING = 100
EXIT_FLUSH = BUDGET + 2.0  # seconds a leaving process waits for queued deliveries
MAX_ERROR_CHARS = 2000
USER_AGENT = "iflow-airflow-alerts/1"


@dataclass(frozen=True)
class Delivery:
    """How one webhook POST went."""

    delivered: bool
    attempts: int
    status: int | None  # last HTTP status, if any answer came
    error: str | None  # last failure, if any
    elapsed: float  # seconds


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


class _PolicyRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects as ``runtime.http_policy`` allows them: for a webhook's POST, none (the 3xx
    then comes back as an ``HTTPError``: a failed, final delivery)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        if not redirect_allowed(req.full_url, newurl, method=req.get_method()):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_PolicyRedirects())


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def post_json(url: str, payload: dict[str, Any], *, attempt_timeout: float = ATTEMPT_TIMEOUT, tries: int = TRIES,
              backoff: Iterable[float] = BACKOFF, budget: float = BUDGET) -> Delivery:
    """POST ``payload`` to ``url`` with bounded retries (see the module docs). Never raises."""
    body = json.dumps(payload, default=str, ensure_ascii=False).encode("utf-8")
    waits = list(backoff)
    start = time.monotonic()
    deadline = start + budget
    attempts = 0
    status: int | None = None
    error: str | None = None
    for attempt in range(max(1, tries)):
        if attempt:
            wait = waits[min(attempt - 1, len(waits) - 1)] if waits else 0.0
            if time.monotonic() + wait >= deadline:
                break
            time.sleep(wait)
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            break
        attempts += 1
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT})
        try:
            with _OPENER.open(req, timeout=min(attempt_timeout, remaining)) as resp:
                status = resp.status
                resp.read(65536)
            return Delivery(True, attempts, status, None, time.monotonic() - start)
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
            exc.close()
            if not _retryable(exc.code):
                break
        except Exception as exc:  # URLError, timeouts, resets: worth another try
            reason = getattr(exc, "reason", None) or exc
            error = f"{type(reason).__name__}: {reason}"
            status = None
    return Delivery(False, attempts, status, error, time.monotonic() - start)


_queue: queue.Queue | None = None
_queue_lock = threading.Lock()
_pending = 0


def _worker(q: queue.Queue) -> None:
    global _pending
    while True:
        fn, args = q.get()
        try:
            fn(*args)
        except Exception:
            log.exception("iflow: background alert delivery failed")
        finally:
            with _queue_lock:
                _pending -= 1


def _submit(fn, *args) -> bool:
    """Queue ``fn(*args)`` for the delivery thread (a daemon); False when MAX_PENDING are waiting."""
    global _queue, _pending
    with _queue_lock:
        if _pending >= MAX_PENDING:
            return False
        if _queue is None:
            _queue = queue.Queue()
            threading.Thread(target=_worker, args=(_queue,), name="iflow-alerts", daemon=True).start()
            atexit.register(wait_for_background, EXIT_FLUSH)
        _pending += 1
        _queue.put((fn, args))
    return True


def wait_for_background(timeout: float = 30.0) -> bool:
    """Wait until no background delivery is pending (tests; process exit, bounded by
    :data:`EXIT_FLUSH`); True if none is."""
    deadline = time.monotonic() + timeout
    while True:
        with _queue_lock:
            if _pending == 0:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _deliver(url: str, payload: dict[str, Any], post_kwargs: dict[str, Any]) -> Delivery:
    d = post_json(url, payload, **post_kwargs)
    fields = dict(workflow=payload.get("workflow"), run_id=payload.get("run_id"), task=payload.get("task"),
                  url=url, attempts=d.attempts, status=d.status, elapsed_s=round(d.elapsed, 3))
    if d.delivered:
        log.info("%s", monitor.format_event("alert_delivered", alert=payload["event"], **fields))
        monitor.incr("iflow.alert.delivered", alert=payload["event"], workflow=payload.get("workflow"))
    else:
        log.warning("%s", monitor.format_event("alert_undelivered", alert=payload["event"], error=d.error, **fields))
        monitor.incr("iflow.alert.undelivered", alert=payload["event"], workflow=payload.get("workflow"))
    return d


def alert(event: str, workflow: str | None, *, webhook: str | None = None, events: Iterable[str] = EVENTS,
          background: bool = False, post_kwargs: dict[str, Any] | None = None, **fields: Any) -> Delivery | None:
    """Raise one alert: log it; POST it when ``webhook`` is set and ``event`` is in ``events``.

    Returns the :class:`Delivery` of a synchronous POST, else None. ``fields`` go into
    the payload (``run_id``, ``task``, ``try_number``, ``error`` and any extra key).
    """
    try:
        payload = build_payload(event, workflow, **fields)
        level = logging.WARNING if event in ("resource_saturated", "task_retry") else logging.ERROR
        wanted = bool(webhook) and event in set(events)
        log.log(level, "%s", monitor.format_event(
            "alert", alert=event, workflow=workflow, run_id=payload["run_id"], task=payload["task"],
            try_number=payload["try_number"], webhook="yes" if wanted else "no", message=payload["message"]))
        monitor.incr("iflow.alert", alert=event, workflow=workflow)
        if not wanted:
            return None
        assert webhook is not None
        if background:
            if not _submit(_deliver, webhook, payload, dict(post_kwargs or {})):
                log.warning("%s", monitor.format_event("alert_dropped", alert=event, workflow=workflow,
                                                       reason=f"{MAX_PENDING} deliveries pending"))
            return None
        return _deliver(webhook, payload, dict(post_kwargs or {}))
    except Exception:
        log.exception("iflow: could not raise the %s alert of %s", event, workflow)
        return None


def alert_for(plan: Any, event: str, *, workflow: str | None = None, background: bool = False,
              **fields: Any) -> Delivery | None:
    """:func:`alert` with the webhook and event list of ``plan`` (a WorkflowPlan; None: log only)."""
    alerts_cfg = getattr(plan, "alerts", None)
    return alert(event, getattr(plan, "dag_id", None) or workflow,
                 webhook=getattr(alerts_cfg, "webhook", None), events=getattr(alerts_cfg, "events", ()),
                 background=background, **fields)
