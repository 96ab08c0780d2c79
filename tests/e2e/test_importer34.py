"""Airflow 3.4: ``IflowYamlImporter`` under ``[dag_processor] dag_importer_configs`` (issue 13, item 7).

Each YAML file is its own parse unit: its own ``fileloc``, its own error, the YAML in
the Code tab; the loader ``.py`` (left in the folder) loads nothing, so nothing is
loaded twice; a bad edit keeps the last good version there too. Runs only on
Airflow >= 3.4 (``.ci/airflow34`` makes that environment).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iflow_airflow import version_compat

REPO = Path(__file__).resolve().parents[2]
IMPORTERS = '["iflow_airflow.importer.IflowYamlImporter"]'

pytestmark = pytest.mark.skipif(version_compat.airflow_version() < (3, 4), reason="needs Airflow >= 3.4")

LEDGER = """\
coordination: {sync_mode: synchronous}
workflow:
  name: ledger
  tasks:
    - {id: first, command: "echo one"}
    - {id: second, dependencies: [first], command: "echo two"}
"""



@pytest.mark.e2e
def test_each_yaml_file_is_its_own_parse_unit_with_its_code_tab(airflow_deployment, tmp_path: Path):
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "iflow_dags.py", dags / "iflow_dags.py")
    (dags / "ledger.yaml").write_text(LEDGER)
    (dags / "team").mkdir()
    (dags / "team" / "broken.yaml").write_text("workflow:\n  name: broken\n  tasks: [{id: a, dependencies: [b]}]\n")
    (dags / "k8s.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    af = airflow_deployment(dags, extra_env={"AIRFLOW__DAG_PROCESSOR__DAG_IMPORTER_CONFIGS": IMPORTERS})
    client = af.client
    dag = client.wait_for_dag("ledger", timeout=240)
    assert dag["relative_fileloc"] == "ledger.yaml"
    errors = client.wait_until(lambda: (lambda e: e if "team/broken.yaml" in e else None)(client.errors_by_file()), 120,
                               "the broken file's own error")
    assert set(errors) == {"team/broken.yaml"}  # the loader .py loaded nothing and failed nothing
    assert "team/broken.yaml:3:" in errors["team/broken.yaml"]
    assert "workflow.tasks[0].dependencies[0]: unknown task id 'b'" in errors["team/broken.yaml"]
    source = client.get("/api/v2/dagSources/ledger")
    assert source["content"] == LEDGER
    run = client.trigger("ledger")
    assert client.wait_for_run("ledger", run, timeout=240) == "success"

    # A bad edit: the last good version stays active (not stale), its error is listed.
    (dags / "ledger.yaml").write_text(LEDGER.replace("dependencies: [first]", "dependencies: [frist]"))
    client.wait_until(lambda: "ledger.yaml" in client.errors_by_file(), 120, "the typo's error")
    kept = client.wait_until(lambda: (lambda d: d if d and "iflow:last-good" in {t["name"] for t in d["tags"]}
                                      else None)(client.dag("ledger")), 120, "the last good version of ledger")
    assert kept["is_stale"] is False
    run = client.trigger("ledger")
    assert client.wait_for_run("ledger", run, timeout=240) == "success"
    (dags / "ledger.yaml").write_text(LEDGER)
    client.wait_until(lambda: "ledger.yaml" not in client.errors_by_file(), 120, "the error cleared after the fix")
