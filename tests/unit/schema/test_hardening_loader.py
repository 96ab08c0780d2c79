"""Issue 14 (hardening round 2): the loader's defects, each reproduced, then the rest of its class.

Size and complexity attacks run in a child process under resource limits
(``limits.run_limited``): the outcome is asserted (a located error, a plan),
never a duration; the figures are printed (``-s``) for the README.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
from compile_helpers import SETTINGS, error_of, plan_of, problems_of
from limits import run_limited
from tree_files import put

from iflow_airflow import errors
from iflow_airflow.compiler import compile_file, compile_folder
from iflow_airflow.settings import IflowSettings

REPO = Path(__file__).resolve().parents[3]
BASE = "workflow:\n  name: wf\n  tasks: [{id: a}]\n"

# ------------------------------------------------------------------ D1: text the database cannot store


def test_d1_nul_through_a_yaml_escape_is_a_located_error(tmp_path):
    text = 'workflow:\n  name: wf\n  description: "payroll\\0export"\n  tasks: [{id: a}]\n'
    err = error_of(tmp_path, text)
    [p] = err.problems
    assert (p.key_path, p.line, p.column, p.code) == ("workflow.description", 3, 16, "control_char")
    assert "U+0000" in p.message and "\x00" not in err.render()


@pytest.mark.parametrize("escape", ["\\x01", "\\e", "\\x7f", "\\x85", "\\x9b", "\\b"])
def test_d1_other_control_characters_and_lone_surrogates_anywhere(tmp_path, escape):
    """Every string is checked, not only the known free-text fields: keys, params, env, commands."""
    text = (f'workflow:\n  name: wf\n  params:\n    "p{escape}": 1\n  tasks:\n'
            f'    - {{id: a, command: "echo {escape}", env: {{X: "v{escape}"}}}}\n')
    got = {(path, line, code) for path, line, _, code in problems_of(tmp_path, text)}
    assert got == {("workflow.params", 4, "control_char"), ("workflow.tasks[0].command", 6, "control_char"),
                   ("workflow.tasks[0].env.X", 6, "control_char")}


def test_d1_a_lone_surrogate_escape_is_refused_where_it_is(tmp_path):
    [p] = error_of(tmp_path, 'workflow:\n  name: wf\n  description: "x\\ud800"\n  tasks: [{id: a}]\n').problems
    assert (p.line, p.code) == (3, "yaml_syntax") and "escape" in p.message


def test_d1_tab_and_line_breaks_stay_allowed_in_multi_line_text(tmp_path):
    plan = plan_of(tmp_path, 'workflow:\n  name: wf\n  description: "a\\tb\\r\\nc"\n'
                             '  tasks: [{id: a, command: "printf \'x\\ty\\n\'"}]\n')
    assert plan.description == "a\tb\r\nc"


@pytest.mark.parametrize("key,value,code", [
    ("owner", "x" * 2001, "too_long"), ("tags", "[" + "t" * 101 + "]", "too_long"),
    ("owner", '"two\\nlines"', "one_line"), ("timezone", '"UTC\\t"', "one_line")])
def test_d1_owner_and_tags_fit_airflows_columns(tmp_path, key, value, code):
    [(path, line, _, got)] = problems_of(tmp_path, f"workflow:\n  name: wf\n  {key}: {value}\n  tasks: [{{id: a}}]\n")
    assert (path.split("[")[0], line, got) == (f"workflow.{key}", 3, code)


def test_d1_a_value_inherited_from_defaults_is_located_in_the_defaults_file(tmp_path):
    put(tmp_path, "iflow.defaults.yaml", f"workflow:\n  owner: {'o' * 2001}\n")
    c = compile_file(put(tmp_path, "wf.yaml", BASE), root=tmp_path, settings=SETTINGS)
    [p] = c.error.problems
    assert (Path(p.file).name, p.key_path, p.line, p.code) == ("iflow.defaults.yaml", "workflow.owner", 2, "too_long")


def test_d1_column_sizes_are_those_of_the_installed_airflow():
    """The limits in models.py / importer.py are Airflow's real column sizes (checked, not trusted)."""
    from airflow.models.dag import DagModel, DagTag
    from airflow.models.errors import ParseImportError
    from airflow.models.pool import Pool
    from airflow.models.taskinstance import TaskInstance

    from iflow_airflow.build import loader as importer
    from iflow_airflow.schema import models

    assert DagModel.__table__.c.owners.type.length == models.OWNERS_MAX
    assert DagTag.__table__.c.name.type.length == models.TAG_MAX
    assert ParseImportError.__table__.c.filename.type.length == importer.IMPORT_ERROR_FILENAME_MAX
    name_max = models.NAME_MAX
    assert DagModel.__table__.c.dag_id.type.length >= name_max
    assert TaskInstance.__table__.c.task_id.type.length >= name_max
    assert TaskInstance.__table__.c.queue.type.length >= name_max
    assert Pool.__table__.c.pool.type.length >= name_max + len(IflowSettings().pool_prefix)


