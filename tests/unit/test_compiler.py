"""compile_folder: discovery, .airflowignore, non-iflow YAML, cross-file checks."""

from __future__ import annotations

import textwrap
from pathlib import Path

from iflow_airflow.compiler import compile_file, compile_folder, iter_yaml_files
from iflow_airflow.settings import IflowSettings

S = IflowSettings(allowed_modules=("iflow_airflow.examples",))


def put(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def wf(name: str, extra: str = "", task: str = "{id: a}") -> str:
    return extra + f"workflow:\n  name: {name}\n  tasks: [{task}]\n"


def by_display(root: Path):
    return {c.display: c for c in compile_folder(root, S)}


def test_non_iflow_yaml_files_are_left_alone(tmp_path):
    put(tmp_path, "compose.yaml", "services:\n  web: {image: nginx}\n")
    put(tmp_path, "block.yml", "notes: |\n  workflow:\n    name: not_me\n")
    put(tmp_path, "broken_other.yaml", "a: [unclosed\n")
    put(tmp_path, "list.yaml", "- workflow\n- other\n")
    put(tmp_path, "nested.yaml", "outer:\n  workflow:\n    name: x\n")
    put(tmp_path, "notes.txt", "workflow:\n  name: txt\n")
    put(tmp_path, "real.yml", wf("real"))
    results = by_display(tmp_path)
    assert set(results) == {"real.yml"}
    assert results["real.yml"].plan.dag_id == "real"
    for name in ("compose.yaml", "block.yml", "broken_other.yaml", "list.yaml", "nested.yaml"):
        assert compile_file(tmp_path / name, settings=S) is None


def test_explicit_compiles_anything(tmp_path):
    path = put(tmp_path, "compose.yaml", "services: {}\n")
    c = compile_file(path, settings=S, explicit=True)
    assert [(p.key_path, p.line, p.column, p.code) for p in c.error.problems] == [("workflow", 1, 1, "shape")]


def test_top_level_workflow_scalar_is_not_an_iflow_file(tmp_path):
    path = put(tmp_path, "ci.yaml", "workflow: build-and-test\nsteps: [a, b]\n")
    assert compile_file(path, settings=S) is None


def test_airflowignore_is_honoured(tmp_path):
    put(tmp_path, ".airflowignore", "ignored_*\nskipme/\n")
    put(tmp_path, "ignored_one.yaml", wf("ignored", task="{id: a, dependencies: [zz]}"))
    put(tmp_path, "skipme/x.yaml", wf("skipped", task="{id: a, dependencies: [zz]}"))
    put(tmp_path, "sub/ignored_two.yaml", wf("ignored2"))
    put(tmp_path, "kept.yaml", wf("kept"))
    put(tmp_path, "sub/kept2.yaml", wf("kept2"))
    assert [p.relative_to(tmp_path).as_posix() for p in iter_yaml_files(tmp_path)] == ["kept.yaml", "sub/kept2.yaml"]
    results = by_display(tmp_path)
    assert {k: v.ok for k, v in results.items()} == {"kept.yaml": True, "sub/kept2.yaml": True}


def test_nested_airflowignore_applies_below_its_folder(tmp_path):
    put(tmp_path, "team/.airflowignore", "draft_*\n")
    put(tmp_path, "team/draft_x.yaml", wf("draft_team"))
    put(tmp_path, "draft_top.yaml", wf("draft_top"))
    assert set(by_display(tmp_path)) == {"draft_top.yaml"}


def test_defaults_files_are_not_workflows(tmp_path):
    put(tmp_path, "iflow.defaults.yaml", "orchestration: {retry_attempts: 1}\n")
    put(tmp_path, "a.yaml", wf("a"))
    assert set(by_display(tmp_path)) == {"a.yaml"}


def test_resource_declared_with_different_slots_is_an_error_on_both_files(tmp_path):
    put(tmp_path, "one.yaml", wf("one", "resources:\n  db: 2\n", "{id: a, resource: db}"))
    put(tmp_path, "two.yaml", wf("two", "# two\nresources:\n  gpu: 1\n  db: {slots: 3}\n", "{id: a, resource: db}"))
    put(tmp_path, "three.yaml", wf("three", "resources: {gpu: 1}\n"))
    results = by_display(tmp_path)
    assert results["three.yaml"].ok
    one, two = results["one.yaml"].error, results["two.yaml"].error
    assert [(p.key_path, p.line, p.column, p.code) for p in one.problems] == [("resources.db", 2, 3, "resource_conflict")]
    assert [(p.key_path, p.line, p.column, p.code) for p in two.problems] == [("resources.db", 4, 3, "resource_conflict")]
    for err in (one, two):
        assert err.problems[0].message == (
            "resource 'db' is declared with different sizes: slots=2 in one.yaml; slots=3 in two.yaml")


def test_resource_max_slots_difference_is_a_conflict_too(tmp_path):
    put(tmp_path, "one.yaml", wf("one", "resources:\n  gpu: {slots: 2, max_slots: 4}\n"))
    put(tmp_path, "two.yaml", wf("two", "resources:\n  gpu: {slots: 2}\n"))
    results = by_display(tmp_path)
    assert {k: [p.code for p in v.error.problems] for k, v in results.items()} == {
        "one.yaml": ["resource_conflict"], "two.yaml": ["resource_conflict"]}
    message = results["one.yaml"].error.problems[0].message
    assert message.startswith("resource 'gpu' is declared with different sizes: ")
    assert "slots=2 in two.yaml" in message and "slots=2, max_slots=4 in one.yaml" in message


def test_same_resource_same_size_in_many_files_is_fine(tmp_path):
    for i in range(3):
        put(tmp_path, f"w{i}.yaml", wf(f"w{i}", "resources: {db: {slots: 2, description: shared}}\n",
                                       "{id: a, resource: db}"))
    results = by_display(tmp_path)
    assert all(c.ok for c in results.values())
    assert {c.plan.resources["db"].pool for c in results.values()} == {"iflow_db"}


def test_duplicate_workflow_names(tmp_path):
    put(tmp_path, "a.yaml", wf("same"))
    put(tmp_path, "b.yaml", "# b\n" + wf("same"))
    results = by_display(tmp_path)
    assert results["a.yaml"].ok
    assert [(p.key_path, p.line, p.column, p.code) for p in results["b.yaml"].error.problems] == [
        ("workflow.name", 3, 3, "duplicate_workflow")]
    assert "already used by a.yaml" in results["b.yaml"].error.problems[0].message


def test_resource_conflict_from_a_defaults_file_is_located_there(tmp_path):
    put(tmp_path, "team/iflow.defaults.yaml", "# shared\nresources:\n  db: 2\n")
    put(tmp_path, "team/a.yaml", wf("a", task="{id: a, resource: db}"))
    put(tmp_path, "b.yaml", wf("b", "resources: {db: 5}\n", "{id: a, resource: db}"))
    results = by_display(tmp_path)
    (p,) = results["team/a.yaml"].error.problems
    assert (p.file, p.line, p.column, p.code) == ("team/iflow.defaults.yaml", 3, 3, "resource_conflict")


def test_a_broken_file_never_hides_the_good_ones(tmp_path):
    put(tmp_path, "a_bad.yaml", "workflow:\n  name: bad\n  tasks: [{id: a, dependencies: [a]}]\n")
    put(tmp_path, "b_good.yaml", wf("good"))
    put(tmp_path, "c_worse.yaml", "workflow: [\n")
    results = by_display(tmp_path)
    assert {k: v.ok for k, v in results.items()} == {"a_bad.yaml": False, "b_good.yaml": True, "c_worse.yaml": False}


def test_unreadable_path_is_a_located_io_error(tmp_path):
    c = compile_file(tmp_path / "missing.yaml", settings=S)
    assert [p.code for p in c.error.problems] == ["io"]
    assert "cannot read file" in c.error.render()
