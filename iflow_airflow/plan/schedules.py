"""``workflow.schedule`` -> a plan Schedule (manual, cron, preset, interval or events)."""

from __future__ import annotations

import re

from iflow_airflow.plan.ir import Schedule

PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INTERVAL = re.compile(r"^(?:\s*(\d+)\s*([smhdw])\s*)+$")
_PART = re.compile(r"(\d+)\s*([smhdw])")


def parse_duration(value: object) -> float | str:
    """Seconds of a duration (``"45m"``, ``"1h30m"``, or a number of seconds), or an error message."""
    if isinstance(value, bool):
        return f"{value!r} is not a duration"
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else "a duration must be longer than 0"
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):  # plain seconds
        return float(text) if float(text) > 0 else "a duration must be longer than 0"
    if not _INTERVAL.match(text):
        return f"{text!r} is not a duration"
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
    return float(seconds) if seconds > 0 else "a duration must be longer than 0"


def parse_schedule(value: object) -> Schedule | str:
    """A Schedule, or an error message saying what would be right."""
    if value is None:
        return Schedule("none")
    if hasattr(value, "events"):
        events = value.events
        if events is not None:
            return Schedule("events_all", tuple(events))
        return Schedule("events_any", tuple(value.events_any))
    text = str(value).strip()
    if text.lower() in ("manual", "none", "null", ""):
        return Schedule("none")
    if text.startswith("@"):
        if text in PRESETS:
            return Schedule("preset", text)
        return f"unknown preset {text!r}; expected one of {', '.join(PRESETS)}"
    if _INTERVAL.match(text):
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
        if seconds <= 0:
            return "an interval must be longer than 0"
        return Schedule("interval", float(seconds))
    fields = text.split()
    if len(fields) in (5, 6):
        try:
            from croniter import croniter
        except ImportError:  # pragma: no cover - croniter comes with Airflow
            return Schedule("cron", text)
        if croniter.is_valid(text):
            return Schedule("cron", text)
        return f"{text!r} is not a valid cron expression"
    return (f"{text!r} is not a schedule; expected null/\"manual\", a cron expression (\"0 6 * * *\"), "
            f"a preset ({', '.join(PRESETS[:4])}, ...), an interval (\"30m\", \"1h30m\") or {{events: [...]}}")
