"""Parse units on a real dag-processor (and api-server): a sub-folder with its own loader.

One deployment, in order: each unit's DAGs come from its own loader; an edit re-parses
only its own unit (the other unit is left out of Airflow's ``min_file_process_interval``
round, set short here to show it); a name another unit owns is an error of the newcomer
only; a file moved to another unit keeps its workflow; a unit whose loader is removed
hands its files to the unit above without losing a DAG.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def wf(name: str, description: str = "v0") -> str:
    return f"workflow:\n  name: {name}\n  description: {description}\n  tasks:\n    - {{id: t, command: 'true'}}\n"


def _described(client, dag_id: str, text: str):
    dag = client.dag(dag_id)
    return dag if dag and dag.get("description") == text and not dag["is_stale"] else None


@pytest.mark.e2e
def test_units_parse_on_their_own_and_hand_files_over(airflow_deployment, tmp_path: Path):
    dags = tmp_path / "dags"
    (dags / "team" / "etl").mkdir(parents=True)
    for loader in (dags / "iflow_dags.py", dags / "team" / "iflow_dags.py"):
        shutil.copy(REPO / "dags" / "iflow_dags.py", loader)
    (dags / "root_wf.yaml").write_text(wf("root_wf"))
    (dags / "team" / "team_wf.yaml").write_text(wf("team_wf"))
    (dags / "team" / "etl" / "moved_wf.yaml").write_text(wf("moved_wf"))
    af = airflow_deployment(dags, components=("dag-processor", "api-server"),
                            extra_env={"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3"})
    client = af.client
    for dag_id in ("root_wf", "team_wf", "moved_wf"):
        client.wait_for_dag(dag_id, timeout=180)
    assert client.dag("root_wf")["relative_fileloc"] == "iflow_dags.py"
    assert client.dag("moved_wf")["relative_fileloc"] == "team/iflow_dags.py"

    # An edit in team/ re-parses team's unit only; the root unit stays unparsed although
    # min_file_process_interval (3 s) has passed several times.
    time.sleep(4)
    root_parsed = client.dag("root_wf")["last_parsed_time"]
    (dags / "team" / "team_wf.yaml").write_text(wf("team_wf", "edited"))
    client.wait_until(lambda: _described(client, "team_wf", "edited"), 60, "the edit in team/")
    time.sleep(8)
    assert client.dag("root_wf")["last_parsed_time"] == root_parsed

    # A name the root unit owns: the newcomer in team/ gets the error, the owner keeps its DAG.
    (dags / "team" / "dup.yaml").write_text(wf("root_wf", "impostor"))
    errors = client.wait_until(lambda: (lambda e: e if "team/dup.yaml" in e else None)(client.errors_by_file()),
                               60, "the duplicate name's error")
    assert "already used by root_wf.yaml" in errors["team/dup.yaml"]
    (dags / "team" / "dup.yaml").unlink()
    client.wait_until(lambda: "team/dup.yaml" not in client.errors_by_file(), 60, "the error gone with the file")
    assert client.dag("root_wf")["description"] == "v0"

    # Moved from team's unit to the root unit: same workflow, now the root loader's.
    os.replace(dags / "team" / "etl" / "moved_wf.yaml", dags / "moved_wf.yaml")
    client.wait_until(lambda: (lambda d: d if d and d["relative_fileloc"] == "iflow_dags.py" else None)(
        client.dag("moved_wf")), 60, "the moved file's DAG from the root unit")

    # team/ loses its loader: its files become the root unit's, no DAG lost on the way.
    (dags / "team" / "iflow_dags.py").unlink()
    client.wait_until(lambda: (lambda d: d if d and d["relative_fileloc"] == "iflow_dags.py" else None)(
        client.dag("team_wf")), 90, "team's workflow from the root unit")
    assert not client.dag("team_wf")["is_stale"] and client.dag("team_wf")["description"] == "edited"
    assert client.errors_by_file() == {}
    # Two quick edits: the second lands within Airflow's 30 s min_serialized_dag_update_interval
    # of the first one's stored version, so its parse updates the `dag` row but not the
    # serialized DAG (its tasks); with no change after it, that follows when the upkeep
    # parses the unit once more.
    extra = "    - {id: t, command: 'true'}\n"
    for k, task_ids in enumerate((["t2"], ["t2", "t3"])):
        more = "".join(f"    - {{id: {t}, command: 'true'}}\n" for t in task_ids)
        (dags / "team" / "team_wf.yaml").write_text(wf("team_wf", f"quick {k}").replace(extra, extra + more))
        client.wait_until(lambda k=k: _described(client, "team_wf", f"quick {k}"), 60, f"quick edit {k}")
    tasks = lambda: {t["task_id"] for t in client.get("/api/v2/dags/team_wf/tasks")["tasks"]}  # noqa: E731
    client.wait_until(lambda: tasks() == {"t", "t2", "t3"}, 90, "the second quick edit's tasks in the serialized DAG")
