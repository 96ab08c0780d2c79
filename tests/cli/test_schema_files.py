"""The shipped JSON Schemas accept the shipped files and reject what the compiler rejects.

An editor checks a file against the schema its ``$schema`` line names: every example in
``dags/`` must pass its own schema (the defaults file the defaults schema), and the two
schemas must disagree exactly where the file kinds differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from iflow_airflow.schema import published

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(published.packaged_path(name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(name: str, data: object) -> list[str]:
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(data))


@pytest.mark.parametrize("path", sorted(p.name for p in DAGS.glob("*.yaml") if p.name != "iflow.defaults.yaml"))
def test_every_shipped_workflow_passes_the_workflow_schema(path: str):
    assert errors("workflow", yaml.safe_load((DAGS / path).read_text())) == []


def test_the_shipped_defaults_file_passes_the_defaults_schema_and_not_the_workflow_one():
    data = yaml.safe_load((DAGS / "iflow.defaults.yaml").read_text())
    assert errors("defaults", data) == []
    assert errors("workflow", data) == ["workflow: 'name' is a required property",
                                        "workflow: 'tasks' is a required property"]


def test_the_defaults_schema_refuses_a_workflow_name_or_tasks_and_checks_the_rest():
    got = errors("defaults", {"workflow": {"name": "x", "tasks": [{"id": "a"}], "owner": 3},
                              "orchestration": {"retry_atempts": 2}})
    assert any(e.startswith("workflow: Additional properties are not allowed ('name', 'tasks'") for e in got), got
    assert any(e.startswith("workflow.owner: 3 is not") for e in got), got
    assert any("'retry_atempts' was unexpected" in e for e in got), got


def test_the_yaml_language_server_lines_point_at_the_shipped_files():
    for path in (DAGS / "release_pipeline.yaml", DAGS / "iflow.defaults.yaml"):
        line = next(x for x in path.read_text().splitlines() if "yaml-language-server: $schema=" in x)
        target = (path.parent / line.split("$schema=", 1)[1].strip()).resolve()
        assert target.is_file(), (path, target)
        assert target.parent == published.packaged_path("workflow").parent