def test_d1_the_error_key_of_a_file_with_an_undecodable_or_huge_name_is_storable(tmp_path):
    from iflow_airflow.build.loader import IMPORT_ERROR_FILENAME_MAX, error_key
    from iflow_airflow.compiler import Compiled

    odd = Compiled(tmp_path / "caf\udce9.yaml", "caf\udce9.yaml")
    assert error_key(odd, tmp_path) == "caf\\udce9.yaml"
    long = Compiled(tmp_path / ("d" * 1500) / "wf.yaml", "x")
    key = error_key(long, tmp_path)
    assert len(key) == IMPORT_ERROR_FILENAME_MAX and key.endswith("/wf.yaml")


# ------------------------------------------------------------------ D2: quadratic locating, unbounded reports


def test_d2_90000_unknown_keys_are_located_linearly_and_capped(tmp_path):
    path = put(tmp_path, "keys.yaml", BASE + "".join(f"k{i}: 1\n" for i in range(90_000)))
    out = run_limited(path, cpu_s=90)  # quadratic locating took > 300 s here
    assert out["total"] == 90_000 and len(out["problems"]) == errors.MAX_PROBLEMS + 1
    assert out["problems"][0][:4] == ["k0", 4, 1, "unknown_key"]
    assert out["problems"][-1][3] == "truncated" and "and 89,900 more problems" in out["problems"][-1][4]


def test_d2_the_cap_holds_for_every_stage_and_the_count_stays_true(tmp_path):
    many_dupes = BASE + "x:\n" + "".join("  k: 1\n" for _ in range(300))
    err = error_of(tmp_path, many_dupes)
    assert err.total == 299  # every duplicate is counted, 100 are listed
    assert len(err.problems) == errors.MAX_PROBLEMS + 1 and err.render().splitlines()[0].endswith(
        f"{err.total:,} problems in iflow workflow file")
    many_tasks = "workflow:\n  name: wf\n  tasks:\n" + "".join(f"    - {{id: t{i}, dependencies: [nope]}}\n"
                                                            for i in range(250))
    err = error_of(tmp_path, many_tasks)
    assert err.total == 250 and err.problems[-1].code == "truncated"


# ------------------------------------------------------------------ D3: base-60 numbers


def test_d3_a_huge_base_60_integer_is_text_not_minutes(tmp_path):
    scalar = "1" + ":59" * 600_000  # 1.8 MB
    path = put(tmp_path, "sexagesimal.yaml", f"workflow:\n  name: wf\n  tasks: [{{id: a, timeout: {scalar}}}]\n")
    out = run_limited(path, cpu_s=30)  # PyYAML's base-60 construction: 112 s
    [[key, line, col, code, _]] = out["problems"]
    assert (key, line, col, code) == ("workflow.tasks[0].timeout", 3, 19, "float_parsing")


def test_d3_base_60_values_stay_text_as_in_yaml_1_2(tmp_path):
    plan = plan_of(tmp_path, "workflow:\n  name: wf\n  params: {at: 1:30, f: 1:30.5}\n  tasks: [{id: a}]\n")
    assert (plan.params["at"].default, plan.params["f"].default) == ("1:30", "1:30.5")


