"""iflow.defaults.yaml inheritance: nearest wins key by key, the file wins over all; errors located."""

from __future__ import annotations

from pathlib import Path

import pytest
from tree_files import put

from iflow_airflow.compiler import compile_file, compile_folder
from iflow_airflow.settings import IflowSettings

S = IflowSettings(allowed_modules=("iflow_airflow.examples",))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    put(tmp_path, "iflow.defaults.yaml", """
        orchestration: {retry_attempts: 5, task_timeout: 100, retry_delay: 1}
        scheduling: {queues: [root_q1, root_q2], strategy: round_robin}
        resources: {db: 2}
        task_types:
          build: {command: make, retries: 1, priority: low}
        workflow: {timezone: Asia/Tokyo, owner: root_owner, tags: [root]}
        """)
    put(tmp_path, "team/iflow.defaults.yaml", """
        orchestration: {retry_attempts: 7}
        scheduling: {queues: [team_q]}
        task_types:
          build: {retries: 2}
        workflow: {owner: team_owner}
        """)
    put(tmp_path, "team/deep/wf.yaml", """
        orchestration: {task_timeout: 50}
        workflow:
          name: deep
          tasks:
            - {id: a, resource: db, type: build}
            - {id: b}
        """)
    put(tmp_path, "team/deep/own.yaml", """
        orchestration: {retry_attempts: 0, retry_delay: 9}
        workflow:
          name: own
          owner: me
          tags: [mine]
          timezone: UTC
          tasks: [{id: a}]
        """)
    put(tmp_path, "other/wf.yaml", """
        workflow:
          name: other
          tasks: [{id: a}]
        """)
    return tmp_path


def test_nearest_defaults_win_key_by_key(tree):
    c = compile_file(tree / "team/deep/wf.yaml", root=tree, settings=S)
    assert c.error is None, c.error and c.error.render()
    a, b = c.plan.task("a"), c.plan.task("b")
    # retry_attempts from team (nearest), task_timeout from the file, retry_delay from the root
    assert (b.retries, b.timeout, b.retry_delay) == (7, 50.0, 1.0)
    # task_types merge key by key: command and priority from the root, retries from team
    assert (a.action.command, a.retries, a.level_name, a.pool) == ("make", 2, "low", "iflow_db")
    # lists replace: team's queues, strategy from the root
    assert c.plan.settings.queues == ("team_q",) and c.plan.settings.strategy == "round_robin"
    assert (c.plan.timezone, c.plan.owner, c.plan.tags) == ("Asia/Tokyo", "team_owner", ("root",))
    assert c.display == "team/deep/wf.yaml"


def test_the_file_wins_over_all_defaults(tree):
    c = compile_file(tree / "team/deep/own.yaml", root=tree, settings=S)
    t = c.plan.task("a")
    assert (t.retries, t.retry_delay, t.timeout) == (0, 9.0, 100.0)
    assert (c.plan.owner, c.plan.tags, c.plan.timezone) == ("me", ("mine",), "UTC")


def test_sibling_folders_only_get_shared_parents(tree):
    c = compile_file(tree / "other/wf.yaml", root=tree, settings=S)
    t = c.plan.task("a")
    assert (t.retries, c.plan.owner, c.plan.settings.queues) == (5, "root_owner", ("root_q1", "root_q2"))
    assert set(c.plan.resources) == {"db"}


def test_defaults_above_the_root_do_not_apply(tree):
    c = compile_file(tree / "team/deep/wf.yaml", root=tree / "team", settings=S)
    # the root's resources are out of reach now: `db` is undeclared
    assert {(p.key_path, p.code) for p in c.error.problems} == {("workflow.tasks[0].resource", "unknown_resource")}


def test_without_root_only_the_own_folder_counts(tree):
    c = compile_file(tree / "other/wf.yaml", settings=S)
    assert c.plan.task("a").retries == 3 and c.plan.owner == "iflow"


def test_compile_folder_applies_the_chain(tree):
    results = {c.display: c for c in compile_folder(tree, S)}
    assert set(results) == {"team/deep/wf.yaml", "team/deep/own.yaml", "other/wf.yaml"}
    assert all(c.ok for c in results.values()), [c.error.render() for c in results.values() if c.error]
    assert results["team/deep/wf.yaml"].plan.task("b").retries == 7


def test_unknown_key_in_a_defaults_file_is_located_in_the_defaults_file(tmp_path):
    put(tmp_path, "iflow.defaults.yaml", """
        orchestration:
          retry_attempts: 7
          retyr_delay: 3
        workflow: {timezone: Europe/Berln}
        """)
    wf = put(tmp_path, "wf.yaml", "workflow:\n  name: w\n  tasks: [{id: a}]\n")
    c = compile_file(wf, root=tmp_path, settings=S)
    assert {(p.file, p.key_path, p.line, p.column, p.code) for p in c.error.problems} == {
        ("iflow.defaults.yaml", "orchestration.retyr_delay", 3, 3, "unknown_key"),
        ("iflow.defaults.yaml", "workflow.timezone", 4, 12, "timezone"),
    }
    assert c.error.file == "wf.yaml"
    assert [p.expected for p in c.error.problems if p.code == "unknown_key"] == ["did you mean `retry_delay`?"]
    assert "iflow.defaults.yaml:3:3: orchestration.retyr_delay" in c.error.render()


