"""Alert channels against real receivers on 127.0.0.1: SMTP (aiosmtpd), Slack's and plain webhooks.

Connections come from ``AIRFLOW_CONN_*`` variables, as a deployment's secrets would;
the connection ids from ``AIRFLOW__IFLOW__*`` (``[iflow] smtp_conn_id`` / ``slack_conn_id``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from iflow_airflow.plan.ir import AlertSettings
from iflow_airflow.runtime import alerts, monitor, notify
from iflow_airflow.runtime.notify import lanes, message

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))
from receivers import DripReceiver, SmtpReceiver, WebhookReceiver  # noqa: E402


@pytest.fixture
def counted():
    seen: list[tuple] = []
    sink = lambda *m: seen.append(m)  # noqa: E731
    monitor.add_sink(sink)
    yield seen
    monitor.remove_sink(sink)


def _count(seen, name, **tags):
    return sum(1 for kind, n, _, t in seen if kind == "incr" and n == name and tags.items() <= t.items())


@pytest.fixture
def smtp(monkeypatch):
    with SmtpReceiver() as rx:
        monkeypatch.setenv("AIRFLOW_CONN_IFLOW_TEST_SMTP", rx.connection_uri())
        monkeypatch.setenv("AIRFLOW__IFLOW__SMTP_CONN_ID", "iflow_test_smtp")
        yield rx


@pytest.fixture
def slack(monkeypatch):
    with WebhookReceiver() as rx:
        monkeypatch.setenv("AIRFLOW_CONN_IFLOW_TEST_SLACK", json.dumps(
            {"conn_type": "slackwebhook", "password": rx.url.replace("/alerts", "/services/T0/B0/x")}))
        monkeypatch.setenv("AIRFLOW__IFLOW__SLACK_CONN_ID", "iflow_test_slack")
        yield rx


def _cfg(**kw) -> AlertSettings:
    return AlertSettings(kw.pop("webhook", None), tuple(kw.pop("events", ("task_failed", "run_late"))), **kw)


class _Plan:
    def __init__(self, dag_id: str, cfg: AlertSettings):
        self.dag_id, self.alerts = dag_id, cfg


def test_email_reaches_a_real_smtp_server(smtp, counted):
    plan = _Plan("nightly_etl", _cfg(email=("oncall@example.test", "lead@example.test")))
    d = alerts.alert_for(plan, "task_failed", run_id="manual__1", task="load", try_number=3,
                         error="ValueError: {{ boom }} <b>")
    assert d is not None and d.delivered, d
    (mail,) = smtp.messages
    assert mail["to"] == ["oncall@example.test", "lead@example.test"]
    assert mail["from"] == "iflow@example.test"  # the connection's from_email extra
    assert mail["subject"] == "[iflow] task_failed: nightly_etl manual__1 load"
    body = mail["body"]
    assert "task load of workflow nightly_etl failed for good (try 3)" in body
    assert "ValueError: {{ boom }} &lt;b&gt;" in body  # not rendered as a template, escaped as HTML
    assert 'href="http://localhost:8080/dags/nightly_etl/runs/manual__1/tasks/load"' in body
    assert _count(counted, "iflow.alert.delivered", channel="email", workflow="nightly_etl") == 1


def test_slack_through_the_providers_webhook_notifier(slack, counted):
    plan = _Plan("wf", _cfg(slack=True, slack_channel="#data-oncall"))
    d = alerts.alert_for(plan, "run_late", run_id="scheduled__2", deadline="45m", started_at="2026-01-01T00:00:00Z")
    assert d is not None and d.delivered, d
    (req,) = slack.requests
    assert req["path"] == "/services/T0/B0/x"
    text = req["body"]["text"]
    assert text.startswith("run scheduled__2 of workflow wf is late: not finished 45m after it started")
    assert "(to #data-oncall)" in text and "open: http://localhost:8080/dags/wf/runs/scheduled__2" in text
    assert _count(counted, "iflow.alert.delivered", channel="slack") == 1


def test_missing_connection_is_logged_and_counted_never_raised(monkeypatch, counted):
    monkeypatch.setenv("AIRFLOW__IFLOW__SMTP_CONN_ID", "no_such_connection")
    monkeypatch.setenv("AIRFLOW__IFLOW__SLACK_CONN_ID", "no_such_connection_either")
    plan = _Plan("wf", _cfg(email=("a@example.test",), slack=True))
    t0 = time.monotonic()
    results = notify.send(alerts.build_payload("task_failed", "wf"), notify.receivers(plan.alerts),
                          background=False)
    assert time.monotonic() - t0 < notify.BUDGET
    email, slack_d = results["email:no_such_connection"], results["slack:no_such_connection_either"]
    assert not email.delivered and "not found" in email.error.lower()
    assert not slack_d.delivered and "no_such_connection_either" in slack_d.error
    assert _count(counted, "iflow.alert.undelivered", channel="email") == 1
    assert _count(counted, "iflow.alert.undelivered", channel="slack") == 1


def test_a_dripping_receiver_is_cut_off_at_the_budget():
    """Issue 14 D8: one byte a second never trips a per-read timeout; the budget still holds."""
    with DripReceiver(gap=0.5) as rx:
        t0 = time.monotonic()
        d = alerts.post_json(rx.url, {"event": "x"})
        elapsed = time.monotonic() - t0
    assert not d.delivered and "budget" in d.error
    assert alerts.BUDGET - 0.2 <= elapsed <= alerts.BUDGET + 1.0


def test_a_slow_receiver_never_delays_another_workflow_or_channel(smtp):
    """Two workflows, one with a hanging webhook: the other's alert and the mail arrive at once."""
    message.base_url()  # Airflow's configuration imported once, as in a scheduler, before the clock starts
    with WebhookReceiver(hang=True) as slow, WebhookReceiver() as fast:
        t0 = time.monotonic()
        for _ in range(3):
            alerts.alert_for(_Plan("slow_wf", _cfg(webhook=slow.url, email=("a@example.test",))),
                             "task_failed", background=True, run_id="r")
        alerts.alert_for(_Plan("fast_wf", _cfg(webhook=fast.url)), "task_failed", background=True, run_id="r")
        # background: the scheduler never waits, not even for one hung delivery (BUDGET s)
        assert time.monotonic() - t0 < alerts.BUDGET
        deadline = time.monotonic() + 20
        while (len(fast.requests) < 1 or len(smtp.messages) < 3) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(fast.requests) == 1 and len(smtp.messages) == 3
        # behind one lane the other workflow's alert would come after 3 x BUDGET s of hung deliveries;
        # on lanes of their own the alert and all three mails come before the first one gives up
        assert fast.requests[0]["t"] - t0 < alerts.BUDGET and smtp.messages[-1]["t"] - t0 < alerts.BUDGET
        slow.release.set()
    assert alerts.wait_for_background(3 * alerts.BUDGET + 5)


