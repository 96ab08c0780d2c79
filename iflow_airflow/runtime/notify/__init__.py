"""Alert delivery: each channel an Airflow notifier, each receiver its own bounded lane.

``receivers(plan.alerts)`` lists where a workflow's alerts go (webhook, email,
Slack; SPEC §7); :func:`send` hands one payload to each receiver's lane
(``lanes.py``) and, for a caller that must not leave before the alert is out
(a task process, which exits right after its listener), waits for all of them
together at most ``BUDGET`` seconds plus a margin. Every outcome is logged
(logger ``iflow.alerts``: ``alert_delivered`` / ``alert_undelivered`` /
``alert_dropped``) and counted (``iflow.alert.delivered`` /
``iflow.alert.undelivered``, tagged with the channel). A channel's failure
never raises, never fails a task and never delays another channel.
"""

from __future__ import annotations

import logging
from typing import Any

from iflow_airflow import settings as iflow_settings
from iflow_airflow.runtime import monitor
from iflow_airflow.runtime.notify import lanes
from iflow_airflow.runtime.notify.channels import BUDGET, Delivery, Receiver, deliver

log = logging.getLogger("iflow.alerts")
SYNC_MARGIN = 1.0  # seconds a synchronous caller waits beyond BUDGET (thread hand-over, logging)

__all__ = ["BUDGET", "Delivery", "Receiver", "deliver", "receivers", "send"]


def receivers(cfg: Any, webhook_options: dict[str, Any] | None = None) -> list[Receiver]:
    """The receivers of an AlertSettings (plan.alerts); connection ids from ``[iflow]``."""
    out: list[Receiver] = []
    if getattr(cfg, "webhook", None):
        out.append(Receiver("webhook", cfg.webhook, options=dict(webhook_options or {})))
    if getattr(cfg, "email", ()):
        out.append(Receiver("email", iflow_settings.get("smtp_conn_id"), to=tuple(cfg.email),
                            options={"from_email": iflow_settings.get("email_from")}))
    if getattr(cfg, "slack", False):
        out.append(Receiver("slack", iflow_settings.get("slack_conn_id"), label=getattr(cfg, "slack_channel", None)))
    return out


def _record(rx: Receiver, payload: dict[str, Any], d: Delivery) -> Delivery:
    fields = dict(alert=payload.get("event"), workflow=payload.get("workflow"), run_id=payload.get("run_id"),
                  task=payload.get("task"), channel=rx.channel, receiver=rx.target,
                  attempts=d.attempts, status=d.status, elapsed_s=round(d.elapsed, 3))
    tags = dict(alert=payload.get("event"), workflow=payload.get("workflow"), channel=rx.channel)
    if d.delivered:
        log.info("%s", monitor.format_event("alert_delivered", **fields))
        monitor.incr("iflow.alert.delivered", **tags)
    else:
        log.warning("%s", monitor.format_event("alert_undelivered", error=d.error, **fields))
        monitor.incr("iflow.alert.undelivered", **tags)
    return d


def _dropped(rx: Receiver, payload: dict[str, Any]) -> Delivery:
    log.warning("%s", monitor.format_event(
        "alert_dropped", alert=payload.get("event"), channel=rx.channel, workflow=payload.get("workflow"),
        receiver=rx.target, reason=f"{lanes.MAX_PENDING} deliveries already waiting for this receiver"))
    monitor.incr("iflow.alert.undelivered", alert=payload.get("event"), workflow=payload.get("workflow"),
                 channel=rx.channel, reason="dropped")
    return Delivery(False, 0, None, "dropped: the receiver's queue is full", 0.0)


def send(payload: dict[str, Any], to: list[Receiver], *, background: bool,
         budget: float = BUDGET) -> dict[str, Delivery | None]:
    """Deliver ``payload`` to every receiver, each on its own lane.

    ``background=True`` (scheduler): returns at once; the values are None.
    ``background=False`` (task process): waits for all together at most
    ``budget + SYNC_MARGIN`` seconds; a delivery not finished by then is None.
    """
    jobs = {rx.key: (rx, lanes.submit(rx.key, lambda rx=rx: _record(rx, payload, deliver(rx, payload, budget))))
            for rx in to}
    for rx, job in jobs.values():
        if job.dropped:
            job.result = _dropped(rx, payload)
    if background:
        return {k: (job.result if job.dropped else None) for k, (_, job) in jobs.items()}
    lanes.wait([job for _, job in jobs.values()], budget + SYNC_MARGIN)
    return {k: job.result if job.done.is_set() else None for k, (_, job) in jobs.items()}
