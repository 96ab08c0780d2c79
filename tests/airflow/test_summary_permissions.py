"""Issue 14, D12: a workflow's resource figures name only DAGs the caller may read."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

LOADER = '"""iflow loader: one Airflow DAG per workflow file here."""\n' \
         "from iflow_airflow.importer import load_workflows\n\nload_workflows(globals())\n"
SHARED = """
    resources: {{perm_gpu: 2}}
    workflow:
      name: {name}
      tasks: [{{id: t, command: "true", resource: perm_gpu}}]
    """
PROBE = textwrap.dedent('''
    import json
    from airflow.utils.session import create_session
    from iflow_airflow.runtime.summary import workflow_detail

    with create_session() as session:
        detail = workflow_detail(session, "perm_visible", dag_ids=["perm_visible"])
        everyone = workflow_detail(session, "perm_visible")
    print("DETAIL-JSON " + json.dumps({"limited": detail["resource_figures"], "all": everyone["resource_figures"]},
                                      default=str))
    ''')


@pytest.mark.airflow
def test_d12_resource_figures_list_only_readable_workflows(airflow_env):
    airflow_env.write_file("perm/iflow_dags.py", LOADER)
    for name in ("perm_visible", "perm_hidden"):
        airflow_env.write_file(f"perm/{name}.yaml", textwrap.dedent(SHARED.format(name=name)))
    result = airflow_env.run_dag_tests([{"dag_id": "perm_visible"}, {"dag_id": "perm_hidden"}])
    assert [(r["dag_id"], r["state"]) for r in result["runs"]] == [("perm_visible", "success"),
                                                                  ("perm_hidden", "success")], ([r["error"] for r in result["runs"]], result["import_errors"])
    airflow_env.write_file("../perm_probe.py", PROBE)
    proc = airflow_env.run([sys.executable, str(airflow_env.home / "perm_probe.py")])
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("DETAIL-JSON ")), None)
    assert line, (proc.stdout + proc.stderr)[-3000:]
    out = json.loads(line[len("DETAIL-JSON "):])
    assert [f["workflows"] for f in out["all"]] == [["perm_hidden", "perm_visible"]]  # both use the pool
    assert [f["workflows"] for f in out["limited"]] == [["perm_visible"]]
