"""Parse units (a sub-folder with its own loader is its own unit): which file is in which unit,
names relative to the tree root, the cross-file rules across units, files moved and units removed.

Each ``parse`` below is what one loader's parse in the dag-processor does (``load_folder``
of its folder, with the shared plan cache folder and last good store)."""

from __future__ import annotations

import os
from pathlib import Path

import compile_helpers  # noqa: F401  (a throw-away AIRFLOW_HOME before Airflow is imported)
import pytest

from iflow_airflow.build.folder import load_folder
from iflow_airflow.build.last_good import LastGoodStore
from iflow_airflow.plan.cache import PlanCache
from iflow_airflow.settings import IflowSettings
from iflow_airflow.source.discovery import iter_yaml_files, tree_root, unit_of

SETTINGS = IflowSettings(allowed_modules=("iflow_airflow.examples",))
LOADER = "from iflow_airflow.importer import load_workflows\n\nload_workflows(globals())\n"


def wf(name: str, *extra: str) -> str:
    tasks = "\n".join(["    - {id: t, command: 'echo hi'}", *extra])
    return f"workflow:\n  name: {name}\n  tasks:\n{tasks}\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    dags = tmp_path / "dags"
    for folder in (dags, dags / "team_a", dags / "team_a" / "etl", dags / "shared"):
        folder.mkdir(parents=True, exist_ok=True)
    (dags / "iflow_dags.py").write_text(LOADER)
    (dags / "team_a" / "iflow_dags.py").write_text(LOADER)
    (dags / "root.yaml").write_text(wf("root"))
    (dags / "shared" / "common.yaml").write_text(wf("common"))  # no loader of its own: the root unit's
    (dags / "team_a" / "a.yaml").write_text(wf("a"))
    (dags / "team_a" / "etl" / "deep.yaml").write_text(wf("deep"))  # team_a's unit (nearest loader above)
    return dags


class Deployment:
    """One dags folder's shared state: the plan cache folder (records, ledger) and the last good store."""

    def __init__(self, tmp: Path, top: Path):
        for name in ("cache", "store"):
            (tmp / name).mkdir(mode=0o700)
        self.top, self.cache, self.store = top, PlanCache(tmp / "cache"), LastGoodStore(tmp / "store")

    def parse(self, unit: Path | str) -> dict[str, object]:
        """dag_id -> the outcome of every file the unit's parse reported (DAG or error)."""
        folder = self.top / unit if isinstance(unit, str) else unit
        outcomes = load_folder(folder, SETTINGS, cache=self.cache, store=self.store, top=self.top)
        return {o.compiled.display: o for o in outcomes}


def rels(paths, top: Path) -> set[str]:
    return {str(p.relative_to(top)) for p in paths}


def test_each_file_belongs_to_the_nearest_loader_at_or_above_it(tree):
    assert rels(iter_yaml_files(tree, own_unit=True), tree) == {"root.yaml", "shared/common.yaml"}
    assert rels(iter_yaml_files(tree / "team_a", own_unit=True), tree) == {"team_a/a.yaml", "team_a/etl/deep.yaml"}
    assert len(list(iter_yaml_files(tree))) == 4  # validate, the keeper: the whole tree
    assert unit_of(tree / "team_a" / "etl" / "deep.yaml", tree) == tree / "team_a"
    assert unit_of(tree / "shared" / "common.yaml", tree) == tree
    assert tree_root(tree / "team_a") == tree.resolve()
    assert tree_root(tree / "team_a", stop=tree / "team_a") == (tree / "team_a").resolve()


def test_a_loader_that_airflowignore_excludes_makes_no_unit(tree):
    (tree / ".airflowignore").write_text("team_a/iflow_dags.py\n")
    assert "team_a/a.yaml" in rels(iter_yaml_files(tree, own_unit=True), tree)


def test_units_name_files_from_the_tree_root_and_each_parses_only_its_own(tmp_path, tree):
    d = Deployment(tmp_path, tree)
    root, team = d.parse(tree), d.parse("team_a")
    assert set(root) == {"root.yaml", "shared/common.yaml"}
    assert set(team) == {"team_a/a.yaml", "team_a/etl/deep.yaml"}
    assert all(o.dag is not None and o.compiled.error is None for o in [*root.values(), *team.values()])