# ------------------------------------------------------------------ D4: merge keys


def test_d4_merge_keys_work_without_pyyamls_flatten_mapping(tmp_path, monkeypatch):
    """Merges are resolved by the loader itself, whatever PyYAML version is installed."""
    import yaml

    def refuse(self, node):
        raise AssertionError("flatten_mapping must not be used: its expansion is not bounded by the loader")

    monkeypatch.setattr(yaml.constructor.SafeConstructor, "flatten_mapping", refuse)
    text = textwrap.dedent("""\
        task_types:
          base: &base {retries: 2, timeout: 10}
          more: &more {retries: 5, priority: high}
        workflow:
          name: wf
          tasks:
            - {id: a, <<: *base}
            - {id: b, <<: [*more, *base], timeout: 3}
        """)
    plan = plan_of(tmp_path, text)
    a, b = plan.task("a"), plan.task("b")
    assert (a.retries, a.timeout) == (2, 10.0)
    assert (b.retries, b.timeout, b.level_name) == (5, 3.0, "high")  # the first merged wins, own keys win


def test_d4_nested_merge_bomb_is_rejected_with_bounded_memory(tmp_path):
    lines = ["b0: &b0 {k0: v}"] + [f"b{i}: &b{i} {{<<: [*b{i - 1}, *b{i - 1}], k{i}: v}}" for i in range(1, 30)]
    lines.append("x: {<<: [*b29, *b29]}")
    path = put(tmp_path, "merge_bomb.yaml", "\n".join(lines) + "\n" + BASE)
    out = run_limited(path, cpu_s=30, mem_mib=1200)  # PyYAML 6.0.3 flatten_mapping: 5.4 GB, 112 s
    [[key, line, _, code, message]] = out["problems"]
    assert (key, line, code) == ("(top level)", 14, "too_large") and "through anchors and aliases" in message


def test_d4_merge_errors_are_located(tmp_path):
    assert problems_of(tmp_path, "x: &x [1]\nworkflow:\n  <<: *x\n  name: wf\n  tasks: [{id: a}]\n") == {
        ("workflow", 1, 8, "yaml_merge")}


def test_d4_pyproject_requires_a_pyyaml_without_the_merge_expansion():
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "pyyaml>=6.0.4" in [d.replace(" ", "").lower() for d in deps]


# ------------------------------------------------------------------ D5: symlinks outside the dags folder


def _load_as_airflow_does(dags: Path, bundle: Path):
    """``load_workflows`` called from a frame that looks like Airflow's ``import_file``."""
    from airflow.dag_processing.importers.base import DagImportResult

    from iflow_airflow.importer import load_workflows

    def import_file(bundle_path: Path):  # the loader finds `result` and `bundle_path` in this frame
        result = DagImportResult(file_path="iflow_dags.py")
        namespace = {"__file__": str(dags / "iflow_dags.py")}
        load_workflows(namespace)
        return result, namespace

    return import_file(bundle)


def test_d5_a_broken_file_symlinked_from_outside_keeps_its_name(tmp_path):
    outside = tmp_path / "elsewhere"
    put(outside, "broken.yaml", "workflow: {name: x, tasks: []}\n")
    put(outside, "folder/also_broken.yaml", "workflow: {name: y}\n")
    dags = tmp_path / "dags"
    put(dags, "good.yaml", "workflow: {name: good, tasks: [{id: a}]}\n")
    (dags / "link.yaml").symlink_to(outside / "broken.yaml")
    (dags / "linked_folder").symlink_to(outside / "folder")
    result, namespace = _load_as_airflow_does(dags, tmp_path)
    assert "iflow__good" in namespace
    assert sorted(e.file_path for e in result.errors) == ["dags/link.yaml", "dags/linked_folder/also_broken.yaml"]


