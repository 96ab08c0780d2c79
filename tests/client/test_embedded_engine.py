"""The engine's embedded default on a real private Airflow: orchestration as in a deployment.

One embedded Airflow (scheduler, dag-processor, triggerer, api-server, LocalExecutor,
SQLite) serves the whole module; its teardown checks that ``close()`` leaves no
process and no folder behind. Timing goals live in benchmarks/engine_bench.py; here
only orders and overlaps are asserted, from the task instances' own start/end times.
"""

from __future__ import annotations

import asyncio
import threading
import time
from itertools import combinations

import pytest

from iflow_airflow import WorkflowEngine
from iflow_airflow.client.embedded import MARKER_KEY
from iflow_airflow.client.supervisor import marked_processes

pytestmark = pytest.mark.e2e

NO_RETRY = {"retry_attempts": 0}


@pytest.fixture(scope="module")
def engine():
    eng = WorkflowEngine(timeout=600, startup_timeout=300, parse_timeout=300)
    with eng:
        marker = eng.embedded().marker
        yield eng
        home = eng.home
    assert home is not None and not home.exists(), "close() must remove the engine's temporary home"
    assert not marked_processes(MARKER_KEY, marker), "close() must leave no process of the embedded Airflow"


def intervals(result, tasks=None):
    """(task, start, end) of the finished tasks (all, or those named)."""
    return [(t, r.start_date, r.end_date) for t, r in result.tasks.items()
            if (tasks is None or t in tasks) and r.start_date and r.end_date]


def overlapping(spans):
    return [(a[0], b[0]) for a, b in combinations(spans, 2) if a[1] < b[2] and b[1] < a[2]]


def test_one_task_result_and_figures(engine):
    result = engine.run_workflow("emb_echo", {"tasks": [{"id": "a", "command": "echo hello; echo world"}]})
    assert (result.state, result.mode, result.results) == ("success", "embedded", {"a": "world"})
    assert result.tasks["a"].tries == 1
    assert result.figures["task_instances"] == 1
    again = engine.run_workflow("emb_echo", {"tasks": [{"id": "a", "command": "echo hello; echo world"}]})
    assert again.run_id != result.run_id and again.ok  # the warm Airflow runs the same version again


def test_independent_tasks_run_at_the_same_time(engine):
    tasks = [{"id": f"s{i}", "command": "sleep 4"} for i in range(3)]
    result = engine.run_workflow("emb_parallel", {"orchestration": NO_RETRY, "tasks": tasks})
    assert result.ok, result.log
    spans = intervals(result)
    assert len(spans) == 3
    assert len(overlapping(spans)) == 3, spans  # every pair overlaps: all three ran at once
    assert result.figures["concurrency"] >= 2


def test_a_one_slot_resource_is_never_shared(engine):
    tasks = [{"id": f"w{i}", "resource": "solo", "command": "sleep 1"} for i in range(3)]
    tasks.append({"id": "free", "command": "sleep 1"})
    result = engine.run_workflow("emb_solo", {"orchestration": NO_RETRY, "resources": {"solo": 1}, "tasks": tasks})
    assert result.ok, result.log
    assert overlapping(intervals(result, {"w0", "w1", "w2"})) == []


def test_priority_order_under_a_concurrency_cap(engine):
    levels = ["critical", "low", "high", "medium"]
    tasks = [{"id": f"t_{p}", "priority": p, "command": "sleep 1"} for p in levels]
    result = engine.run_workflow("emb_priority", {"orchestration": {**NO_RETRY, "max_concurrent_tasks": 1},
                                                  "tasks": tasks})
    assert result.ok, result.log
    order = [t for t, start, _ in sorted(intervals(result), key=lambda s: s[1])]
    assert order == ["t_critical", "t_high", "t_medium", "t_low"]
    assert overlapping(intervals(result)) == []


def test_concurrent_calls_contend_for_one_resource(engine):
    def definition(prefix: str, n: int) -> dict:
        return {"orchestration": NO_RETRY, "resources": {"shared_db": 1},
                "tasks": [{"id": f"{prefix}{i}", "resource": "shared_db", "command": "sleep 2"} for i in range(n)]}

    async def both():
        return await asyncio.gather(engine.execute_workflow("emb_contend_a", definition("a", 2)),
                                    engine.execute_workflow("emb_contend_b", definition("b", 2)))

    first, second = asyncio.run(both())
    assert first.ok and second.ok, (first.log, second.log)
    spans = intervals(first) + intervals(second)
    assert len(spans) == 4
    assert overlapping(spans) == [], spans
    # the two runs were in flight at once (each started before the other ended): they contended
    client = engine.embedded().client()
    runs = [client.dag_run(r.workflow, r.run_id) for r in (first, second)]
    assert runs[0]["start_date"] < runs[1]["end_date"] and runs[1]["start_date"] < runs[0]["end_date"], runs


def test_a_task_is_retried_until_it_succeeds(engine, tmp_path):
    mark = tmp_path / "tried_once"
    command = f"if [ -f '{mark}' ]; then echo second; else touch '{mark}'; echo first; exit 1; fi"
    result = engine.run_workflow("emb_retry", {
        "orchestration": {"retry_attempts": 2, "retry_delay": 1, "retry_backoff": "fixed"},
        "tasks": [{"id": "flaky", "command": command}]})
    assert result.ok, result.log
    assert (result.tasks["flaky"].tries, result.results) == (2, {"flaky": "second"})
    assert result.figures["retries"] == 1


def test_a_failure_carries_the_error_and_the_log_tail(engine):
    result = engine.run_workflow("emb_fail", {"orchestration": NO_RETRY, "tasks": [
        {"id": "boom", "command": "echo before-the-failure; exit 3"},
        {"id": "after", "dependencies": ["boom"], "command": "echo never"}]})
    assert (result.state, result.tasks["after"].state) == ("failed", "upstream_failed")
    assert result.error.startswith("AirflowException: command of task 'boom' failed with exit code 3"), result.error
    assert "before-the-failure" in result.tasks["boom"].log_tail
    assert "before-the-failure" in result.log


def test_an_asynchronous_wait_defers_to_the_triggerer(engine, tmp_path):
    flag = tmp_path / "arrived"
    definition = {"orchestration": NO_RETRY, "coordination": {"sync_mode": "asynchronous",
                                                              "communication_timeout": 300},
                  "tasks": [{"id": "wait_file", "wait": {"file": str(flag), "poke_interval": 1}},
                            {"id": "produce", "command": f"sleep 8; touch '{flag}'"},
                            {"id": "after", "dependencies": ["wait_file"], "command": "echo arrived"}]}
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        client = engine.embedded().client()
        while not done.is_set():
            for run in (client.runs("emb_defer", limit=1) if client.dag("emb_defer") else []):
                seen.update(t["state"] for t in client.task_instances("emb_defer", run["dag_run_id"])
                            if t["task_id"] == "wait_file" and t["state"])
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = engine.run_workflow("emb_defer", definition)
    finally:
        done.set()
        watcher.join(10)
    assert result.ok, result.log
    assert "deferred" in seen, seen
    assert result.results["after"] == "arrived"
