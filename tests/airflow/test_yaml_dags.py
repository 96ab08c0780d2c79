"""iflow YAML files in a real Airflow 3.3: DagBag (what the dag-processor sees) and dag.test() runs."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_SEED = REPO.parent / "shared" / "examples" / "full_stack_development.yaml"
ALLOW = {"AIRFLOW__IFLOW__ALLOWED_MODULES": "iflow_airflow.examples"}

pytestmark = pytest.mark.airflow

INSPECT = textwrap.dedent('''
    import json, os, sys
    from airflow.dag_processing.dagbag import DagBag
    folder = os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], sys.argv[1])
    bag = DagBag(dag_folder=folder, bundle_path=folder)
    out = {"errors": {k: v for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        out["dags"][dag_id] = {
            "fileloc": dag.fileloc, "relative_fileloc": dag.relative_fileloc, "tags": sorted(dag.tags),
            "max_active_tasks": dag.max_active_tasks, "paused": dag.is_paused_upon_creation,
            "timetable": type(dag.timetable).__name__, "params": {k: dag.params[k] for k in dag.params},
            "doc_md": dag.doc_md, "owner": dag.default_args.get("owner"),
            "tasks": {t.task_id: {
                "type": type(t).__name__, "weight": t.priority_weight, "rule": str(t.weight_rule),
                "pool": t.pool, "pool_slots": t.pool_slots, "queue": t.queue, "retries": t.retries,
                "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                "delay": t.retry_delay.total_seconds(), "backoff": t.retry_exponential_backoff,
                "upstream": sorted(t.upstream_task_ids)} for t in dag.tasks},
        }
    print("JSON" + json.dumps(out, default=str))
''')


SUB = "repo_dags"  # the session's dags folder is shared: each loader keeps to its own subfolder


@pytest.fixture(scope="module")
def iflow_folder(airflow_env):
    """The repo's dags/ (loader + examples), the seed example as shipped, a broken and a foreign YAML file."""
    (airflow_env.dags_folder / SUB).mkdir(exist_ok=True)
    for item in (REPO / "dags").iterdir():
        shutil.copy(item, airflow_env.dags_folder / SUB / item.name)
    if SHARED_SEED.exists():
        shutil.copy(SHARED_SEED, airflow_env.dags_folder / SUB / "full_stack_development.yaml")
    airflow_env.write_file(f"{SUB}/teams/broken.yaml", "workflow:\n  name: broken\n  tasks:\n    - id: a\n"
                                                       "      dependencies: [b]\n")
    airflow_env.write_file(f"{SUB}/teams/not_iflow.yaml", "kind: ConfigMap\nmetadata: {name: x}\n")
    return airflow_env


def _inspect(env) -> dict:
    proc = env.run([sys.executable, "-c", INSPECT, SUB], extra_env=ALLOW)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.split("JSON", 1)[1])


def test_dagbag_loads_examples_and_keys_errors_to_the_yaml_file(iflow_folder):
    seen = _inspect(iflow_folder)
    assert set(seen["dags"]) >= {"full_stack_development", "release_pipeline", "nightly_data_sync",
                                 "warehouse_report"}
    assert "broken" not in seen["dags"]
    assert list(seen["errors"]) == ["teams/broken.yaml"]
    assert "teams/broken.yaml:5:22: workflow.tasks[0].dependencies[0]: unknown task id 'b'" in \
        seen["errors"]["teams/broken.yaml"]
    for dag in seen["dags"].values():  # DAGs stay on the observed .py loader (deactivate_deleted_dags)
        assert dag["relative_fileloc"] == "iflow_dags.py"


def test_seed_example_maps_to_airflow(iflow_folder):
    dag = _inspect(iflow_folder)["dags"]["full_stack_development"]
    tasks = dag["tasks"]
    assert sorted(tasks) == sorted(["analyze_requirements", "design_architecture", "implement_frontend",
                                    "implement_backend", "integrate_systems", "test_system"])
    assert tasks["integrate_systems"]["upstream"] == ["implement_backend", "implement_frontend"]
    assert {t["rule"] for t in tasks.values()} == {"absolute"}
    assert min(tasks[t]["weight"] for t in ("analyze_requirements", "design_architecture", "integrate_systems",
                                            "test_system")) > max(tasks[t]["weight"] for t in
                                                                  ("implement_frontend", "implement_backend"))
    # dags/iflow.defaults.yaml gives the seed's task types agent prompts
    assert {(t["retries"], t["timeout"], t["type"]) for t in tasks.values()} == {(3, 300.0, "IflowAgentOperator")}
    assert dag["max_active_tasks"] == 10 and dag["paused"] is False and dag["timetable"] == "NullTimetable"
    assert "```yaml" in dag["doc_md"] and "完整的全栈应用开发流程" in dag["doc_md"]


def test_release_pipeline_maps_pools_params_and_overrides(iflow_folder):
    dag = _inspect(iflow_folder)["dags"]["release_pipeline"]
    t = dag["tasks"]
    assert (t["migrate_database"]["pool"], t["migrate_database"]["pool_slots"]) == ("iflow_database", 1)
    assert t["build_frontend"]["pool"] == "iflow_build_farm" and t["build_frontend"]["timeout"] == 60.0
    assert t["smoke_test"]["retries"] == 1 and t["summarize"]["retries"] == 2
    assert t["summarize"]["type"] == "IflowCallableOperator" and t["summarize"]["delay"] == 5.0
    assert t["migrate_database"]["weight"] // 1_000_000 == 5  # critical
    assert dag["params"] == {"version": "1.0.0"} and dag["owner"] == "platform-team"
    assert dag["tags"] == ["example", "iflow", "release"]


# The seed example's dag.test() run (its prompts, with the demo agent) is in test_seed_demo_agent.py.


def test_release_pipeline_passes_params_and_results_as_environment(iflow_folder, tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"2.0$(touch {marker})`touch {marker}`;touch {marker}"
    run = iflow_folder.run_dag_test("release_pipeline", conf={"version": hostile}, extra_env=ALLOW)
    assert run["state"] == "success", run["output"][-3000:]
    assert run["xcom"]["build_backend"] == f"backend-{hostile}.tar.gz"
    assert run["xcom"]["migrate_database"] == "migrated"
    assert run["xcom"]["smoke_test"] == "smoke test passed"
    assert not marker.exists()
