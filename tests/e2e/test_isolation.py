"""A broken workflow file on a real dag-processor and scheduler (issue 2, item 4).

It shows in the import errors under its own name and line, never stops another
workflow from being parsed, scheduled or run, and its error goes away once the
file is fixed (at the latest at the next bundle refresh).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
coordination: {sync_mode: synchronous}
workflow:
  name: steady
  tasks:
    - {id: first, command: "echo one"}
    - {id: second, dependencies: [first], command: "echo two from $IFLOW_RESULT_first"}
"""
OTHER_OK = """\
workflow:
  name: other
  tasks:
    - {id: only, command: "echo fine"}
"""
OTHER_BROKEN = """\
workflow:
  name: other
  tasks:
    - id: only
      command: "echo fine"
      dependencies: [nowhere]
"""


@pytest.mark.e2e
def test_broken_file_hides_nothing_and_clears_once_fixed(airflow_deployment, tmp_path: Path):
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "iflow_dags.py", dags / "iflow_dags.py")
    (dags / "steady.yaml").write_text(GOOD)
    (dags / "other.yaml").write_text(OTHER_OK)
    (dags / "k8s.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")  # not an iflow file: ignored
    af = airflow_deployment(dags)
    client = af.client

    client.wait_for_dag("steady", timeout=180)
    client.wait_for_dag("other", timeout=60)
    assert client.errors_by_file() == {}
    run = client.trigger("steady")
    assert client.wait_for_run("steady", run, timeout=240) == "success"

    # Break one file, and drop in a new broken one: both errors show, under their own names.
    (dags / "other.yaml").write_text(OTHER_BROKEN)
    (dags / "nested").mkdir()
    (dags / "nested" / "fresh.yaml").write_text("workflow:\n  name: fresh\n  tasks: [{id: a, priorty: 1}]\n")
    errors = client.wait_until(
        lambda: (lambda e: e if {"other.yaml", "nested/fresh.yaml"} <= set(e) else None)(client.errors_by_file()),
        timeout=120, what="import errors of other.yaml and nested/fresh.yaml")
    assert set(errors) == {"other.yaml", "nested/fresh.yaml"}
    assert "other.yaml:6:22: workflow.tasks[0].dependencies[0]: unknown task id 'nowhere'" in errors["other.yaml"]
    assert "nested/fresh.yaml:3:19: workflow.tasks[0].priorty: unknown key `priorty` (expected: did you mean " \
           "`priority`?)" in errors["nested/fresh.yaml"]

    # The healthy workflow is neither stale nor flagged, and still runs.
    steady = client.dag("steady")
    assert (steady["is_stale"], steady["has_import_errors"], steady["relative_fileloc"]) == (
        False, False, "iflow_dags.py")
    run = client.trigger("steady")
    assert client.wait_for_run("steady", run, timeout=240) == "success"
    assert {ti["task_id"]: ti["state"] for ti in client.task_instances("steady", run)} == {
        "first": "success", "second": "success"}

    # Fix both: the errors go away and the fixed workflow runs again.
    (dags / "other.yaml").write_text(OTHER_OK)
    (dags / "nested" / "fresh.yaml").write_text("workflow:\n  name: fresh\n  tasks: [{id: a, priority: 1}]\n")
    client.wait_until(lambda: client.errors_by_file() == {}, timeout=150,
                      what="import errors cleared after the fix (next parse or bundle refresh)")
    client.wait_for_dag("fresh", timeout=60)
    client.wait_until(lambda: client.dag("other") and not client.dag("other")["is_stale"], timeout=90,
                      what="workflow other active again")
    run = client.trigger("other")
    assert client.wait_for_run("other", run, timeout=240) == "success"
