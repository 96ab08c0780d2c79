"""The plan layer of SPEC §6: groups, for_each/max_parallel, run_workflow/params, and the checks across files.

Every error a single file can have is in tests/broken/ (with its line and key
path); here: what a valid file plans to, and the errors that need the folder.
"""

from __future__ import annotations

from pathlib import Path

from iflow_airflow.client.cli import main
from iflow_airflow.compiler import compile_folder
from iflow_airflow.plan.cache import PlanCache
from iflow_airflow.plan.ir import ItemSource, RunRef, RunWorkflowAction
from iflow_airflow.settings import IflowSettings

SETTINGS = IflowSettings(allowed_modules=("iflow_airflow.examples",))

GROUPED = """\
resources: {db: 1}
workflow:
  name: grouped
  tasks:
    - {id: prepare, command: echo}
    - id: build
      dependencies: [prepare]
      priority: high
      resource: db
      env: {A: "1"}
      tasks:
        - {id: compile, command: make, env: {B: "2"}}
        - id: checks
          retries: 7
          tasks:
            - {id: unit, dependencies: [compile], command: echo}
            - {id: lint, dependencies: [build.compile], priority: low, command: echo}
    - {id: release, dependencies: [build], command: echo}
    - {id: audit, dependencies: [build.checks], resource: db, command: echo}
"""


def test_groups_flatten_to_full_ids_with_group_defaults(front):
    plan = front.plan(GROUPED)
    tasks = {t.task_id: t for t in plan.tasks}
    assert list(tasks) == ["prepare", "build.compile", "build.checks.unit", "build.checks.lint", "release", "audit"]
    assert tasks["build.compile"].upstream == ("prepare",)  # the group's dependency holds for each task in it
    assert tasks["build.checks.unit"].upstream == ("build.compile", "prepare")
    assert tasks["release"].upstream == ("build.compile", "build.checks.unit", "build.checks.lint")
    assert tasks["audit"].upstream == ("build.checks.unit", "build.checks.lint")
    assert (tasks["build.compile"].level_name, tasks["build.checks.lint"].level_name) == ("high", "low")
    assert tasks["build.compile"].env == {"A": "1", "B": "2"} and tasks["build.checks.unit"].env == {"A": "1"}
    assert (tasks["build.checks.unit"].retries, tasks["build.compile"].retries) == (7, 3)
    assert tasks["build.checks.unit"].group == ("build", "build.checks")
    assert tasks["build.checks.unit"].local_id == "unit" and tasks["release"].local_id == "release"
    assert [(g.group_id, g.parent, g.local_id) for g in plan.groups] == [
        ("build", None, "build"), ("build.checks", "build", "checks")]
    assert tasks["build.checks.unit"].path == ("workflow", "tasks", 1, "tasks", 1, "tasks", 0)
    assert tasks["build.checks.unit"].line == 16


def test_weights_and_conflicts_see_through_groups(front):
    plan = front.plan(GROUPED)
    tasks = {t.task_id: t for t in plan.tasks}
    assert tasks["prepare"].critical_path == 4  # prepare -> compile -> unit -> release
    assert tasks["build.compile"].priority_weight == 4 * 1_000_000 + 3 * 100
    pairs = {(c.first, c.second) for c in plan.conflicts}
    # every task of build takes db; audit (after checks) may meet compile? no: it is after compile too
    assert ("build.checks.unit", "build.checks.lint") in pairs
    assert all("audit" not in pair for pair in pairs if "build.compile" in pair)


def test_for_each_sources_and_max_parallel(front):
    plan = front.plan("""\
workflow:
  name: fan
  params: {regions: [eu]}
  tasks:
    - {id: src, command: echo}
    - {id: a, for_each: [1, {x: 2}], command: echo}
    - {id: b, for_each: {param: regions}, max_parallel: 3, command: echo}
    - id: g
      max_parallel: 2
      tasks:
        - {id: c, dependencies: [src], for_each: {result: src}, callable: "iflow_airflow.examples.callables:tag_item"}
        - {id: plain, command: echo}
""")
    t = {x.task_id: x for x in plan.tasks}
    assert t["a"].for_each == ItemSource(items=(1, {"x": 2})) and t["a"].max_parallel is None
    assert t["b"].for_each == ItemSource(ref=RunRef("param", "regions")) and t["b"].max_parallel == 3
    assert t["g.c"].for_each == ItemSource(ref=RunRef("result", "src")) and t["g.c"].max_parallel == 2
    assert t["g.plain"].for_each is None and t["g.plain"].max_parallel is None  # a group default, only for items


def test_run_workflow_params_are_resolved_to_references(front):
    plan = front.plan("""\
workflow:
  name: parent
  params: {version: "1"}
  tasks:
    - id: build
      tasks: [{id: package, command: echo}]
    - id: release
      dependencies: [build]
      run_workflow: deploy
      params: {v: {result: build.package}, p: {param: version}, dry_run: false, obj: {a: [1]}}
""")
    action = plan.task("release").action
    assert action == RunWorkflowAction("deploy", {"v": RunRef("result", "build.package"), "p": RunRef("param", "version"),
                                                  "dry_run": False, "obj": {"a": [1]}}, 5.0)


