"""alerts.py against real HTTP servers on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest

from iflow_airflow.runtime import alerts, monitor

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))
from receivers import WebhookReceiver as Receiver  # noqa: E402


def test_payload_shape():
    p = alerts.build_payload("task_failed", "wf", run_id="manual__1", task="load", try_number=4,
                             error="ValueError: boom", at="2026-01-01T00:00:00.000Z", max_tries=3)
    assert p == {
        "event": "task_failed", "workflow": "wf", "run_id": "manual__1", "task": "load", "try_number": 4,
        "error": "ValueError: boom", "at": "2026-01-01T00:00:00.000Z",
        "message": "task load of workflow wf failed for good (try 4) in run manual__1: ValueError: boom",
        "source": "iflow-airflow", "max_tries": 3,
    }
    long = alerts.build_payload("run_failed", "wf", error="x" * 5000)
    assert len(long["error"]) == alerts.MAX_ERROR_CHARS


def test_delivered_first_time():
    with Receiver() as rx:
        d = alerts.post_json(rx.url, {"event": "run_failed", "workflow": "wf"})
    assert (d.delivered, d.attempts, d.status, d.error) == (True, 1, 200, None)
    assert rx.requests[0]["body"] == {"event": "run_failed", "workflow": "wf"}
    assert rx.requests[0]["headers"]["Content-Type"] == "application/json; charset=utf-8"


def test_fails_twice_then_succeeds_with_backoff():
    with Receiver(statuses=[503, 500]) as rx:
        d = alerts.post_json(rx.url, {"event": "x"})
    assert (d.delivered, d.attempts, d.status) == (True, 3, 200)
    gaps = [b["t"] - a["t"] for a, b in zip(rx.requests, rx.requests[1:])]
    assert len(rx.requests) == 3
    assert 0.5 <= gaps[0] < 0.9 and 1.0 <= gaps[1] < 1.4  # BACKOFF = (0.5, 1.0)


def test_client_error_is_not_retried():
    with Receiver(statuses=[404]) as rx:
        d = alerts.post_json(rx.url, {"event": "x"})
    assert (d.delivered, d.attempts, d.status, d.error) == (False, 1, 404, "HTTP 404")
    assert len(rx.requests) == 1


def test_always_failing_receiver_gets_three_tries():
    with Receiver(statuses=[500, 502, 503, 504]) as rx:
        d = alerts.post_json(rx.url, {"event": "x"})
    assert (d.delivered, d.attempts, d.status) == (False, 3, 503)
    assert len(rx.requests) == 3


def test_hanging_receiver_is_bounded_by_the_budget():
    """Defaults: 3 s per attempt, 0.5 s pause, the 2nd attempt cut off by the 6 s budget."""
    with Receiver(hang=True) as rx:
        t0 = time.monotonic()
        d = alerts.post_json(rx.url, {"event": "x"})
        elapsed = time.monotonic() - t0
    assert not d.delivered
    assert d.attempts == 2 and len(rx.requests) == 2
    assert "within the 6 s budget" in (d.error or "") and "ReadTimeout" in d.error
    assert alerts.BUDGET - 0.2 <= elapsed <= alerts.BUDGET + 0.5


def test_nobody_listening():
    with Receiver() as rx:
        url = rx.url
    d = alerts.post_json(url, {"event": "x"}, backoff=(0.05, 0.05))
    assert (d.delivered, d.attempts, d.status) == (False, 3, None)
    assert "ConnectionRefusedError" in d.error


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def alert_lines():
    """Lines of the ``iflow.alerts`` logger (a handler on the logger itself: Airflow may reconfigure root)."""
    logger = logging.getLogger("iflow.alerts")
    h, old = ListHandler(), logger.level
    logger.addHandler(h)
    logger.setLevel(logging.INFO)
    yield h.lines
    logger.removeHandler(h)
    logger.setLevel(old)


def test_alert_logs_always_and_posts_only_listed_events(alert_lines):
    seen = []
    monitor.add_sink(lambda *m: seen.append(m))
    with Receiver() as rx:
        d = alerts.alert("task_failed", "wf", webhook=rx.url, events=["task_failed"], run_id="r1",
                         task="t", try_number=2, error="boom")
        none = alerts.alert("task_retry", "wf", webhook=rx.url, events=["task_failed"], run_id="r1",
                            task="t", try_number=1, error="boom")
    assert d is not None and d.delivered and none is None
    assert [r["body"]["event"] for r in rx.requests] == ["task_failed"]
    body = rx.requests[0]["body"]
    assert (body["workflow"], body["run_id"], body["task"], body["try_number"], body["error"]) == (
        "wf", "r1", "t", 2, "boom")
    lines = alert_lines
    assert lines[0].startswith("iflow event=alert alert=task_failed workflow=wf run_id=r1 task=t try_number=2 "
                               "channels=webhook message=")
    assert lines[1].startswith("iflow event=alert_delivered alert=task_failed workflow=wf run_id=r1 task=t")
    assert lines[2].startswith("iflow event=alert alert=task_retry workflow=wf run_id=r1 task=t try_number=1 "
                               "channels=none ")
    assert ("incr", "iflow.alert", 1.0, {"alert": "task_failed", "workflow": "wf"}) in seen
    assert ("incr", "iflow.alert.delivered", 1.0, {"alert": "task_failed", "workflow": "wf", "channel": "webhook"}
            ) in seen


def test_background_delivery_does_not_block():
    with Receiver(statuses=[500]) as rx:
        t0 = time.monotonic()
        assert alerts.alert("run_failed", "wf", webhook=rx.url, events=["run_failed"], run_id="r",
                            background=True) is None
        assert time.monotonic() - t0 < 0.3
        assert alerts.wait_for_background(10)
    assert [r["body"]["event"] for r in rx.requests] == ["run_failed", "run_failed"]


def test_monitor_line_format():
    assert monitor.format_event("task_failed", workflow="wf", task="t", try_number=2, error='Bad "x" = 1',
                                skipped=None, ms=1.23456) == (
        'iflow event=task_failed workflow=wf task=t try_number=2 error="Bad \\"x\\" = 1" ms=1.235')
    assert monitor.stat_part("a.b c") == "a__b_c"


@pytest.fixture(autouse=True)
def _no_sinks():
    yield
    monitor._sinks.clear()
