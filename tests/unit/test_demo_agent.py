"""The offline demo agent: each step's files, its answer line, and its failures, run as a program."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TYPES = yaml.safe_load((REPO / "dags" / "iflow.defaults.yaml").read_text())["task_types"]
STEPS = [("analyze_requirements", "analysis"), ("design_architecture", "design"),
         ("implement_frontend", "development"), ("implement_backend", "development"),
         ("integrate_systems", "integration"), ("test_system", "testing")]


def agent(root: Path, task: str, prompt: str, **results: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IFLOW_WORKSPACE_ROOT": str(root), "IFLOW_WORKFLOW": "full_stack_development",
           "IFLOW_RUN_ID": "manual__2026-01-01T00:00:00+00:00", "IFLOW_TASK_ID": task,
           **{f"IFLOW_RESULT_{k}": v for k, v in results.items()}}
    return subprocess.run([sys.executable, "-m", "iflow_airflow.examples.demo_agent", prompt], env=env,
                          capture_output=True, text=True, timeout=120)


def run_all(root: Path) -> dict[str, str]:
    answers: dict[str, str] = {}
    for task, kind in STEPS:
        out = agent(root, task, TYPES[kind]["prompt"], **({"previous": "x"} if answers else {}))
        assert out.returncode == 0, out.stderr
        answers[task] = out.stdout.strip()
    return answers


def test_the_seed_prompts_build_and_test_an_application_in_one_workspace(tmp_path):
    answers = run_all(tmp_path)
    ws = tmp_path / "full_stack_development" / "manual__2026-01-01T00_00_00_00_00"
    assert answers["analyze_requirements"] == f"[demo agent] requirements.md: 4 requirements in {ws}"
    assert answers["design_architecture"].startswith("[demo agent] design.md, api.json: 3 routes for 4 requirements")
    assert answers["design_architecture"].endswith(" after previous")  # upstream answers reached it
    assert answers["implement_frontend"].startswith("[demo agent] frontend: frontend/view.py")
    assert answers["implement_backend"].startswith("[demo agent] backend: backend/service.py")
    assert answers["test_system"].startswith(f"[demo agent] tests: 5 passed (tests/test_app.py) in {ws}")
    first = {p: p.read_bytes() for p in ws.rglob("*.py") if "__pycache__" not in p.parts}
    assert run_all(tmp_path) == answers  # deterministic: a re-run gives the same answers ...
    assert {p: p.read_bytes() for p in first} == first  # ... and the same files


@pytest.mark.parametrize("task, kind, missing", [("design_architecture", "design", "requirements.md"),
                                                 ("integrate_systems", "integration", "backend/service.py"),
                                                 ("test_system", "testing", "app.py")])
def test_a_step_without_its_input_fails_and_says_what_is_missing(tmp_path, task, kind, missing):
    out = agent(tmp_path, task, TYPES[kind]["prompt"])
    assert out.returncode == 1 and out.stdout == ""
    assert f"{missing} is missing in" in out.stderr and "the step that writes it must run first" in out.stderr


def test_failing_tests_fail_the_testing_step(tmp_path):
    run_all(tmp_path)
    ws = next((tmp_path / "full_stack_development").iterdir())
    (ws / "backend" / "service.py").write_text("def handle(method, path, body=None):\n    return 500, {}\nITEMS = []\n")
    out = agent(tmp_path, "test_system", TYPES["testing"]["prompt"])
    assert out.returncode == 1 and "testing: the tests in" in out.stderr and "FAILED" in out.stderr


def test_an_unknown_prompt_is_kept_as_a_note_and_no_prompt_is_a_usage_error(tmp_path):
    out = agent(tmp_path, "x", "Say hello")
    assert out.returncode == 0 and "no step matches the prompt; kept it as notes/x.md" in out.stdout
    assert subprocess.run([sys.executable, "-m", "iflow_airflow.examples.demo_agent"], capture_output=True,
                          text=True).returncode == 2