def _folder(tmp_path: Path, files: dict[str, str]) -> dict[str, object]:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {c.display: c for c in compile_folder(tmp_path, SETTINGS)}


def _wf(name: str, *runs: str, params: str = "") -> str:
    tasks = "".join(f"    - {{id: run_{r}, run_workflow: {r}}}\n" for r in runs) or "    - {id: a, command: echo}\n"
    return f"workflow:\n  name: {name}\n{params}  tasks:\n{tasks}"


def test_unknown_workflow_is_located_and_keeps_the_dag(tmp_path):
    got = _folder(tmp_path, {"a.yaml": _wf("a", "deploy_servce"), "b.yaml": _wf("deploy_service")})
    a = got["a.yaml"]
    assert a.plan is not None and a.error is not None  # a deleted child must not take its parent's DAG down
    [p] = a.error.problems
    assert (p.key_path, p.line, p.column, p.code) == ("workflow.tasks[0].run_workflow", 4, 31, "unknown_workflow")
    assert p.expected == "did you mean 'deploy_service'?"
    assert got["b.yaml"].ok


def test_unknown_child_param_is_located(tmp_path):
    parent = "workflow:\n  name: p\n  tasks:\n    - id: r\n      run_workflow: c\n      params: {verson: 1}\n"
    got = _folder(tmp_path, {"p.yaml": parent, "c.yaml": _wf("c", params="  params: {version: 0}\n")})
    [p] = got["p.yaml"].error.problems
    assert (p.key_path, p.line, p.code, p.expected) == ("workflow.tasks[0].params.verson", 6, "unknown_child_param",
                                                        "did you mean 'version'?")


def test_a_cycle_through_other_workflows_names_the_chain_and_drops_those_dags(tmp_path):
    got = _folder(tmp_path, {"a.yaml": _wf("a", "b"), "b.yaml": _wf("b", "c"), "c.yaml": _wf("c", "a"),
                             "d.yaml": _wf("d", "a")})
    for name, chain in (("a", "a -> b -> c -> a"), ("b", "b -> c -> a -> b"), ("c", "c -> a -> b -> c")):
        c = got[f"{name}.yaml"]
        assert c.plan is None
        [p] = c.error.problems
        assert (p.code, p.message, p.key_path, p.line) == ("workflow_cycle", f"run_workflow cycle: {chain}",
                                                           "workflow.tasks[0].run_workflow", 4)
    assert got["d.yaml"].ok  # it runs into the cycle, but is not part of it


def test_validate_of_one_file_reads_the_folder_for_the_workflows_it_runs(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text(_wf("a", "b"))
    (tmp_path / "b.yaml").write_text(_wf("b"))
    assert main(["validate", str(tmp_path / "a.yaml")]) == 0
    (tmp_path / "b.yaml").write_text(_wf("b", "a"))
    assert main(["validate", str(tmp_path / "a.yaml")]) == 1
    assert "run_workflow cycle: a -> b -> a" in capsys.readouterr().out


def test_explain_shows_groups_items_and_sub_workflows(tmp_path, capsys):
    (tmp_path / "g.yaml").write_text(GROUPED.replace("    - {id: release, dependencies: [build], command: echo}\n",
                                                     "    - {id: release, dependencies: [build], run_workflow: x,"
                                                     " params: {v: {result: build.compile}}}\n"
                                                     "    - {id: fan, for_each: [1, 2], max_parallel: 1}\n"))
    assert main(["explain", str(tmp_path / "g.yaml")]) == 0
    out = capsys.readouterr().out
    assert "group build.checks: build.checks.unit, build.checks.lint" in out
    assert "fan: one mapped task instance per item of 2 listed items, at most 1 at once" in out
    assert "release: runs workflow x (v={result: build.compile}) and waits for it" in out


def test_decomposition_plans_survive_the_plan_cache(tmp_path, front):
    plan = front.plan(GROUPED.replace("command: make,", "for_each: [a, {b: 1}], command: make,"))
    (tmp_path / "cache").mkdir(mode=0o700)
    cache = PlanCache(tmp_path / "cache")
    key = "k" * 64
    assert cache.put(key, plan) is True  # every new IR class may be unpickled (cache.py's allow-list)
    assert cache.get(key) == plan


def test_iflow_page_progress_counts_mapped_items():
    """The /iflow page's progress (runtime/figures.py) counts every item of a mapped task."""
    from iflow_airflow.runtime import figures as fig

    run = fig.RunRow("fan", "r1", "running", None, None)
    rows = [fig.TaskRow("fan", "r1", "list", "success", None, None, None, 1, None, 1, 1)]
    rows += [fig.TaskRow("fan", "r1", "each", state, None, None, None, 1, None, 1, 1, None, i)
             for i, state in enumerate(("success", "success", "running"))]
    progress = fig.run_progress(run, rows, total_tasks=3)  # plan: list, each, merge
    assert (progress["done"], progress["total"], progress["running"]) == (3, 4, 1)
