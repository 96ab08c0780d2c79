"""The engine API in test mode: a definition (dict) run by dag.test() in the engine's own private Airflow.

One run shows the result object (states, tries, results, figures) and a custom
monitor (tests/extension_pkg, registered by an entry point) receiving the
listeners' events inside dag.test().
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from iflow_airflow import WorkflowEngine

pytestmark = pytest.mark.airflow

EXT_DIR = Path(__file__).resolve().parents[1] / "extension_pkg"

DEFINITION = {  # the bare form: the workflow block's contents, other blocks beside them
    "description": "engine test",
    "orchestration": {"retry_attempts": 0},
    "monitors": ["test_recorder"],
    "tasks": [
        {"id": "a", "command": "echo hello; echo world"},
        {"id": "b", "dependencies": ["a"], "callable": "iflow_airflow.examples.callables:summarize",
         "kwargs": {"text": "sum"}},
        {"id": "c", "command": "echo boom; exit 3"},
        {"id": "d", "dependencies": ["c"], "command": "echo never"},
    ],
}


@pytest.fixture(scope="module")
def engine_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("engine")
    events = tmp / "events.jsonl"
    pythonpath = os.pathsep.join(p for p in (str(EXT_DIR), os.environ.get("PYTHONPATH")) if p)
    engine = WorkflowEngine(mode="test", allowed_modules=["iflow_airflow.examples", "iflow_test_ext"],
                            env={"PYTHONPATH": pythonpath, "IFLOW_TEST_MONITOR_LOG": str(events)}, timeout=600)
    with engine, pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXT_DIR))  # the engine validates here too: the extension must be importable
        result = asyncio.run(engine.execute_workflow("engine_demo", DEFINITION))
        home = engine.home
    assert home is not None and not home.exists()  # close() removed the private Airflow
    lines = [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
    return result, lines


def test_result_has_states_tries_results_and_figures(engine_run):
    result, _ = engine_run
    assert (result.workflow, result.state, result.mode, result.ok) == ("engine_demo", "failed", "test", False)
    got = {t: (r.state, r.tries, r.result) for t, r in result.tasks.items()}
    assert got == {
        "a": ("success", 1, "world"),
        "b": ("success", 1, "sum; a=world"),
        "c": ("failed", 1, None),
        "d": ("upstream_failed", 0, None),
    }, result.log[-4000:]
    assert result.results == {"a": "world", "b": "sum; a=world"}
    assert all(result.tasks[t].duration is not None and result.tasks[t].duration >= 0 for t in "abc")
    assert result.tasks["d"].duration == 0.0  # Airflow stamps start = end on upstream_failed
    fig = result.figures
    assert fig["name"] == "engine_demo"
    assert fig["runs"] == {"total": 1, "by_state": {"failed": 1}}
    assert fig["completion_rate"] == 0.0
    assert fig["task_instances"] == 4
    assert fig["retries"] == 0
    assert fig["concurrency"] == 1  # dag.test runs one task at a time
    assert fig["sync_delay"]["count"] == 2  # b after a; d (stamped upstream_failed) after c


def test_custom_monitor_receives_the_events_inside_dag_test(engine_run):
    result, lines = engine_run
    assert {line["workflow"] for line in lines} == {"engine_demo"}
    assert {line["run_id"] for line in lines} == {result.run_id}
    task_events = sorted((line["event"], line.get("task")) for line in lines if line["event"].startswith("task_"))
    assert task_events == sorted([
        ("task_running", "a"), ("task_success", "a"),
        ("task_running", "b"), ("task_success", "b"),
        ("task_running", "c"), ("task_failed", "c"),
    ])
    assert [line["event"] for line in lines if line["event"].startswith("run_")][-1] == "run_failed"
    failed = next(line for line in lines if line["event"] == "task_failed")
    assert failed["error"].startswith("AirflowException: command of task 'c' failed with exit code 3")
