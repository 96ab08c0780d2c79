"""workflow.alerts / workflow.deadline -> the plan's AlertSettings, and their located errors."""

from __future__ import annotations

import pytest
from compile_helpers import compile_text, plan_of

from iflow_airflow import constants

FILE = """\
workflow:
  name: wf
  deadline: {deadline}
  alerts:
    email: {email}
    slack: {{channel: "#data-oncall"}}
  tasks: [{{id: a}}]
"""


def test_channels_and_deadline_reach_the_plan(tmp_path):
    plan = plan_of(tmp_path, FILE.format(deadline="1h30m", email="oncall@example.com"))
    a = plan.alerts
    assert (a.email, a.slack, a.slack_channel, a.deadline) == (("oncall@example.com",), True, "#data-oncall", 5400.0)
    assert a.channels == ("email", "slack") and "run_late" in a.events
    assert plan_of(tmp_path, FILE.format(deadline=90, email="[a@x.io, b@x.io]")).alerts.deadline == 90.0


@pytest.mark.parametrize("deadline", ["0m", "soon", "true"])
def test_a_deadline_that_is_no_duration_is_located(tmp_path, deadline):
    (p,) = compile_text(tmp_path, FILE.format(deadline=deadline, email="a@x.io")).error.problems
    assert (p.key_path, p.line) == ("workflow.deadline", 3)
    assert p.code == "deadline" or deadline == "true"  # `true` is no string or integer: the schema says so


def test_a_channel_whose_provider_is_missing_gets_a_located_error(tmp_path, monkeypatch):
    """The real metadata lookup, asked for a distribution that is not installed."""
    monkeypatch.setitem(constants.CHANNEL_PROVIDERS, "slack", "apache-airflow-providers-not-installed-here")
    (p,) = compile_text(tmp_path, FILE.format(deadline="45m", email="a@x.io")).error.problems
    assert (p.key_path, p.line, p.code) == ("workflow.alerts.slack", 6, "channel_provider")
    assert "apache-airflow-providers-not-installed-here, which is not installed" in p.message
    assert "pip install 'iflow-airflow[notify]'" in p.expected


def test_plans_with_provider_channels_are_never_cached(tmp_path):
    """The provider check reads the environment, which can change while the file does not."""
    from iflow_airflow.plan import cache

    assert not cache.cacheable(plan_of(tmp_path, FILE.format(deadline="45m", email="a@x.io")))
    plain = plan_of(tmp_path, "workflow:\n  name: wf\n  deadline: 45m\n  alerts: {webhook: 'http://x/h'}\n"
                              "  tasks: [{id: a}]\n")
    assert cache.cacheable(plain)
