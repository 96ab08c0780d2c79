"""What iflow reports about running workflows: one log line per event and Airflow metrics.

* :func:`log_event` writes ONE structured line per event to the logger
  ``iflow.monitor``: ``iflow event=task_failed workflow=wf run_id=... task=t try=2``
  (``key=value``; a value with spaces, quotes or ``=`` is JSON-quoted).
* :func:`incr`, :func:`timing` and :func:`gauge` go through Airflow's own
  ``Stats`` (the ``[metrics]`` section decides StatsD, Datadog or OpenTelemetry).
  Airflow 3.3 has two copies of it: the core one (``airflow.observability.stats``,
  set up by the scheduler, dag-processor, triggerer, api-server) and the task
  SDK's (``airflow.sdk.observability.stats``, set up by the task runner in the
  worker). Whichever this process initialised is used; in a process that set up
  neither (``dag.test()``, a CLI) the SDK copy is initialised from ``[metrics]``.

Every metric is sent twice: ``iflow.task.success`` with tags (``workflow``,
``task``, ...) for backends that keep tags (OpenTelemetry, Datadog, StatsD with
influxdb tags), and ``iflow.task.success.<workflow>`` without tags for plain
StatsD, where the name is all there is (dots in a workflow name become ``__``).

Nothing here ever raises: monitoring must not fail a task or a scheduler loop.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

log = logging.getLogger("iflow.monitor")
_internal = logging.getLogger(__name__)

PREFIX = "iflow"
_PLAIN = re.compile(r"^[A-Za-z0-9_.:/@+\-]+$")
_STAT_CHARS = re.compile(r"[^A-Za-z0-9_-]")

Sink = Callable[[str, str, float, dict[str, Any]], None]
_sinks: list[Sink] = []


# --- log lines ------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = round(value, 3)
    text = value if isinstance(value, str) else str(value) if isinstance(value, (int, float, bool)) else None
    if text is None:
        text = json.dumps(value, default=str, ensure_ascii=False)
    if text and _PLAIN.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def format_event(event: str, **fields: Any) -> str:
    """``iflow event=<event> k=v ...`` in the given order; ``None`` values are left out."""
    parts = [f"{PREFIX} event={_fmt(event)}"]
    parts += [f"{k}={_fmt(v)}" for k, v in fields.items() if v is not None]
    return " ".join(parts)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> str:
    """Write the one line of ``event``; returns it (for tests). Never raises."""
    try:
        line = format_event(event, **fields)
        log.log(level, "%s", line)
    except Exception:  # pragma: no cover - formatting is total, but never let it escape
        _internal.exception("iflow: could not log event %s", event)
        line = ""
    names = _monitor_names(fields.get("workflow"))
    if names:  # only then import the extension machinery
        from iflow_airflow.extensions import dispatch_event

        dispatch_event(event, fields, names)  # the workflow's own monitors (workflow.monitors); never raises
    return line


def _monitor_names(workflow: Any) -> tuple[str, ...]:
    """``workflow``'s ``workflow.monitors`` from its plan (cheap: no import, no I/O); () when none."""
    try:
        from iflow_airflow.build import registry

        plan = registry.plan_for(str(workflow)) if workflow else None
        return tuple(plan.monitors) if plan is not None else ()
    except Exception:
        return ()


# --- metrics --------------------------------------------------------------------


def stat_part(name: str) -> str:
    """A workflow/pool name as one segment of a StatsD name (dots would add levels)."""
    return _STAT_CHARS.sub("_", name.replace(".", "__"))


def _stats_module() -> Any:
    """The ``Stats`` module this process initialised (see the module docs)."""
    from iflow_airflow import version_compat

    return version_compat.stats_module()


def add_sink(sink: Sink) -> None:
    """Also hand every metric to ``sink(kind, name, value, tags)`` (tests, embedding)."""
    _sinks.append(sink)


def remove_sink(sink: Sink) -> None:
    if sink in _sinks:
        _sinks.remove(sink)


def _emit(kind: str, name: str, value: float, tags: dict[str, Any]) -> None:
    tags = {k: str(v) for k, v in tags.items() if v is not None}
    for sink in list(_sinks):
        try:
            sink(kind, name, value, dict(tags))
        except Exception:
            _internal.exception("iflow: metric sink failed")
    try:
        stats = _stats_module()
        per_name = None
        if "workflow" in tags:
            per_name = f"{name}.{stat_part(tags['workflow'])}"
        elif "pool" in tags:
            per_name = f"{name}.{stat_part(tags['pool'])}"
        for stat, t in ((name, tags), (per_name, None)):
            if stat is None:
                continue
            if kind == "incr":
                stats.incr(stat, int(value), tags=t)
            elif kind == "gauge":
                stats.gauge(stat, int(value) if float(value).is_integer() else value, tags=t)
            else:
                stats.timing(stat, timedelta(milliseconds=value), tags=t)
    except Exception:
        _internal.debug("iflow: metric %s not sent", name, exc_info=True)


def incr(name: str, count: int = 1, **tags: Any) -> None:
    """Counter ``name`` (e.g. ``iflow.task.success``) += ``count``."""
    _emit("incr", name, count, tags)


def timing(name: str, milliseconds: float, **tags: Any) -> None:
    """Timer ``name`` observed ``milliseconds``."""
    _emit("timing", name, float(milliseconds), tags)


def gauge(name: str, value: float, **tags: Any) -> None:
    """Gauge ``name`` set to ``value``."""
    _emit("gauge", name, float(value), tags)
