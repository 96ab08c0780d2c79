"""A bad edit loses nothing (SPEC §5), as Airflow's own DagBag sees the loader: last good versions,
``[iflow] on_invalid``, deleted and never-valid files, a corrupt store, and files over their budget."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.airflow

INSPECT = textwrap.dedent('''
    import json, os, sys
    from airflow.dag_processing.dagbag import DagBag
    folder = os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], sys.argv[1])
    bag = DagBag(dag_folder=folder, bundle_path=folder)
    out = {"errors": dict(bag.import_errors), "dags": {}}
    for dag_id, dag in bag.dags.items():
        out["dags"][dag_id] = {"tags": sorted(dag.tags), "description": dag.description, "doc_md": dag.doc_md,
                               "tasks": sorted(t.task_id for t in dag.tasks),
                               "commands": {t.task_id: getattr(t, "command", None) for t in dag.tasks}}
    print("JSON" + json.dumps(out, default=str))
''')

GOOD = """\
coordination: {sync_mode: synchronous}
workflow:
  name: ledger
  description: books the day
  tasks:
    - {id: first, command: "echo v1"}
    - {id: second, dependencies: [first], command: "echo two"}
"""
TYPO = GOOD.replace("dependencies: [first]", "dependencies: [frist]")
OTHER = "workflow:\n  name: bystander\n  tasks:\n    - {id: only, command: 'echo fine'}\n"


_MADE: list[Path] = []


@pytest.fixture(autouse=True)
def _own_folders_removed():
    """The session's dags folder is shared: a test's workflows (valid, broken, duplicated
    across folders on purpose) must not stay behind as import errors for later files."""
    yield
    while _MADE:
        shutil.rmtree(_MADE.pop(), ignore_errors=True)


class Folder:
    """One test's own subfolder of the session's dags folder, with its own last good store."""

    def __init__(self, env, name: str, **settings: str):
        self.env, self.name = env, name
        self.root = env.dags_folder / name
        _MADE.append(self.root)
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        shutil.copy(REPO / "dags" / "iflow_dags.py", self.root / "iflow_dags.py")
        self.store = env.home / f"store-{name}"
        self.extra = {"AIRFLOW__IFLOW__LAST_GOOD_STORE": str(self.store),
                      **{f"AIRFLOW__IFLOW__{k.upper()}": v for k, v in settings.items()}}

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def inspect(self) -> dict:
        proc = self.env.run([sys.executable, "-c", INSPECT, self.name], extra_env=self.extra)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return json.loads(proc.stdout.split("JSON", 1)[1])


def test_an_invalid_file_keeps_its_last_good_dag_and_says_so(airflow_env):
    f = Folder(airflow_env, "lg_keep")
    f.write("ledger.yaml", GOOD)
    f.write("bystander.yaml", OTHER)
    healthy = f.inspect()
    assert healthy["errors"] == {}
    assert "iflow:last-good" not in healthy["dags"]["ledger"]["tags"]

    f.write("ledger.yaml", TYPO)
    seen = f.inspect()
    ledger = seen["dags"]["ledger"]
    assert ledger["tasks"] == ["first", "second"] and ledger["commands"]["first"] == "echo v1"
    assert ledger["tags"] == ["iflow", "iflow:last-good"]
    assert ledger["description"].startswith("⚠ running its last good version: ledger.yaml is invalid since ")
    assert "ledger.yaml:7:" in ledger["description"]
    assert "**⚠ This workflow is running its last good version**" in ledger["doc_md"]
    assert "unknown task id 'frist'" in ledger["doc_md"]
    assert "books the day" in ledger["doc_md"]  # the last good version's own docs follow the banner
    assert list(seen["errors"]) == ["ledger.yaml"]
    assert "ledger.yaml:7:" in seen["errors"]["ledger.yaml"]
    assert "The DAG 'ledger' keeps its last good version (saved " in seen["errors"]["ledger.yaml"]
    assert "iflow:last-good" not in seen["dags"]["bystander"]["tags"]

    again = f.inspect()  # a re-parse changes nothing (no new DAG version while the file stays broken)
    assert again["dags"]["ledger"]["description"] == ledger["description"]
    assert again["dags"]["ledger"]["doc_md"] == ledger["doc_md"]

    f.write("ledger.yaml", GOOD.replace("echo v1", "echo v2"))  # fixed: the new version, no banner
    fixed = f.inspect()
    assert fixed["errors"] == {} and fixed["dags"]["ledger"]["commands"]["first"] == "echo v2"
    assert fixed["dags"]["ledger"]["tags"] == ["iflow"]


def test_on_invalid_pause_tags_the_kept_dag_and_hide_drops_it(airflow_env):
    paused = Folder(airflow_env, "lg_pause", on_invalid="pause")
    paused.write("ledger.yaml", GOOD)
    paused.inspect()
    paused.write("ledger.yaml", TYPO)
    dag = paused.inspect()["dags"]["ledger"]
    assert dag["tags"] == ["iflow", "iflow:last-good", "iflow:paused-while-invalid"]
    assert dag["description"].startswith("⚠ paused while its file is invalid")

    hidden = Folder(airflow_env, "lg_hide", on_invalid="hide")
    hidden.write("ledger.yaml", GOOD)
    hidden.write("bystander.yaml", OTHER)
    assert "ledger" in hidden.inspect()["dags"]
    hidden.write("ledger.yaml", TYPO)
    seen = hidden.inspect()
    assert set(seen["dags"]) == {"bystander"} and list(seen["errors"]) == ["ledger.yaml"]


def test_deleted_never_valid_and_lost_workflow_files(airflow_env):
    f = Folder(airflow_env, "lg_files")
    f.write("ledger.yaml", GOOD)
    f.write("gone.yaml", OTHER.replace("bystander", "gone"))
    f.write("fresh.yaml", "workflow:\n  name: fresh\n  tasks: [{id: a, priorty: 1}]\n")  # never valid
    first = f.inspect()
    assert set(first["dags"]) == {"ledger", "gone"} and list(first["errors"]) == ["fresh.yaml"]

    (f.root / "gone.yaml").unlink()  # deleted on purpose: the workflow goes away, no error
    f.write("ledger.yaml", GOOD.replace("workflow:", "workflw:"))  # no longer looks like a workflow
    seen = f.inspect()
    assert set(seen["dags"]) == {"ledger"}
    assert "iflow:last-good" in seen["dags"]["ledger"]["tags"]
    assert sorted(seen["errors"]) == ["fresh.yaml", "ledger.yaml"]
    assert "no top-level `workflow:` mapping any more" in seen["errors"]["ledger.yaml"]

    f.write("gone.yaml", "workflow:\n  name: gone\n  tasks: [{id: a, dependencies: [b]}]\n")  # back, broken
    back = f.inspect()
    assert "gone" not in back["dags"]  # its entry went with the delete: no last good version to return to


def test_a_corrupt_store_is_no_store(airflow_env):
    f = Folder(airflow_env, "lg_corrupt")
    f.write("ledger.yaml", GOOD)
    f.inspect()
    entries = [p for p in f.store.iterdir() if p.suffix == ".json"]
    assert len(entries) == 1
    entries[0].write_bytes(entries[0].read_bytes()[:-40])  # torn
    f.write("ledger.yaml", TYPO)
    seen = f.inspect()
    assert seen["dags"] == {} and list(seen["errors"]) == ["ledger.yaml"]
    f.write("ledger.yaml", GOOD)  # the next valid parse writes a whole entry again
    f.inspect()
    f.write("ledger.yaml", TYPO)
    assert "ledger" in f.inspect()["dags"]


def _chain(name: str, n: int) -> str:
    lines = [f"workflow:\n  name: {name}\n  tasks:\n    - {{id: t0, command: 'true'}}"]
    lines += [f"    - {{id: t{i}, dependencies: [t{i - 1}], command: 'true'}}" for i in range(1, n)]
    return "\n".join(lines) + "\n"


def test_a_file_over_its_budget_is_its_own_error_and_keeps_its_last_good_version(airflow_env):
    f = Folder(airflow_env, "lg_budget", file_parse_budget="0.5", plan_cache="off")
    f.write("big.yaml", _chain("big", 20))
    f.write("bystander.yaml", OTHER)
    assert set(f.inspect()["dags"]) == {"big", "bystander"}
    f.write("big.yaml", _chain("big", 30000))  # valid, but far over half a second to compile
    f.write("slow_new.yaml", _chain("slow_new", 30000))  # never fitted its budget: only an error
    seen = f.inspect()
    assert set(seen["dags"]) == {"big", "bystander"}
    assert len(seen["dags"]["big"]["tasks"]) == 20 and "iflow:last-good" in seen["dags"]["big"]["tags"]
    assert sorted(seen["errors"]) == ["big.yaml", "slow_new.yaml"]
    for text in seen["errors"].values():
        assert "took longer than its budget of 0.5 s ([iflow] file_parse_budget)" in text
