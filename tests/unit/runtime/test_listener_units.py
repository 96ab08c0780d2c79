"""The listener hooks with stand-in task instances: what they decide, and that they never raise."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from iflow_airflow.build import registry
from iflow_airflow.runtime import monitor
from iflow_airflow.runtime.listeners import task_events


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def captured():
    metrics, h = [], Lines()
    sink = lambda *m: metrics.append(m)  # noqa: E731
    monitor.add_sink(sink)
    for name in ("iflow.monitor", "iflow.alerts"):
        logging.getLogger(name).addHandler(h)
        logging.getLogger(name).setLevel(logging.INFO)
    yield metrics, h.lines
    monitor.remove_sink(sink)
    for name in ("iflow.monitor", "iflow.alerts"):
        logging.getLogger(name).removeHandler(h)
    registry.clear()


def fake_ti(state, try_number=1, max_tries=2, tags=("iflow",), dag_id="wf"):
    now = datetime.now(timezone.utc)
    return SimpleNamespace(dag_id=dag_id, run_id="r1", task_id="t", try_number=try_number, max_tries=max_tries,
                           map_index=-1, state=state, start_date=now - timedelta(seconds=2), end_date=now,
                           queue="default", task=SimpleNamespace(pool="default_pool", dag=SimpleNamespace(tags=tags)))


@pytest.mark.parametrize("state, try_number, max_tries, final", [
    ("failed", 1, 3, True), ("up_for_retry", 3, 3, False), (None, 4, 3, True), (None, 2, 3, False),
])
def test_final_failure(state, try_number, max_tries, final):
    assert task_events.is_final_failure(fake_ti(state, try_number, max_tries)) is final


def test_retry_then_final_failure(captured):
    metrics, lines = captured
    task_events.on_task_instance_failed(None, fake_ti("up_for_retry", 1), ValueError("boom"))
    task_events.on_task_instance_failed(None, fake_ti("failed", 3), ValueError("boom"))
    names = [(m[0], m[1]) for m in metrics]
    assert ("incr", "iflow.task.retry") in names and ("incr", "iflow.task.failed") in names
    assert names.count(("incr", "iflow.alert")) == 2  # both alerts logged (no webhook: not posted)
    events = [ln.split()[1] for ln in lines]
    assert events == ["event=task_retry", "event=alert", "event=task_failed", "event=alert"]
    assert lines[2].startswith("iflow event=task_failed workflow=wf run_id=r1 task=t try_number=3 max_tries=2 "
                               "duration_ms=")
    assert lines[2].endswith('error="ValueError: boom"')
    timing = next(m for m in metrics if m[1] == "iflow.task.duration" and m[3]["state"] == "failed")
    assert 1900 <= timing[2] <= 2100 and timing[3] == {"workflow": "wf", "task": "t", "state": "failed"}


def test_other_dags_and_broken_task_instances_are_ignored(captured):
    metrics, lines = captured
    task_events.on_task_instance_success(None, fake_ti("success", tags=("etl",), dag_id="plain"))

    class Exploding:
        dag_id = "wf"

        @property
        def run_id(self):
            raise RuntimeError("no run id today")

    registry.register(SimpleNamespace(dag_id="wf", alerts=None))  # a plan is known for "wf"
    task_events.on_task_instance_running(None, Exploding())  # logged and swallowed
    assert metrics == [] and lines == []
