"""Coordination on a real Airflow (dag-processor, scheduler, api-server, triggerer; harness.py).

One deployment serves the module (Airflow's start-up is the expensive part):

* asynchronous waits defer to the triggerer (no worker slot) and come back when the
  file the test creates appears, or fail with the wait's own timeout error;
* ``emits:`` -> asset events -> workflows scheduled on ``{events: [...]}`` /
  ``{events_any: [...]}`` run (and an ``events`` list waits for all of them);
* ``iflow-airflow run --wait`` shows progress and exits with the run's outcome;
  ``iflow-airflow resume`` re-runs only the failed tasks and their dependants;
* the engine API in remote mode triggers a deployed workflow, or says it is not deployed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import REPO_ROOT, AirflowDeployment

from iflow_airflow import WorkflowEngine
from iflow_airflow.client.rest import WorkflowNotDeployedError

pytestmark = pytest.mark.e2e
CLI = str(Path(sys.executable).parent / "iflow-airflow")
TRIGGER_CLASS = "iflow_airflow.triggers.wait.IflowWaitTrigger"


def workflows(tmp: Path) -> dict[str, str]:
    arrived, never, marker = tmp / "arrived", tmp / "never_created", tmp / "marker"
    return {
        "coord_async_wait": f"""
            orchestration: {{retry_attempts: 0}}
            coordination: {{sync_mode: asynchronous, communication_timeout: 300}}
            workflow:
              name: coord_async_wait
              tasks:
                - id: wait_file
                  wait: {{file: "{arrived}", poke_interval: 1}}
                - id: after
                  dependencies: [wait_file]
                  command: echo "file arrived"
            """,
        "coord_async_timeout": f"""
            orchestration: {{retry_attempts: 0}}
            coordination: {{sync_mode: asynchronous, communication_timeout: 3}}
            workflow:
              name: coord_async_timeout
              tasks:
                - id: wait_never
                  wait: {{file: "{never}", poke_interval: 0.5}}
            """,
        "coord_producer": """
            workflow:
              name: coord_producer
              tasks:
                - id: make
                  command: echo made
                - id: publish
                  dependencies: [make]
                  emits: [coord_ready]
            """,
        "coord_other_producer": """
            workflow:
              name: coord_other_producer
              tasks:
                - {id: publish_other, emits: [coord_other]}
            """,
        "coord_consumer": """
            workflow:
              name: coord_consumer
              schedule: {events: [coord_ready]}
              tasks:
                - {id: consume, command: echo consumed}
            """,
        "coord_consumer_any": """
            workflow:
              name: coord_consumer_any
              schedule: {events_any: [coord_ready, coord_never_emitted]}
              tasks:
                - {id: consume, command: echo consumed}
            """,
        "coord_consumer_all": """
            workflow:
              name: coord_consumer_all
              schedule: {events: [coord_ready, coord_other]}
              tasks:
                - {id: consume, command: echo consumed}
            """,
        "coord_resume": f"""
            orchestration: {{retry_attempts: 0}}
            workflow:
              name: coord_resume
              params: {{who: nobody}}
              tasks:
                - id: prepare
                  command: echo "prepared for $IFLOW_PARAM_who"
                - id: flaky
                  dependencies: [prepare]
                  command: test -f "{marker}"
                - id: after
                  dependencies: [flaky]
                  command: echo done
            """,
    }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("iflow_coordination")
    dags, files = root / "dags", root / "files"
    dags.mkdir()
    files.mkdir()
    shutil.copy(REPO_ROOT / "dags" / "iflow_dags.py", dags / "iflow_dags.py")
    flows = workflows(files)
    for name, text in flows.items():
        (dags / f"{name}.yaml").write_text(textwrap.dedent(text))
    af = AirflowDeployment(root / "home", dags, components=("dag-processor", "scheduler", "api-server", "triggerer"))
    try:
        af.start()
        for name in flows:
            af.client.wait_for_dag(name, timeout=180)
        password = json.loads(af.password_file.read_text())["admin"]
        yield {"af": af, "files": files, "password": password}
    finally:
        try:
            af.stop()
        finally:
            print(f"\n[e2e coordination] timings {({k: round(v, 1) for k, v in af.timings.items()})}")


def tis(af, dag_id: str, run_id: str) -> dict[str, dict]:
    return {t["task_id"]: t for t in af.client.task_instances(dag_id, run_id)}


def log_text(af, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
    r = af.client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                          params={"full_content": "true"}, headers={"Accept": "application/json"})
    return r.text


def runs_of(af, dag_id: str) -> list[dict]:
    return af.client.get(f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]


def cli(deployment, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"IFLOW_AIRFLOW_URL": deployment["af"].base_url, "IFLOW_AIRFLOW_USER": "admin",
                "IFLOW_AIRFLOW_PASSWORD": deployment["password"]})
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def async_runs(deployment) -> dict:
    """Both asynchronous workflows (and, while the wait is deferred, the event producers) run."""
    af, files = deployment["af"], deployment["files"]
    client = af.client
    out: dict = {}
    run_id = client.trigger("coord_async_wait")
    deferred = client.wait_until(
        lambda: (t := tis(af, "coord_async_wait", run_id).get("wait_file")) and t["state"] == "deferred" and t,
        120, "wait_file to be deferred")
    out["deferred_ti"] = deferred
    out["pool_while_deferred"] = client.get("/api/v2/pools/default_pool")
    # While the file is missing, the task stays deferred (the triggerer polls, no worker).
    out["timeout_run"] = client.trigger("coord_async_timeout")
    out["producer_run"] = client.trigger("coord_producer")
    time.sleep(5)
    out["still"] = tis(af, "coord_async_wait", run_id)["wait_file"]["state"]
    (files / "arrived").write_text("here\n")
    out["wait_state"] = client.wait_for_run("coord_async_wait", run_id, timeout=180)
    out["wait_tis"] = tis(af, "coord_async_wait", run_id)
    out["timeout_state"] = client.wait_for_run("coord_async_timeout", out["timeout_run"], timeout=180)
    out["timeout_tis"] = tis(af, "coord_async_timeout", out["timeout_run"])
    out["timeout_log"] = log_text(af, "coord_async_timeout", out["timeout_run"], "wait_never",
                                  out["timeout_tis"]["wait_never"]["try_number"])
    out["wait_run"] = run_id
    return out


def test_asynchronous_wait_defers_to_the_triggerer_and_resumes_when_the_file_exists(async_runs, deployment):
    deferred = async_runs["deferred_ti"]
    assert deferred["trigger"]["classpath"] == TRIGGER_CLASS
    pool = async_runs["pool_while_deferred"]
    assert (pool["deferred_slots"], pool["running_slots"]) == (1, 0)  # deferred: no worker slot held
    assert async_runs["still"] == "deferred"
    assert async_runs["wait_state"] == "success"
    got = {t: (v["state"], v["try_number"]) for t, v in async_runs["wait_tis"].items()}
    assert got == {"wait_file": ("success", 1), "after": ("success", 1)}


def test_asynchronous_wait_times_out_with_the_clear_error(async_runs, deployment):
    assert async_runs["timeout_state"] == "failed"
    assert async_runs["timeout_tis"]["wait_never"]["state"] == "failed"
    never = deployment["files"] / "never_created"
    log = async_runs["timeout_log"]
    assert f"wait for file {never}: deferring (up to 3 s)" in log
    assert f"wait for file {never} timed out after 3 s (coordination.communication_timeout)" in log


def test_emitted_events_run_the_workflows_scheduled_on_them(async_runs, deployment):
    af = deployment["af"]
    client = af.client
    assert client.wait_for_run("coord_producer", async_runs["producer_run"], timeout=180) == "success"

    def finished(dag_id: str):
        runs = runs_of(af, dag_id)
        return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else None

    for dag_id in ("coord_consumer", "coord_consumer_any"):
        runs = client.wait_until(lambda d=dag_id: finished(d), 180, f"an asset-triggered run of {dag_id}")
        assert [(r["run_type"], r["state"]) for r in runs] == [("asset_triggered", "success")]
    assert runs_of(af, "coord_consumer_all") == []  # needs coord_other too
    other = client.trigger("coord_other_producer")
    assert client.wait_for_run("coord_other_producer", other, timeout=180) == "success"
    runs = client.wait_until(lambda: finished("coord_consumer_all"), 180, "coord_consumer_all to run")
    assert [(r["run_type"], r["state"]) for r in runs] == [("asset_triggered", "success")]


@pytest.fixture(scope="module")
def resumed(deployment) -> dict:
    af, files = deployment["af"], deployment["files"]
    out: dict = {}
    out["run"] = cli(deployment, "run", "coord_resume", "--conf", "who=tester", "--wait")
    run_id = af.client.get("/api/v2/dags/coord_resume/dagRuns")["dag_runs"][0]["dag_run_id"]
    out["run_id"] = run_id
    out["before"] = tis(af, "coord_resume", run_id)
    (files / "marker").write_text("ok\n")
    out["resume"] = cli(deployment, "resume", "coord_resume", "--wait")
    out["after"] = tis(af, "coord_resume", run_id)
    out["run_state"] = af.client.dag_run("coord_resume", run_id)["state"]
    return out


def test_run_cli_triggers_shows_progress_and_exits_with_the_outcome(resumed):
    proc, run_id = resumed["run"], resumed["run_id"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"triggered coord_resume: run {run_id}"
    assert lines[-2] == "[" + "#" * 20 + "] 3/3 done  failed: after, flaky  (run failed)"
    assert lines[-1] == f"run {run_id} of coord_resume: failed"
    assert len(lines) >= 4  # at least one progress line before the last one
    before = {t: (v["state"], v["try_number"]) for t, v in resumed["before"].items()}
    assert before == {"prepare": ("success", 1), "flaky": ("failed", 1), "after": ("upstream_failed", 0)}


def test_resume_reruns_only_the_failed_tasks_and_their_dependants(resumed, deployment):
    proc, run_id = resumed["resume"], resumed["run_id"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"resuming run {run_id} of coord_resume: re-running after, flaky"
    assert lines[-1] == f"run {run_id} of coord_resume: success"
    assert resumed["run_state"] == "success"
    after = {t: (v["state"], v["try_number"]) for t, v in resumed["after"].items()}
    assert after == {"prepare": ("success", 1), "flaky": ("success", 2), "after": ("success", 1)}
    # prepare was not run again: the same attempt, same start
    assert resumed["after"]["prepare"]["start_date"] == resumed["before"]["prepare"]["start_date"]
    result = deployment["af"].client.get(
        f"/api/v2/dags/coord_resume/dagRuns/{run_id}/taskInstances/prepare/xcomEntries/return_value")
    assert "prepared for tester" in json.dumps(result)
    again = cli(deployment, "resume", "coord_resume")  # no failed run left
    assert (again.returncode, again.stderr.strip()) == (
        2, "iflow-airflow resume: workflow 'coord_resume' has no failed run to resume")


def test_engine_runs_a_deployed_workflow_or_says_it_is_not_deployed(resumed, deployment):
    af = deployment["af"]
    engine = WorkflowEngine(url=af.base_url, username="admin", password=deployment["password"], timeout=180)
    result = engine.run_workflow("coord_resume", {"tasks": [{"id": "prepare"}]})  # validated, not run
    assert (result.state, result.mode) == ("success", "remote")
    assert {t: (r.state, r.tries) for t, r in result.tasks.items()} == {
        "prepare": ("success", 1), "flaky": ("success", 1), "after": ("success", 1)}
    assert result.results == {"prepare": "prepared for nobody", "after": "done"}
    assert result.figures["runs"] == {"total": 1, "by_state": {"success": 1}}
    assert result.figures["sync_delay"]["count"] == 2
    with pytest.raises(WorkflowNotDeployedError) as info:
        engine.run_workflow("coord_nowhere")
    assert str(info.value).startswith(
        f"workflow 'coord_nowhere' is not deployed on the Airflow at {af.base_url}; deployed iflow workflows: "
        "coord_async_timeout, coord_async_wait, coord_consumer, coord_consumer_all, coord_consumer_any, "
        "coord_other_producer, coord_producer, coord_resume (")
