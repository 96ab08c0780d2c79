"""Unit tests of the wait operator and its trigger; run without an Airflow database."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from op_helpers import EXAMPLES, HOSTILE, FakeTI, ctx, marker_values  # noqa: F401

# --------------------------------------------------------------------------- wait


def test_wait_needs_exactly_one_condition():
    from iflow_airflow.operators.wait import IflowWaitOperator

    with pytest.raises(ValueError, match="exactly one"):
        IflowWaitOperator(task_id="w")
    with pytest.raises(ValueError, match="exactly one"):
        IflowWaitOperator(task_id="w", file="/x", url="http://x")
    with pytest.raises(ValueError, match="both workflow and task"):
        IflowWaitOperator(task_id="w", workflow="other")


def test_wait_for_existing_file_returns_at_once(tmp_path):
    from iflow_airflow.operators.wait import IflowWaitOperator

    (tmp_path / "ready").write_text("ok")
    op = IflowWaitOperator(task_id="w", file=str(tmp_path / "ready"), timeout_seconds=5, poke_interval=1)
    started = time.monotonic()
    op.execute(ctx())
    assert time.monotonic() - started < 1


def test_wait_for_file_created_later(tmp_path):
    """The worker keeps polling until the file shows up."""
    from iflow_airflow.operators.wait import IflowWaitOperator

    target = tmp_path / "later"
    timer = threading.Timer(0.5, target.write_text, args=("x",))
    timer.start()
    try:
        IflowWaitOperator(task_id="w", file=str(target), timeout_seconds=10, poke_interval=0.1).execute(ctx())
    finally:
        timer.cancel()
    assert target.exists()


def test_wait_times_out_with_clear_message(tmp_path):
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.wait import IflowWaitOperator

    op = IflowWaitOperator(task_id="w", file=str(tmp_path / "never"), timeout_seconds=0.6, poke_interval=0.1)
    started = time.monotonic()
    with pytest.raises(AirflowException) as err:
        op.execute(ctx())
    assert 0.5 < time.monotonic() - started < 5
    assert str(err.value) == (
        f"wait for file {tmp_path / 'never'} timed out after 0.6 s (coordination.communication_timeout)"
    )


def test_wait_until_a_time(tmp_path):
    """A past time holds at once; a near future time is slept until; a far one times out."""
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.wait import IflowWaitOperator

    now = datetime.now(timezone.utc)
    IflowWaitOperator(task_id="p", until=now - timedelta(hours=1), timeout_seconds=1).execute(ctx())
    soon = now + timedelta(seconds=0.7)
    IflowWaitOperator(task_id="s", until=soon.isoformat(), timeout_seconds=5, poke_interval=10).execute(ctx())
    assert datetime.now(timezone.utc) >= soon
    with pytest.raises(AirflowException, match="timed out after 0.3 s"):
        IflowWaitOperator(task_id="f", until=now + timedelta(hours=1), timeout_seconds=0.3).execute(ctx())


@pytest.fixture
def http_server():
    """A local HTTP server: /ok answers 200, anything else 404."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            self.send_response(200 if self.path == "/ok" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_wait_for_url_needs_2xx(http_server):
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.wait import IflowWaitOperator

    IflowWaitOperator(task_id="ok", url=f"{http_server}/ok", timeout_seconds=5, poke_interval=0.1).execute(ctx())
    with pytest.raises(AirflowException, match="timed out"):
        IflowWaitOperator(
            task_id="nf", url=f"{http_server}/missing", timeout_seconds=0.5, poke_interval=0.1
        ).execute(ctx())


