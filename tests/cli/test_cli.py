"""The ``iflow-airflow`` command line: exit codes, summaries, the plan, the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from iflow_airflow.client.cli import main
from iflow_airflow.schema import published
from iflow_airflow.schema.models import json_schema

REPO = Path(__file__).resolve().parents[2]
SHARED_SEED = REPO.parent / "shared" / "examples" / "full_stack_development.yaml"
SEED = SHARED_SEED if SHARED_SEED.exists() else REPO / "dags" / "full_stack_development.yaml"


@pytest.fixture(autouse=True)
def _allow_examples(monkeypatch):
    monkeypatch.setenv("AIRFLOW__IFLOW__ALLOWED_MODULES", "iflow_airflow.examples")


def test_validate_repo_examples_all_valid(capsys):
    assert main(["validate", str(REPO / "dags")]) == 0
    out = capsys.readouterr().out
    assert "6 files checked, 0 with problems" in out  # 4 examples + the decomposition pair
    assert "OK   release_pipeline.yaml: workflow release_pipeline, 5 tasks" in out


def test_validate_reports_every_problem_and_fails(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("workflow:\n  name: bad\n  tasks:\n    - id: a\n      priorty: high\n"
                   "      dependencies: [zz]\n")
    good = tmp_path / "good.yaml"
    good.write_text("workflow:\n  name: good\n  tasks:\n    - id: a\n")
    assert main(["validate", str(bad), str(good)]) == 1
    out = capsys.readouterr().out
    assert "bad.yaml:5:7: workflow.tasks[0].priorty: unknown key `priorty` (expected: did you mean `priority`?)" in out
    assert "bad.yaml:6:22: workflow.tasks[0].dependencies[0]: unknown task id 'zz'" in out
    assert "FAIL bad.yaml: 2 problems" in out
    assert "OK   good.yaml: workflow good, 1 task, 0 resources, 0 conflicts" in out
    assert "2 files checked, 1 with problems" in out


def test_validate_missing_path_fails(tmp_path):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1


def test_validate_names_checkpoints_and_conflicts(tmp_path, capsys):
    (tmp_path / "w.yaml").write_text(
        "resources: {db: 1}\nworkflow:\n  name: w\n  tasks:\n"
        "    - {id: a, resource: db, priority: high, command: 'true'}\n"
        "    - {id: b, resource: db, priority: low, command: 'true'}\n"
        "    - {id: c}\n")
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "conflict on db: a before b (higher priority weight first)" in out
    assert "checkpoint (no action: logs and succeeds): c" in out


def test_explain_seed_example(capsys):
    assert main(["explain", str(SEED)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("analyze", "implement"))}
    assert lines["analyze_requirements"][1:3] == ["high(4)", "4000500"]
    assert lines["implement_frontend"][1:3] == ["medium(3)", "3000300"]
    assert "conflicts: 0" in out


def test_explain_shows_pools_queues_and_loads(capsys):
    assert main(["explain", str(REPO / "dags" / "nightly_data_sync.yaml")]) == 0
    out = capsys.readouterr().out
    assert "database -> pool iflow_database: 1 slot" in out
    assert "build_farm -> pool iflow_build_farm: 2 slots (auto-scales to 4)" in out
    assert "queue loads (sum of cost): " in out
    loads = dict(part.split("=") for part in out.split("queue loads (sum of cost): ")[1].splitlines()[0].split(", "))
    assert sorted(float(v) for v in loads.values()) == [4.0, 4.0]


def test_schema_is_json_schema_of_the_models_and_committed_copy_is_current():
    out = subprocess.run([sys.executable, "-m", "iflow_airflow.client.cli", "schema"], capture_output=True, text=True,
                         check=True).stdout
    schema = json.loads(out)
    assert schema == json_schema()
    assert set(schema["properties"]) == {"orchestration", "scheduling", "coordination", "resources", "task_types",
                                         "workflow"}
    assert schema["additionalProperties"] is False
    for name in published.NAMES:
        shipped = json.loads(published.packaged_path(name).read_text())
        assert shipped == published.build(name), "run `make schema` to refresh iflow_airflow/schema/*.schema.json"
    path = subprocess.run([sys.executable, "-m", "iflow_airflow.client.cli", "schema", "--defaults", "--path"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert json.loads(Path(path).read_text())["title"] == "iflow defaults file (iflow.defaults.yaml)"


@pytest.mark.skipif(not SHARED_SEED.exists(), reason="../shared is not beside this checkout")
def test_dags_folder_ships_the_seed_example_exactly_as_written():
    assert (REPO / "dags" / "full_stack_development.yaml").read_bytes() == SHARED_SEED.read_bytes()
