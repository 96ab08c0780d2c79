"""The seed example does real work: dag.test() of full_stack_development with dags/ as shipped.

dags/iflow.defaults.yaml gives its five task types agent prompts; with the offline demo
agent as ``[iflow] agent_command`` (what ``make run`` configures without an iFlow CLI) the
six tasks share one workspace per run, write requirements, a design, frontend and backend
code and their integration, and the last task runs the tests it wrote.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUB = "repo_dags"  # the same subfolder test_yaml_dags.py fills (one loader per dag id)
DEMO = shlex.join([sys.executable, "-m", "iflow_airflow.examples.demo_agent"])
ORDER = ["analyze_requirements", "design_architecture", "implement_frontend", "implement_backend",
         "integrate_systems", "test_system"]

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def seed_run(airflow_env, tmp_path_factory):
    (airflow_env.dags_folder / SUB).mkdir(exist_ok=True)
    for item in (REPO / "dags").iterdir():
        shutil.copy(item, airflow_env.dags_folder / SUB / item.name)
    root = tmp_path_factory.mktemp("workspaces")
    run = airflow_env.run_dag_test("full_stack_development", timeout=600, extra_env={
        "AIRFLOW__IFLOW__AGENT_COMMAND": DEMO, "IFLOW_WORKSPACE_ROOT": str(root),
        "AIRFLOW__IFLOW__ALLOWED_MODULES": "iflow_airflow.examples"})
    return run, root


def test_every_task_is_an_agent_step_and_the_run_succeeds(seed_run):
    run, _ = seed_run
    assert run["state"] == "success", run["output"][-4000:]
    assert {t: run["tasks"][t]["state"] for t in ORDER} == dict.fromkeys(ORDER, "success")
    assert all(run["xcom"][t].startswith("[demo agent] ") for t in ORDER), run["xcom"]
    assert run["xcom"]["analyze_requirements"].startswith("[demo agent] requirements.md: 4 requirements")
    assert run["xcom"]["implement_frontend"].startswith("[demo agent] frontend: frontend/view.py")
    assert run["xcom"]["implement_backend"].startswith("[demo agent] backend: backend/service.py")
    assert run["xcom"]["test_system"].startswith("[demo agent] tests: 5 passed (tests/test_app.py)")


def test_the_tasks_share_one_workspace_per_run_with_the_whole_application(seed_run):
    run, root = seed_run
    (workspace,) = (root / "full_stack_development").iterdir()
    assert workspace.name.replace(":", "_").replace("+", "_") == workspace.name  # file-safe run id
    made = sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*") if p.is_file()
                  and "__pycache__" not in p.parts)
    assert made == ["api.json", "app.py", "backend/__init__.py", "backend/service.py", "design.md",
                    "frontend/__init__.py", "frontend/view.py", "requirements.md", "tests/__init__.py",
                    "tests/test_app.py"]
    assert all(str(workspace) in run["xcom"][t] for t in ORDER)
    # the tests the last task ran were really run (unittest's own report is in the task log)
    assert "Ran 5 tests" in run["output"] and "OK" in run["output"]