def test_d5_a_symlink_loop_in_the_dags_folder_drops_nothing(tmp_path):
    """Airflow's own walk raises on a loop (``dags/loop -> ..``): every iflow DAG was gone."""
    put(tmp_path, "a.yaml", "workflow: {name: a, tasks: [{id: t}]}\n")
    put(tmp_path, "sub/b.yaml", "workflow: {name: b, tasks: [{id: t}]}\n")
    (tmp_path / "sub" / "up").symlink_to(tmp_path)
    (tmp_path / "again").symlink_to(tmp_path / "sub")
    got = sorted((c.display, c.ok) for c in compile_folder(tmp_path, SETTINGS))
    # b.yaml is reached through `sub` or `again`, whichever the walk meets first, and only once
    assert got in ([("a.yaml", True), ("again/b.yaml", True)], [("a.yaml", True), ("sub/b.yaml", True)])


# ------------------------------------------------------------------ D6: read before the size check


def test_d6_a_2_gib_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as fh:
        fh.write(b"workflow:\n  name: huge\n")
        fh.truncate(2 * 1024**3)  # sparse: costs no disk
    out = run_limited(path, cpu_s=30, mem_mib=700)  # read whole: 2.2 GB
    [[_, _, _, code, message]] = out["problems"]
    assert code == "too_large" and "2,147,483,648 bytes" in message


def test_d6_a_big_non_iflow_yaml_file_is_still_left_alone(tmp_path):
    (tmp_path / "data.yaml").write_bytes(b"rows:\n" + b"  - 1\n" * 2000)
    put(tmp_path, "wf.yaml", BASE)
    results = compile_folder(tmp_path, IflowSettings(max_file_bytes=4096))
    assert [c.display for c in results] == ["wf.yaml"] and results[0].ok


def test_d6_defaults_files_are_read_bounded_too(tmp_path):
    (tmp_path / "iflow.defaults.yaml").write_bytes(b"orchestration: {}\n" + b"#" * 10_000 + b"\n")
    c = compile_file(put(tmp_path, "wf.yaml", BASE), root=tmp_path, settings=IflowSettings(max_file_bytes=4096))
    assert [p.code for p in c.error.problems] == ["defaults"] and "larger than the limit" in c.error.problems[0].message


# ------------------------------------------------------------------ D11: names that collide as variables


def test_d11_task_ids_that_share_an_environment_variable_are_rejected(tmp_path):
    text = "workflow:\n  name: wf\n  tasks:\n    - {id: a-b}\n    - {id: a_b}\n    - {id: a.b, dependencies: [a-b]}\n"
    assert problems_of(tmp_path, text) == {("workflow.tasks[1].id", 5, 8, "env_collision"),
                                           ("workflow.tasks[2].id", 6, 8, "env_collision")}


def test_d11_params_that_share_an_environment_variable_are_rejected(tmp_path):
    text = "workflow:\n  name: wf\n  params: {a_b: 1, a-b: 2}\n  tasks: [{id: a}]\n"
    assert problems_of(tmp_path, text) == {("workflow.params.a-b", 3, 20, "env_collision")}


# ------------------------------------------------------------------ D14: a newcomer takes a name over


def test_d14_the_file_that_owned_a_name_keeps_it(tmp_path):
    from iflow_airflow.plan.cache import PlanCache

    cache = PlanCache(tmp_path / "cache")
    dags = tmp_path / "dags"
    put(dags, "payroll.yaml", "workflow: {name: payroll, tasks: [{id: a}]}\n")
    assert [c.ok for c in compile_folder(dags, SETTINGS, cache=cache)] == [True]
    old = time.time() - 3600
    put(dags, "a_new.yaml", "workflow: {name: payroll, tasks: [{id: evil}]}\n")
    os.utime(dags / "a_new.yaml", (old, old))  # even when it looks older (cp -p)
    for _ in range(2):  # and on every later parse
        results = {c.display: c for c in compile_folder(dags, SETTINGS, cache=cache)}
        assert results["payroll.yaml"].ok and [t.task_id for t in results["payroll.yaml"].plan.tasks] == ["a"]
        [p] = results["a_new.yaml"].error.problems
        assert p.code == "duplicate_workflow" and "already used by payroll.yaml" in p.message


