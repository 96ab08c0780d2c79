"""What every channel says about an alert: pure text from the payload.

Each channel (webhook, email, Slack) gets the same event and the same facts:
workflow, run, task, try, error and a link to the run (or task) in the Airflow
UI. The link's base is ``[api] base_url`` (Airflow's own setting for links it
writes, such as ``TaskInstance.log_url``); without it, ``http://localhost:8080``
as Airflow assumes. Alert text is never a template: it is passed to notifiers as
finished text, so an error message containing ``{{ ... }}`` is shown, not run.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

DEFAULT_BASE_URL = "http://localhost:8080"
FACT_KEYS = ("workflow", "run_id", "task", "try_number", "error", "deadline", "late_by_s", "resource", "url")


def ui_link(base_url: str | None, workflow: str | None, run_id: str | None, task: str | None = None) -> str | None:
    """The Airflow 3 UI address of a run (or of one task of it); None without a workflow."""
    if not workflow:
        return None
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    if not run_id:
        return f"{base}/dags/{quote(workflow, safe='')}"
    link = f"{base}/dags/{quote(workflow, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{link}/tasks/{quote(task, safe='')}" if task else link


def base_url() -> str | None:
    """``[api] base_url`` of this deployment, if Airflow's configuration says one."""
    try:
        from airflow.configuration import conf

        return conf.get("api", "base_url", fallback=None) or None
    except Exception:
        return None


def subject(payload: dict[str, Any]) -> str:
    """One line: ``[iflow] run_late: nightly_etl manual__2026-...``."""
    where = " ".join(str(payload[k]) for k in ("workflow", "run_id", "task") if payload.get(k))
    return f"[iflow] {payload.get('event')}: {where}"[:200]


def facts(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of every fact the payload has, in a fixed order."""
    return [(k, str(payload[k])) for k in FACT_KEYS if payload.get(k) not in (None, "", [])]


def plain_text(payload: dict[str, Any], channel_label: str | None = None) -> str:
    """The message as plain text (Slack, logs): the sentence, then one fact per line."""
    head = payload.get("message") or subject(payload)
    if channel_label:
        head = f"{head} (to {channel_label})"
    return "\n".join([head, *(f"{k}: {v}" for k, v in facts(payload) if k != "url"),
                      *([f"open: {payload['url']}"] if payload.get("url") else [])])


def html_body(payload: dict[str, Any]) -> str:
    """The message as a small HTML mail body; every value escaped."""
    rows = "".join(f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in facts(payload) if k != "url")
    link = (f'<p><a href="{html.escape(payload["url"], quote=True)}">Open in Airflow</a></p>'
            if payload.get("url") else "")
    return f"<p>{html.escape(str(payload.get('message') or subject(payload)))}</p><table>{rows}</table>{link}"
