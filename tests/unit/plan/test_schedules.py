"""workflow.schedule, timezone, start_date, params, catchup/tags/owner and orchestration.enabled."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pendulum
import pytest

from iflow_airflow.plan.ir import ParamSpec, Schedule
from iflow_airflow.plan.schedules import PRESETS, parse_schedule


def _wf(extra: str) -> str:
    return "workflow:\n  name: s\n" + extra + "  tasks: [{id: a}]\n"


@pytest.mark.parametrize("yaml_value,expected", [
    ("null", Schedule("none")),
    ("", Schedule("none")),
    ("manual", Schedule("none")),
    ('"Manual"', Schedule("none")),
    ('"0 6 * * *"', Schedule("cron", "0 6 * * *")),
    ('"*/15 9-17 * * 1-5"', Schedule("cron", "*/15 9-17 * * 1-5")),
    ('"@daily"', Schedule("preset", "@daily")),
    ('"@once"', Schedule("preset", "@once")),
    ('"@continuous"', Schedule("preset", "@continuous")),
    ("30m", Schedule("interval", 1800.0)),
    ("1h30m", Schedule("interval", 5400.0)),
    ("45s", Schedule("interval", 45.0)),
    ("2d", Schedule("interval", 172800.0)),
    ("1w", Schedule("interval", 604800.0)),
    ('"1h 30m"', Schedule("interval", 5400.0)),
    ("{events: [orders_ready]}", Schedule("events_all", ("orders_ready",))),
    ("{events: [a, b]}", Schedule("events_all", ("a", "b"))),
    ("{events_any: [a, b]}", Schedule("events_any", ("a", "b"))),
])
def test_valid_schedules(front, yaml_value, expected):
    assert front.plan(_wf(f"  schedule: {yaml_value}\n")).schedule == expected


def test_no_schedule_key_is_manual(front):
    assert front.plan(_wf("")).schedule == Schedule("none")


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_is_accepted(preset):
    assert parse_schedule(preset) == Schedule("preset", preset)


@pytest.mark.parametrize("yaml_value,code,fragment", [
    ('"@dialy"', "schedule", "unknown preset '@dialy'"),
    ('"0m"', "schedule", "longer than 0"),
    ('"61 * * * *"', "schedule", "is not a valid cron expression"),
    ('"* * * *"', "schedule", "is not a schedule"),
    ('"every day"', "schedule", "is not a schedule"),
    ('"30x"', "schedule", "is not a schedule"),
    ("30", "string_type", "valid string"),
    ("[a, b]", "string_type", "valid string"),
    ("{events: []}", "too_short", "at least 1 item"),
    ("{events: [a], events_any: [b]}", "value_error", "exactly one of `events` or `events_any`"),
    ("{}", "value_error", "exactly one of `events` or `events_any`"),
    ("{events: ['bad name']}", "invalid_format", "invalid value"),
])
def test_bad_schedules_are_located_errors(front, yaml_value, code, fragment):
    err = front.error(_wf(f"  schedule: {yaml_value}\n"))
    assert len(err.problems) == 1
    (p,) = err.problems
    assert (p.line, p.code) == (3, code)
    if p.key_path == "workflow.schedule":
        assert p.column == 3
    else:  # inside the events mapping
        assert p.key_path in ("workflow.schedule.events", "workflow.schedule.events[0]") and p.column > 3
    assert fragment in p.message


def test_bad_preset_lists_the_presets(front):
    err = front.error(_wf('  schedule: "@dialy"\n'))
    assert "@daily" in err.problems[0].message and "@hourly" in err.problems[0].message


def test_schedule_key_typo_suggests_events(front):
    assert front.problems(_wf("  schedule: {event: [e]}\n")) == {("workflow.schedule.event", 3, 14, "unknown_key")}
    assert front.error(_wf("  schedule: {event: [e]}\n")).problems[0].expected == "did you mean `events`?"


# --- time zone and start date ----------------------------------------------------------------

def test_timezone_typo_suggests_the_nearest_zone(front):
    err = front.error(_wf("  timezone: Europe/Berln\n"))
    (p,) = err.problems
    assert (p.key_path, p.line, p.column, p.code) == ("workflow.timezone", 3, 3, "timezone")
    assert p.expected == "did you mean 'Europe/Berlin'?"
    assert "unknown time zone 'Europe/Berln'" in p.message


def test_timezone_nonsense_says_what_is_right(front):
    (p,) = front.error(_wf("  timezone: qqqqqqqqqqqq\n")).problems
    assert p.code == "timezone" and p.expected == "an IANA name such as 'UTC' or 'Europe/Berlin'"


def test_start_date_default_and_timezone(front):
    plan = front.plan(_wf(""))
    assert plan.start_date == pendulum.datetime(2026, 1, 1, tz="UTC")
    assert plan.timezone == "UTC"


def test_date_start_date_is_midnight_in_the_timezone(front):
    plan = front.plan(_wf("  start_date: 2025-03-04\n  timezone: Asia/Shanghai\n"))
    assert plan.start_date == pendulum.datetime(2025, 3, 4, tz="Asia/Shanghai")
    assert plan.start_date.utcoffset() == timedelta(hours=8)
    assert plan.start_date.tzinfo.name == "Asia/Shanghai"


def test_naive_datetime_start_date_takes_the_timezone(front):
    plan = front.plan(_wf("  start_date: 2025-03-04 06:30:00\n  timezone: Europe/Berlin\n"))
    assert plan.start_date == pendulum.datetime(2025, 3, 4, 6, 30, tz="Europe/Berlin")


def test_aware_datetime_start_date_keeps_its_offset(front):
    plan = front.plan(_wf("  start_date: 2025-03-04T06:30:00+02:00\n  timezone: Asia/Tokyo\n"))
    assert plan.start_date == datetime(2025, 3, 4, 4, 30, tzinfo=timezone.utc)


def test_bad_start_date_is_an_error(front):
    probs = front.problems(_wf("  start_date: notadate\n"))
    assert {(p, line, col) for p, line, col, _ in probs} == {("workflow.start_date", 3, 3)}


# --- params, flags -----------------------------------------------------------------------------

def test_params_short_and_long_forms(front):
    plan = front.plan(_wf(
        "  params:\n"
        "    n: 5\n"
        "    who: world\n"
        "    items: [1, 2]\n"
        "    mode: {default: fast, type: string, description: how, enum: [fast, slow]}\n"
        "    nothing: null\n"))
    assert plan.params == {
        "n": ParamSpec(5), "who": ParamSpec("world"), "items": ParamSpec([1, 2]),
        "mode": ParamSpec("fast", "string", "how", ("fast", "slow")), "nothing": ParamSpec(None)}


def test_bad_param_type_is_an_error(front):
    assert front.problems(_wf("  params:\n    n: {default: 1, type: int}\n")) == {
        ("workflow.params.n.type", 4, 21, "invalid_choice")}


def test_param_named_like_a_type_keeps_its_key_path(front):
    assert front.problems(_wf("  params:\n    date: {default: 1, type: int}\n")) == {
        ("workflow.params.date.type", 4, 24, "invalid_choice")}


def test_flags_and_metadata(front):
    plan = front.plan("orchestration: {enabled: false, max_concurrent_tasks: 3}\n" + _wf(
        "  description: 完整的全栈应用开发流程\n  catchup: true\n  tags: [x, y]\n  owner: ops\n"))
    assert (plan.enabled, plan.max_active_tasks, plan.catchup, plan.tags, plan.owner, plan.description) == (
        False, 3, True, ("x", "y"), "ops", "完整的全栈应用开发流程")


def test_defaults_of_flags(front):
    plan = front.plan(_wf(""))
    assert (plan.enabled, plan.max_active_tasks, plan.catchup, plan.tags, plan.owner, plan.description) == (
        True, 10, False, (), "iflow", None)
    assert plan.alerts.webhook is None
    assert plan.alerts.events == ("task_failed", "run_failed", "resource_saturated", "run_late")


@pytest.mark.parametrize("value,code", [("0", "greater_than_equal"), ("10001", "less_than_equal"),
                                        ("lots", "int_parsing"), ("2.5", "int_from_float")])
def test_max_concurrent_tasks_range(front, value, code):
    text = f"orchestration: {{max_concurrent_tasks: {value}}}\n" + _wf("")
    assert front.problems(text) == {("orchestration.max_concurrent_tasks", 1, 17, code)}


def test_enabled_must_be_a_boolean(front):
    assert front.problems("orchestration: {enabled: maybe}\n" + _wf("")) == {
        ("orchestration.enabled", 1, 17, "bool_parsing")}