def test_a_dead_receiver_fails_fast_and_the_task_process_waits_at_most_the_budget(counted):
    with WebhookReceiver() as rx:
        dead = rx.url  # closed on exit: nobody listens there any more
    with WebhookReceiver(hang=True) as hung:
        plan = _Plan("wf", _cfg(webhook=hung.url))
        t0 = time.monotonic()
        d = alerts.alert_for(plan, "task_failed", run_id="r")  # background=False: a task process
        assert time.monotonic() - t0 <= notify.BUDGET + notify.SYNC_MARGIN + 0.3
        assert d is not None and not d.delivered
    d = alerts.post_json(dead, {"event": "x"}, backoff=(0.05, 0.05))
    assert not d.delivered and d.elapsed < 2.0 and "ConnectionRefusedError" in d.error
    assert _count(counted, "iflow.alert.undelivered", channel="webhook") == 1


def test_a_full_lane_drops_with_a_count_instead_of_blocking(monkeypatch, counted):
    monkeypatch.setattr(lanes, "MAX_PENDING", 2)
    message.base_url()  # Airflow's configuration imported once, as in a scheduler, before the clock starts
    with WebhookReceiver(hang=True) as hung:
        plan = _Plan("wf", _cfg(webhook=hung.url + "?full"))  # a lane of its own, made with MAX_PENDING = 2
        t0 = time.monotonic()
        for _ in range(6):
            alerts.alert_for(plan, "task_failed", background=True, run_id="r")
        assert time.monotonic() - t0 < alerts.BUDGET  # nothing waited for the hung receiver
        # one delivery may already run (off the queue): 2 or 3 kept, the rest dropped
        assert _count(counted, "iflow.alert.undelivered", channel="webhook", reason="dropped") in (3, 4)
        hung.release.set()
    assert alerts.wait_for_background(6 * alerts.BUDGET)


def test_ui_link_quotes_and_uses_the_base_url():
    assert message.ui_link("https://af.example/", "wf", "manual__2026-01-01T00:00:00+00:00", "a b") == (
        "https://af.example/dags/wf/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00/tasks/a%20b")
    assert message.ui_link(None, "wf", None) == "http://localhost:8080/dags/wf"