def test_d14_without_a_ledger_the_oldest_file_wins(tmp_path):
    put(tmp_path, "zz_established.yaml", "workflow: {name: same, tasks: [{id: a}]}\n")
    old = time.time() - 3600
    os.utime(tmp_path / "zz_established.yaml", (old, old))
    put(tmp_path, "aa_newcomer.yaml", "workflow: {name: same, tasks: [{id: b}]}\n")
    results = {c.display: c for c in compile_folder(tmp_path, SETTINGS)}
    assert results["zz_established.yaml"].ok and results["aa_newcomer.yaml"].plan is None


# ------------------------------------------------------------------ D15: env ignored by callable and wait


@pytest.mark.parametrize("action", ["callable: 'iflow_airflow.examples.callables:add'", "wait: {file: /tmp/x}",
                                    "operator: checkpoint"])
def test_d15_env_on_a_task_that_ignores_it_is_an_error(tmp_path, action):
    text = f"workflow:\n  name: wf\n  tasks:\n    - {{id: a, {action}, env: {{X: '1'}}}}\n"
    [(path, line, _, code)] = problems_of(tmp_path, text)
    assert (path, line, code) == ("workflow.tasks[0].env", 4, "stray_env")


def test_d15_env_from_a_task_type_is_located_there(tmp_path):
    text = ("task_types:\n  t: {env: {X: '1'}}\nworkflow:\n  name: wf\n"
            "  tasks: [{id: a, type: t, wait: {file: /tmp/x}}]\n")
    assert problems_of(tmp_path, text) == {("task_types.t.env", 2, 7, "stray_env")}


# ------------------------------------------------------------------ D16: keys equal by value


@pytest.mark.parametrize("a,b", [("yes", "on"), ("1", "0x1"), ("~", "null"), ("true", "1"), ("1.0", "1")])
def test_d16_keys_equal_by_value_are_duplicates(tmp_path, a, b):
    err = error_of(tmp_path, BASE + f"x:\n  {a}: first\n  {b}: second\n")
    dupes = [p for p in err.problems if p.code == "duplicate_key"]
    assert [(p.line, p.column) for p in dupes] == [(6, 3)], err.render()
    assert f"the same key as {a!r}" in dupes[0].message


# ------------------------------------------------------------------ D17: run-time failures, misleading messages


@pytest.mark.parametrize("url", ['"http://x/\\x01"', '"http://x/a b"', '"http://h\\u00e9.example/"', '"http:///path"',
                                 '"http://x:99999/"'])
def test_d17_urls_that_would_fail_at_run_time_are_validation_errors(tmp_path, url):
    for field in (f"alerts: {{webhook: {url}}}\n  tasks: [{{id: a}}]", f"tasks: [{{id: a, wait: {{url: {url}}}}}]"):
        [(_, line, _, code)] = problems_of(tmp_path, f"workflow:\n  name: wf\n  {field}\n")
        assert line == 3 and code in ("value_error", "control_char")


def test_d17_an_over_long_integer_is_a_located_error_not_an_internal_one(tmp_path):
    for value in ("0x" + "f" * 5000, "9" * 5000, "9" * 450, "0b" + "1" * 20000):  # 0x...: 6,000 digits to print
        text = "workflow:\n  name: wf\n  tasks: [{id: a, retries: " + value + "}]\n"
        err = error_of(tmp_path, text)
        assert "internal" not in {p.code for p in err.problems}, err.render()
        assert all(p.line is not None for p in err.problems)


def test_d17_the_size_limit_message_names_aliases_only_when_there_are_some(tmp_path):
    many = BASE + "x: [" + ", ".join(["1"] * 200_001) + "]\n"
    [p] = error_of(tmp_path, many, settings=IflowSettings(max_file_bytes=4 * 1024 * 1024)).problems
    assert p.code == "too_large" and "more than 200,000 values" in p.message and "alias" not in p.message
