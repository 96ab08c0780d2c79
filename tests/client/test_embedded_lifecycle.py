"""The embedded engine's lifecycle: nothing starts on a bad definition, a start failure says why,
and no process outlives a caller that was SIGKILLed. At most one embedded Airflow at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from iflow_airflow import WorkflowEngine
from iflow_airflow.client.embedded import MARKER_KEY, EngineStartError
from iflow_airflow.client.supervisor import marked_processes
from iflow_airflow.errors import WorkflowFileError

pytestmark = pytest.mark.e2e

CHILD = textwrap.dedent("""
    import json, sys
    from iflow_airflow import WorkflowEngine

    engine = WorkflowEngine(timeout=600, startup_timeout=300, parse_timeout=300)
    embedded = engine.embedded()
    embedded.client()  # started and answering
    print(json.dumps({"marker": embedded.marker, "home": str(embedded.home)}), flush=True)
    engine.run_workflow("emb_orphan", {"orchestration": {"retry_attempts": 0},
                                       "tasks": [{"id": "long", "command": "sleep 171"}]})
""")


EXITING = textwrap.dedent("""
    import json
    from iflow_airflow import WorkflowEngine

    engine = WorkflowEngine(timeout=600, startup_timeout=300, parse_timeout=300)  # never closed
    result = engine.run_workflow("emb_exit", {"tasks": [{"id": "a", "command": "echo bye"}]})
    print(json.dumps({"marker": engine.embedded().marker, "home": str(engine.home), "state": result.state}))
""")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def test_a_bad_definition_raises_before_anything_starts():
    engine = WorkflowEngine()
    with pytest.raises(WorkflowFileError) as info:
        engine.run_workflow("emb_bad", {"tasks": [{"id": "a", "dependencies": ["nope"], "command": "true"}]})
    assert "nope" in str(info.value) and "dependencies" in str(info.value)
    assert engine._embedded is None or engine._embedded._proc is None  # no Airflow was started
    engine.close()


def test_a_start_failure_says_why():
    engine = WorkflowEngine(database_url="postgresql+psycopg2://iflow_nobody@127.0.0.1:1/iflow_none",
                            startup_timeout=300)
    try:
        with pytest.raises(EngineStartError) as info:
            engine.run_workflow("emb_nodb", {"tasks": [{"id": "a", "command": "true"}]})
        marker, home = engine.embedded().marker, engine.home
    finally:
        engine.close()
    message = str(info.value)
    assert "could not start" in message and "`airflow db migrate` failed" in message, message
    assert "127.0.0.1:1" in message  # the database it tried, and the driver's complaint in the log tail
    assert "connection" in message.lower(), message
    assert not home.exists()
    assert not marked_processes(MARKER_KEY, marker)


def test_nothing_outlives_a_sigkilled_caller(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=open(
        tmp_path / "child.log", "wb"), text=True, start_new_session=True)
    try:
        line = child.stdout.readline()
        assert line, (tmp_path / "child.log").read_text()[-3000:]
        info = json.loads(line)

        def task_running():
            return [p for p in marked_processes(MARKER_KEY, info["marker"]) if "sleep 171" in " ".join(p.cmdline())]

        wait_for(task_running, 300, "the task's `sleep 171` to run")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        wait_for(lambda: not marked_processes(MARKER_KEY, info["marker"]), 120,
                 "every process of the embedded Airflow to end after its caller was SIGKILLed")
        wait_for(lambda: not os.path.exists(info["home"]), 30, "the orphaned temporary home to be removed")
    finally:
        if child.poll() is None:
            child.kill()


def test_interpreter_exit_stops_an_engine_that_was_never_closed():
    done = subprocess.run([sys.executable, "-c", EXITING], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["state"] == "success"
    assert not marked_processes(MARKER_KEY, info["marker"])  # the exit handler waited for the teardown
    assert not os.path.exists(info["home"])
