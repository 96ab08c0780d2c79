"""The monitoring listeners inside dag.test(): log lines, StatsD metrics, webhook alerts.

Everything is real: the workflow YAML is loaded by the iflow loader from the dags
folder, the plugin's listeners fire in-process, metrics go to a StatsD UDP socket
opened by the test, alerts are POSTed to an http.server receiver on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from receivers import StatsdCollector, WebhookReceiver  # noqa: E402

# The words "airflow" and "dag" must appear (DagBag safe mode); own folder, own loader.
LOADER = '"""iflow loader: one Airflow DAG per workflow file here."""\n' \
         "from iflow_airflow.importer import load_workflows\n\nload_workflows(globals())\n"


PLAIN_DAG = textwrap.dedent("""
    import pendulum
    from airflow.sdk import DAG
    from airflow.providers.standard.operators.bash import BashOperator

    with DAG("plain_dag_unmonitored", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        BashOperator(task_id="fails", bash_command="exit 1", retries=0)
    """)


@pytest.fixture(scope="module")
def monitored(airflow_env):
    """Both DAGs run in ONE dag.test subprocess (Airflow's start-up costs seconds)."""
    rx, statsd = WebhookReceiver(), StatsdCollector()
    try:
        airflow_env.write_file("monitoring/iflow_dags.py", LOADER)
        airflow_env.write_file("monitoring/monitored.yaml", textwrap.dedent(f"""
            orchestration: {{retry_attempts: 0}}
            workflow:
              name: monitored_wf
              alerts:
                webhook: {rx.url}
                events: [task_failed, run_failed, task_retry]
              tasks:
                - id: prepare
                  command: echo prepared
                - id: boom
                  dependencies: [prepare]
                  retries: 1
                  retry_delay: 1
                  command: echo "about to fail"; exit 3
            """))
        airflow_env.write_file("monitoring_plain/plain_dag_unmonitored.py", PLAIN_DAG)
        result = airflow_env.run_dag_tests(
            [{"dag_id": "monitored_wf"}, {"dag_id": "plain_dag_unmonitored"}],
            extra_env={
                "AIRFLOW__METRICS__STATSD_ON": "True",
                "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
                "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            })
    finally:
        rx.close()
        packets = statsd.close()
    runs = {r["dag_id"]: r for r in result["runs"]}
    for r in runs.values():
        assert not r["error"], f"{r['error']}\n{result['output'][-6000:]}"
    return {"runs": runs, "output": result["output"], "bodies": rx.bodies, "packets": packets}


@pytest.mark.airflow
def test_failing_task_alerts_logs_and_measures(monitored):
    run = monitored["runs"]["monitored_wf"]
    rx_bodies, packets = monitored["bodies"], monitored["packets"]
    out = monitored["output"]
    assert run["state"] == "failed", out[-4000:]
    assert run["tasks"]["prepare"]["state"] == "success"
    assert run["tasks"]["boom"] == {"state": "failed", "try_number": 2}

    # webhook: the retry (try 1), the final failure (try 2), the run
    events = [(b["event"], b["task"], b["try_number"]) for b in rx_bodies]
    assert events == [("task_retry", "boom", 1), ("task_failed", "boom", 2), ("run_failed", None, None)], rx_bodies
    final = rx_bodies[1]
    assert final["workflow"] == "monitored_wf" and final["run_id"] == run["run_id"]
    assert final["error"].startswith("AirflowException: command of task 'boom' failed with exit code 3")
    assert final["max_tries"] == 1
    assert rx_bodies[2]["failed_tasks"] == ["boom"]
    assert rx_bodies[2]["error"] == "run failed: task_failure"

    # one structured line per event
    def lines(event):
        return [ln for ln in out.splitlines() if f"iflow event={event} " in ln]

    assert len(lines("task_running")) == 3  # prepare, boom try 1, boom try 2
    assert len(lines("task_success")) == 1 and "task=prepare" in lines("task_success")[0]
    assert len(lines("task_retry")) == 1 and "try_number=1" in lines("task_retry")[0]
    [failed] = lines("task_failed")
    assert f"workflow=monitored_wf run_id={run['run_id']} task=boom try_number=2 max_tries=1" in failed
    assert "error=\"AirflowException: command of task 'boom' failed with exit code 3" in failed
    # (no run_running here: dag.test() creates the run already running; the e2e test sees it)
    [run_failed] = lines("run_failed")
    assert "failed_tasks=boom reason=task_failure" in run_failed

    # metrics, through Airflow's StatsD logger: tagged name and per-workflow name
    names = {p.split(":")[0] for p in packets}
    for stat in ("task.running", "task.success", "task.retry", "task.failed", "run.failed", "alert.delivered"):
        assert f"airflow.iflow.{stat}" in names, sorted(names)
        assert f"airflow.iflow.{stat}.monitored_wf" in names, sorted(names)
    assert "airflow.iflow.task.failed.monitored_wf:1|c" in packets
    assert any(p.startswith("airflow.iflow.run.duration.monitored_wf:") and p.endswith("|ms") for p in packets)
    # (queue latency needs an executor's queued time: checked on a real scheduler in tests/e2e)


@pytest.mark.airflow
def test_other_dags_are_left_alone(monitored):
    run = monitored["runs"]["plain_dag_unmonitored"]
    assert run["state"] == "failed"
    assert "workflow=plain_dag_unmonitored" not in monitored["output"]
    assert [b for b in monitored["bodies"] if b["workflow"] == "plain_dag_unmonitored"] == []
    assert [p for p in monitored["packets"] if "iflow" in p and "plain_dag_unmonitored" in p] == []
    # only monitored_wf's events reached the iflow metrics
    assert {p.split(":")[0] for p in monitored["packets"] if p.startswith("airflow.iflow.run.failed.")} == {
        "airflow.iflow.run.failed.monitored_wf"}


SUMMARY_SCRIPT = textwrap.dedent('''
    import json, sys
    from airflow.utils.session import create_session
    from iflow_airflow.runtime.summary import workflows_summary, workflow_detail

    with create_session() as session:
        out = {
            "all": workflows_summary(session),
            "none_allowed": workflows_summary(session, dag_ids=[]),
            "detail": workflow_detail(session, "monitored_wf"),
            "unknown": workflow_detail(session, "plain_dag_unmonitored"),
        }
    print("SUMMARY-JSON " + json.dumps(out, default=str))
    ''')


@pytest.mark.airflow
def test_summary_reads_the_metadata_database(monitored, airflow_env):
    """workflows_summary(session) on the rows dag.test() left in the database."""
    airflow_env.write_file("../summary_probe.py", SUMMARY_SCRIPT)
    import sys

    proc = airflow_env.run([sys.executable, str(airflow_env.home / "summary_probe.py")])
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("SUMMARY-JSON ")), None)
    assert line, (proc.stdout + proc.stderr)[-6000:]
    out = json.loads(line[len("SUMMARY-JSON "):])
    run = monitored["runs"]["monitored_wf"]

    wf = next(w for w in out["all"]["workflows"] if w["name"] == "monitored_wf")
    assert "plain_dag_unmonitored" not in [w["name"] for w in out["all"]["workflows"]]  # not an iflow DAG
    assert wf["runs"] == {"total": 1, "by_state": {"failed": 1}}
    assert wf["completion_rate"] == 0.0
    assert wf["latest_run"]["run_id"] == run["run_id"]
    assert (wf["latest_run"]["done"], wf["latest_run"]["total"], wf["latest_run"]["failed"]) == (2, 2, 1)
    assert wf["retries"] == 1  # boom: try 2
    assert wf["planned_tasks"] == 2
    assert wf["sync_delay"]["count"] == 1  # boom after prepare
    assert [(b["task_id"], b["state"], b["try_number"]) for b in wf["timeline"]["bars"]] == [
        ("prepare", "success", 1), ("boom", "failed", 2)]
    assert out["none_allowed"]["workflows"] == []
    assert [r["run_id"] for r in out["detail"]["recent_runs"]] == [run["run_id"]]
    assert [t["task_id"] for t in out["detail"]["tasks"]] == ["prepare", "boom"]
    assert out["unknown"] is None


LEAN_CHECK = textwrap.dedent("""
    import json, os, sys

    HEAVY = ("iflow_airflow.schema.models", "iflow_airflow.extensions", "iflow_airflow.runtime.keeper",
             "iflow_airflow.compiler")


    def loaded():
        return sorted(m for m in HEAVY if m in sys.modules)


    def main():
        from airflow.dag_processing.dagbag import DagBag

        folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]  # the test's own "lean" folder
        bag = DagBag(dag_folder=folder, bundle_path=folder)
        out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "after_parse": loaded()}
        if sys.argv[1] == "run":
            for dag_id in ("lean_wf", "lean_plain"):
                dr = bag.get_dag(dag_id).test()
                out[dag_id] = {"state": str(getattr(dr.state, "value", dr.state)), "loaded": loaded()}
        print("JSON" + json.dumps(out))


    if __name__ == "__main__":
        main()
""")


def test_task_hooks_import_nothing_heavy_in_a_task_process(airflow_env):
    """A task process parses with a warm plan cache; its hooks must not pull in models, extensions or the keeper.

    (The first event used to import the extension machinery, ~20 ms per task process:
    the listener benchmark's run time, not the hooks' own microseconds.)
    """
    airflow_env.write_file("lean/iflow_dags.py", LOADER)
    airflow_env.write_file("lean/lean_wf.yaml", "workflow:\n  name: lean_wf\n  tasks:\n"
                                                "    - {id: a, command: 'true'}\n    - {id: b, dependencies: [a]}\n")
    airflow_env.write_file("lean/lean_plain.py", PLAIN_DAG.replace("plain_dag_unmonitored", "lean_plain")
                           .replace('"exit 1"', '"true"'))
    airflow_env.write_file("lean_check.py", LEAN_CHECK)
    script = str(airflow_env.dags_folder / "lean_check.py")
    # dag.test() parses the whole dags folder (Airflow 3.3.2 syncs the bundle to the database),
    # where other tests leave broken files on purpose: this test's folder is the dags folder.
    own = {"AIRFLOW__CORE__DAGS_FOLDER": str(airflow_env.dags_folder / "lean")}

    def check(mode: str) -> dict:
        proc = airflow_env.run([sys.executable, script, mode], extra_env=own)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("JSON")), None)
        assert line, proc.stdout[-3000:] + proc.stderr[-5000:]
        return json.loads(line[4:])

    warm = check("parse")  # the dag-processor's parse: compiles and fills the plan cache
    assert warm["errors"] == {} and "iflow_airflow.compiler" in warm["after_parse"]
    out = check("run")  # like a task process: parse (cache warm), then the task hooks fire
    assert out["errors"] == {}
    assert out["after_parse"] == ["iflow_airflow.compiler"]  # the loader itself; no models: cache hit
    assert out["lean_wf"] == {"state": "success", "loaded": ["iflow_airflow.compiler"]}
    assert out["lean_plain"] == {"state": "success", "loaded": ["iflow_airflow.compiler"]}