def test_a_name_another_unit_owns_stays_with_it(tmp_path, tree):
    d = Deployment(tmp_path, tree)
    d.parse(tree), d.parse("team_a")
    (tree / "team_a" / "copy.yaml").write_text(wf("root"))  # claims the root unit's workflow name
    team = d.parse("team_a")
    assert team["team_a/copy.yaml"].dag is None
    assert "already used by root.yaml" in team["team_a/copy.yaml"].compiled.error.render()
    assert d.parse(tree)["root.yaml"].dag is not None  # the owner keeps its DAG
    (tree / "root.yaml").unlink()  # the owner goes: the name is free at the next parse
    d.parse(tree)
    assert d.parse("team_a")["team_a/copy.yaml"].dag is not None


def test_run_workflow_and_resource_sizes_are_judged_across_units(tmp_path, tree):
    d = Deployment(tmp_path, tree)
    (tree / "root.yaml").write_text("resources: {db: 1}\n" + wf("root", "    - {id: child, run_workflow: a}"))
    d.parse("team_a")
    assert d.parse(tree)["root.yaml"].compiled.error is None  # `a` lives in team_a's unit: no unknown name
    (tree / "team_a" / "a.yaml").write_text("resources: {db: 3}\n" + wf("a"))
    d.parse("team_a")
    error = d.parse(tree)["root.yaml"].compiled.error
    assert error is not None and "resource 'db' is declared with different sizes" in error.render()
    assert "team_a/a.yaml" in error.render()
    (tree / "team_a" / "a.yaml").write_text(wf("a", "    - {id: back, run_workflow: root}"))
    d.parse("team_a")
    root = d.parse(tree)["root.yaml"]
    assert "run_workflow cycle: root -> a -> root" in root.compiled.error.render()
    assert root.last_good is not None  # its own version has no DAG: the last good one (no cycle then) runs


def test_a_file_moved_between_units_keeps_its_workflow_and_the_old_unit_forgets_it(tmp_path, tree):
    d = Deployment(tmp_path, tree)
    d.parse(tree), d.parse("team_a")
    assert d.store.get("shared/common.yaml") is not None
    os.replace(tree / "shared" / "common.yaml", tree / "team_a" / "common.yaml")
    team = d.parse("team_a")
    assert team["team_a/common.yaml"].dag.dag_id == "common"
    assert "shared/common.yaml" not in d.parse(tree)
    assert d.store.get("shared/common.yaml") is None  # gone from its unit on purpose: forgotten
    assert d.store.get("team_a/common.yaml") is not None


def test_a_removed_unit_loader_gives_its_files_to_the_unit_above_with_their_last_good_versions(tmp_path, tree):
    d = Deployment(tmp_path, tree)
    d.parse(tree), d.parse("team_a")
    (tree / "team_a" / "a.yaml").write_text(wf("a").replace("tasks:", "taks:"))  # broken at the same moment
    (tree / "team_a" / "iflow_dags.py").unlink()
    root = d.parse(tree)
    assert set(root) >= {"team_a/a.yaml", "team_a/etl/deep.yaml", "root.yaml"}
    assert root["team_a/a.yaml"].last_good is not None and root["team_a/a.yaml"].dag.dag_id == "a"
    assert root["team_a/etl/deep.yaml"].dag is not None
    records = list((d.cache.folder).glob("units-*/*.json"))
    assert len(records) == 1  # team_a's record went with its loader


def test_a_new_sub_unit_takes_files_over_without_dropping_their_last_good_versions(tmp_path, tree):
    d = Deployment(tmp_path, tree)
    d.parse(tree)
    (tree / "shared" / "common.yaml").write_text(wf("common").replace("tasks:", "taks:"))
    (tree / "shared" / "iflow_dags.py").write_text(LOADER)  # shared/ becomes its own unit
    d.parse(tree)  # the root unit no longer lists it, but must not forget its last good version
    shared = d.parse("shared")
    assert shared["shared/common.yaml"].last_good is not None
    assert shared["shared/common.yaml"].dag.dag_id == "common"


def test_a_task_process_parse_records_nothing(tmp_path, tree):
    d = Deployment(tmp_path, tree)
    load_folder(tree, SETTINGS, cache=d.cache, store=d.store, top=tree, record=False)
    assert not list(d.cache.folder.glob("units-*")) and not list(d.cache.folder.glob("names-*.json"))
    d.parse(tree)
    assert len(list(d.cache.folder.glob("units-*/*.json"))) == 1