def test_bad_value_in_defaults_overridden_by_the_file_is_no_error(tmp_path):
    put(tmp_path, "iflow.defaults.yaml", "orchestration: {retry_attempts: -1}\n")
    wf = put(tmp_path, "wf.yaml", "orchestration: {retry_attempts: 2}\nworkflow:\n  name: w\n  tasks: [{id: a}]\n")
    assert compile_file(wf, root=tmp_path, settings=S).plan.task("a").retries == 2


def test_bad_value_in_defaults_is_located_there(tmp_path):
    put(tmp_path, "iflow.defaults.yaml", "# defaults\norchestration: {retry_attempts: -1}\n")
    wf = put(tmp_path, "sub/wf.yaml", "workflow:\n  name: w\n  tasks: [{id: a}]\n")
    c = compile_file(wf, root=tmp_path, settings=S)
    assert [(p.file, p.key_path, p.line, p.column, p.code) for p in c.error.problems] == [
        ("iflow.defaults.yaml", "orchestration.retry_attempts", 2, 17, "greater_than_equal")]
    assert c.error.file == "sub/wf.yaml"


@pytest.mark.parametrize("key", ["tasks", "name"])
def test_workflow_tasks_and_name_cannot_be_defaults(tmp_path, key):
    put(tmp_path, "iflow.defaults.yaml", f"orchestration: {{}}\nworkflow:\n  {key}: x\n")
    wf = put(tmp_path, "wf.yaml", "workflow:\n  name: w\n  tasks: [{id: a}]\n")
    c = compile_file(wf, root=tmp_path, settings=S)
    assert [(p.key_path, p.code) for p in c.error.problems] == [(f"workflow.{key}", "defaults")]
    assert f"iflow.defaults.yaml:3:3: workflow.{key}: `workflow.{key}` cannot be a default" in c.error.render()


def test_defaults_must_be_a_mapping(tmp_path):
    put(tmp_path, "iflow.defaults.yaml", "- a\n- b\n")
    wf = put(tmp_path, "wf.yaml", "workflow:\n  name: w\n  tasks: [{id: a}]\n")
    c = compile_file(wf, root=tmp_path, settings=S)
    assert [p.code for p in c.error.problems] == ["defaults"]
    assert "a defaults file must be a mapping" in c.error.render()


def test_empty_defaults_file_is_fine(tmp_path):
    put(tmp_path, "iflow.defaults.yaml", "# nothing yet\n")
    wf = put(tmp_path, "wf.yaml", "workflow:\n  name: w\n  tasks: [{id: a}]\n")
    assert compile_file(wf, root=tmp_path, settings=S).ok


def test_broken_defaults_file_names_itself(tmp_path):
    put(tmp_path, "iflow.defaults.yaml", "orchestration: {retry_attempts: 7\n")
    wf = put(tmp_path, "wf.yaml", "workflow:\n  name: w\n  tasks: [{id: a}]\n")
    c = compile_file(wf, root=tmp_path, settings=S)
    assert [p.code for p in c.error.problems] == ["defaults"]
    assert "iflow.defaults.yaml:2:1" in c.error.render() and "YAML syntax error" in c.error.render()


def test_broken_defaults_file_problem_is_located_in_the_defaults_file(tmp_path):
    put(tmp_path, "iflow.defaults.yaml", "orchestration: {retry_attempts: 7\n")
    wf = put(tmp_path, "wf.yaml", "workflow:\n  name: w\n  tasks: [{id: a}]\n")
    c = compile_file(wf, root=tmp_path, settings=S)
    assert [(p.file, p.line, p.column) for p in c.error.problems] == [("iflow.defaults.yaml", 2, 1)]


def test_one_broken_defaults_file_only_breaks_its_subtree(tmp_path):
    put(tmp_path, "bad/iflow.defaults.yaml", "orchestration: [\n")
    put(tmp_path, "bad/wf.yaml", "workflow:\n  name: bad_one\n  tasks: [{id: a}]\n")
    put(tmp_path, "good/wf.yaml", "workflow:\n  name: good_one\n  tasks: [{id: a}]\n")
    results = {c.display: c.ok for c in compile_folder(tmp_path, S)}
    assert results == {"bad/wf.yaml": False, "good/wf.yaml": True}


def test_a_symlinked_sub_folder_is_part_of_the_dags_folder(tmp_path: Path):
    """git-sync and shared checkouts link folders in: the link's place decides, not its target's."""
    put(tmp_path, "store/iflow.defaults.yaml", "orchestration: {retry_attempts: 9}\n")
    put(tmp_path, "store/shared/wf.yaml", "workflow:\n  name: linked\n  tasks: [{id: a}]\n")
    put(tmp_path, "dags/iflow.defaults.yaml", "orchestration: {retry_attempts: 5}\n")
    (tmp_path / "dags" / "shared").symlink_to(tmp_path / "store" / "shared", target_is_directory=True)
    results = {c.display: c for c in compile_folder(tmp_path / "dags", S)}
    assert set(results) == {"shared/wf.yaml"}
    assert results["shared/wf.yaml"].plan.task("a").retries == 5  # the dags folder's defaults, not the store's