def test_deferrable_external_wait_picks_its_trigger(monkeypatch):
    """Latest run known -> the provider's WorkflowTrigger pinned to it; no run yet -> IflowWaitTrigger."""
    from airflow.providers.standard.triggers.external_task import WorkflowTrigger
    from airflow.sdk.exceptions import TaskDeferred

    from iflow_airflow.operators.wait import IflowWaitOperator
    from iflow_airflow.triggers.wait import IflowWaitTrigger

    op = IflowWaitOperator(task_id="w", workflow="other", task="t", timeout_seconds=30, deferrable=True)
    monkeypatch.setattr(op, "latest_external_state", lambda context: ("run_2", "running"))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx())
    trig = deferred.value.trigger
    assert isinstance(trig, WorkflowTrigger)
    assert (trig.external_dag_id, trig.run_ids, list(trig.external_task_ids)) == ("other", ["run_2"], ["t"])
    assert trig.allowed_states == ["success"] and not trig.failed_states
    assert deferred.value.timeout == timedelta(seconds=30)

    monkeypatch.setattr(op, "latest_external_state", lambda context: (None, None))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx())
    trig = deferred.value.trigger
    assert isinstance(trig, IflowWaitTrigger) and trig.kind == "external_task"
    assert trig.deadline == pytest.approx(time.time() + 30, abs=5)

    monkeypatch.setattr(op, "latest_external_state", lambda context: ("run_2", "success"))
    assert op.execute(ctx()) is None  # already done: no deferral at all


def test_deferral_timeout_gets_the_wait_message():
    """Airflow's generic deferral timeout is reported as the wait's own communication_timeout error."""
    from airflow.sdk.exceptions import AirflowException, TaskDeferralTimeout

    from iflow_airflow.operators.wait import IflowWaitOperator

    op = IflowWaitOperator(task_id="w", url="http://127.0.0.1:9/x", timeout_seconds=7, deferrable=True)
    with pytest.raises(AirflowException, match=r"wait for url http://127.0.0.1:9/x timed out after 7 s") as err:
        op.resume_execution("__fail__", {"error": "Trigger timeout"}, ctx())
    assert isinstance(err.value.__cause__, TaskDeferralTimeout)
    assert op.resume_execution("execute_complete", {"event": {"status": "ok"}}, ctx()) is None
    with pytest.raises(AirflowException, match="timed out after 7 s"):
        op.resume_execution("execute_complete", {"event": {"status": "timeout"}}, ctx())


# --------------------------------------------------------------------------- trigger


def _first_event(trigger) -> Any:
    async def go():
        return await anext(trigger.run())

    return asyncio.run(asyncio.wait_for(go(), 20)).payload


def test_trigger_serialize_round_trip():
    """The triggerer rebuilds the trigger from serialize(): it must give an equal one back."""
    from iflow_airflow.triggers.wait import IflowWaitTrigger

    trig = IflowWaitTrigger("until", until="2026-01-01T00:00:00", poke_interval=2, deadline=123.0, timeout_seconds=9)
    classpath, kwargs = trig.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["until"] == "2026-01-01T00:00:00+00:00"


def test_trigger_file_and_timeout_events(tmp_path):
    from iflow_airflow.triggers.wait import IflowWaitTrigger

    (tmp_path / "f").write_text("x")
    ok = IflowWaitTrigger("file", file=str(tmp_path / "f"), deadline=time.time() + 5)
    assert _first_event(ok)["status"] == "ok"
    late = IflowWaitTrigger("file", file=str(tmp_path / "g"), poke_interval=0.1, deadline=time.time() + 0.4)
    event = _first_event(late)
    assert event["status"] == "timeout" and event["what"] == f"file {tmp_path / 'g'}"


def test_trigger_url_and_time(http_server):
    from iflow_airflow.triggers.wait import IflowWaitTrigger

    assert _first_event(IflowWaitTrigger("url", url=f"{http_server}/ok", deadline=time.time() + 5))["status"] == "ok"
    bad = IflowWaitTrigger("url", url=f"{http_server}/nope", poke_interval=0.1, deadline=time.time() + 0.4)
    assert _first_event(bad)["status"] == "timeout"
    soon = (datetime.now(timezone.utc) + timedelta(seconds=0.5)).isoformat()
    assert _first_event(IflowWaitTrigger("until", until=soon, deadline=time.time() + 5))["status"] == "ok"
    assert datetime.now(timezone.utc) >= datetime.fromisoformat(soon)


