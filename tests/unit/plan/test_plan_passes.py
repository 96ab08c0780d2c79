"""Each planning pass alone (plan/passes.py): run the passes it needs, then it, on one draft."""

from __future__ import annotations

import pytest

from iflow_airflow import extensions
from iflow_airflow.compiler import _locator
from iflow_airflow.errors import closest, did_you_mean
from iflow_airflow.plan import passes, priorities
from iflow_airflow.plan.draft import Draft, Problems
from iflow_airflow.plan.ir import CheckpointAction, CommandAction
from iflow_airflow.plan.planner import run_passes
from iflow_airflow.schema.validate import validate
from iflow_airflow.settings import IflowSettings
from iflow_airflow.source import reader

SETTINGS = IflowSettings(allowed_modules=("iflow_airflow.examples",), pool_prefix="pp_")


def draft_of(text: str) -> Draft:
    doc = reader.parse("wf.yaml", text)
    locate = _locator(doc, [])
    return Draft(validate(doc.data, "wf.yaml", locate), "wf.yaml", text, SETTINGS, Problems("wf.yaml", locate))


def flow(*tasks: str, head: str = "") -> str:
    return head + "workflow:\n  name: wf\n  tasks:\n" + "".join(f"    - {t}\n" for t in tasks)


def upto(text: str, last: passes.Pass) -> Draft:
    """A draft after every check up to and including ``last``."""
    steps = passes.CHECKS + passes.RESOLVE
    return run_passes(draft_of(text), steps[:steps.index(last) + 1])


def codes(d: Draft) -> set[tuple[str, int | None, str]]:
    return {(p.key_path, p.line, p.code) for p in d.problems.items}


def test_ids_keeps_the_first_of_a_repeated_id():
    d = run_passes(draft_of(flow("{id: a}", "{id: b}", "{id: a, command: x}")), [passes.ids])
    assert list(d.tasks) == ["a", "b"]
    assert d.tasks["a"].path == ("workflow", "tasks", 0) and d.tasks["a"].index == 0
    assert codes(d) == {("workflow.tasks[2].id", 6, "duplicate_id")}
    assert "also tasks[0]" in d.problems.items[0].message


def test_dependencies_become_upstream_and_errors_are_located():
    d = upto(flow("{id: analyze}", "{id: b, dependencies: [analyse, b, analyze, analyze]}"), passes.dependencies)
    assert d.tasks["b"].upstream == ["analyze"]
    assert codes(d) == {("workflow.tasks[1].dependencies[0]", 5, "unknown_dependency"),
                        ("workflow.tasks[1].dependencies[1]", 5, "self_dependency"),
                        ("workflow.tasks[1].dependencies[3]", 5, "duplicate_dependency")}
    assert d.problems.items[0].expected == "did you mean 'analyze'?"


def test_order_is_topological_with_critical_paths():
    d = upto(flow("{id: c, dependencies: [a, b]}", "{id: b, dependencies: [a]}", "{id: a}"), passes.order)
    assert d.order == ["a", "b", "c"] and not d.has_cycle
    assert {t: d.tasks[t].critical_path for t in d.order} == {"a": 3, "b": 2, "c": 1}


def test_order_names_a_cycle_and_keeps_file_order():
    d = upto(flow("{id: a, dependencies: [c]}", "{id: b, dependencies: [a]}", "{id: c, dependencies: [b]}",
                  "{id: z}"), passes.order)
    assert d.has_cycle and d.order == ["a", "b", "c", "z"]
    [problem] = d.problems.items
    assert (problem.code, problem.message) == ("cycle", "dependency cycle: a -> b -> c -> a")


def test_topological_alone_reports_the_cycle_in_run_order():
    order, cycle = passes.topological(["x", "y", "t"], {"x": ["y"], "y": ["x"], "t": []})
    assert order == ["t"] and cycle == ["x", "y", "x"]


def test_schedule_parses_and_a_bad_time_zone_gets_a_suggestion():
    d = upto(flow("{id: a}", head="").replace("name: wf", "name: wf\n  schedule: '@daily'\n  timezone: Europe/Berln"),
             passes.schedule)
    assert d.schedule.kind == "preset" and d.schedule.value == "@daily"
    [problem] = d.problems.items
    assert problem.code == "timezone" and problem.expected == "did you mean 'Europe/Berlin'?"
    assert d.start_date.year == 2026  # a placeholder keeps the other checks going


def test_resources_get_the_pool_prefix_and_max_slots_is_checked():
    d = upto(flow("{id: a}", head="resources:\n  db: 2\n  gpu: {slots: 3, max_slots: 2}\n"), passes.resources)
    assert {n: (r.pool, r.slots) for n, r in d.resources.items()} == {"db": ("pp_db", 2), "gpu": ("pp_gpu", 3)}
    assert codes(d) == {("resources.gpu.max_slots", 3, "invalid")}


def test_tasks_merge_their_type_and_check_level_resource_and_action():
    head = ("resources:\n  db: 1\ntask_types:\n  build: {command: make, priority: high, resource: db}\n")
    d = upto(flow("{id: a, type: build}", "{id: b, type: build, command: 'make x', priority: 9}",
                  "{id: c, resource: dbb}", "{id: e}", head=head), passes.tasks)
    a, b, e = d.tasks["a"], d.tasks["b"], d.tasks["e"]
    assert (a.level, a.pool, a.resource, a.action) == ((4, "high"), "pp_db", "db", CommandAction("make"))
    assert b.action == CommandAction("make x")
    assert isinstance(e.action, CheckpointAction) and e.level == (3, "medium")
    assert codes(d) == {("workflow.tasks[1].priority", 9, "priority"),
                        ("workflow.tasks[2].resource", 10, "unknown_resource")}
    assert d.problems.items[1].expected == "did you mean 'db'?"


def test_queues_follow_the_strategy_and_a_named_queue_wins():
    head = "scheduling:\n  strategy: round_robin\n  queues: [q1, q2]\n"
    d = upto(flow("{id: a}", "{id: b}", "{id: c, queue: mine}", "{id: d}", head=head), passes.queues)
    assert {t.task_id: t.queue for t in d.ordered()} == {"a": "q1", "b": "q2", "c": "mine", "d": "q1"}


def test_custom_extensions_is_a_no_op_for_built_ins():
    d = upto(flow("{id: a}"), passes.custom_extensions)
    assert d.custom_ties is None and d.monitors == [] and not d.extensions.custom


def test_weights_are_level_bands_plus_the_tie_break():
    d = upto(flow("{id: a, priority: low}", "{id: b, dependencies: [a], priority: high}"), passes.weights)
    assert d.tasks["a"].weight == 2 * 1_000_000 + 2 * 100
    assert d.tasks["b"].weight == 4 * 1_000_000 + 1 * 100


def test_round_robin_weights_are_equal():
    d = upto(flow("{id: a, priority: low}", "{id: b, priority: critical}",
                  head="scheduling: {strategy: round_robin}\n"), passes.weights)
    assert d.tasks["a"].weight == d.tasks["b"].weight == 3 * 1_000_000


def test_conflicts_find_contending_pairs_and_note_checkpoints():
    d = upto(flow("{id: a, resource: db, command: x, priority: high}", "{id: b, resource: db, command: y}",
                  "{id: c}", head="resources: {db: 1}\n"), passes.conflicts)
    assert [(c.resource, c.first, c.second) for c in d.conflicts] == [("db", "a", "b")]
    assert d.notes == ["checkpoint (no action: logs and succeeds): c"]


def test_the_checks_collect_every_problem_before_resolving():
    d = run_passes(draft_of(flow("{id: a, dependencies: [q]}", "{id: a}")), passes.CHECKS)
    assert {p.code for p in d.problems.items} == {"unknown_dependency", "duplicate_id"}


# --- the shared rules --------------------------------------------------------------------------

def test_one_did_you_mean_rule():
    assert closest("analyse", ["analyze", "design"]) == "analyze"
    assert closest("qqqq", ["analyze"]) is None
    assert did_you_mean("gpuu", {"gpu": 1}, "declare it") == "did you mean 'gpu'?"
    assert did_you_mean("zzz", ["gpu"], "declare it") == "declare it"


@pytest.mark.parametrize("mode", ["basic", "intelligent", "advanced"])
@pytest.mark.parametrize("rule", ["priority", "timestamp", "random"])
def test_one_tie_break_rule_for_plan_weights_and_extension_defaults(mode, rule):
    vote = priorities.builtin_vote(rule, "wf", "t")
    info = extensions.TaskInfo("t", 3, "medium", 7, 1.0, None, (), None, 0)
    context = extensions.PlanContext("wf", mode, 5, ("default",), "priority_based", rule, {"t": vote})
    weight = priorities.weight(3, critical_path=7, mode=mode, conflict_resolution=rule, dag_id="wf", task_id="t")
    assert weight == priorities.band(3, extensions.default_tie_break(info, context))
    assert weight - 3 * 1_000_000 == (700 if mode != "basic" else 0) + (vote if rule == "random" else 0)


def test_the_critical_path_share_is_capped_below_the_band():
    assert extensions.tie_break(10**6, "advanced", 99) == 9_999 * 100 + 99 < 1_000_000
    assert extensions.critical_path_share(5, "basic") == 0


# --- the decomposition passes (SPEC §6) -----------------------------------------------------

def test_ids_flattens_groups_and_dependencies_see_through_them():
    d = upto(flow("{id: g, tasks: [{id: a}, {id: b, dependencies: [a]}]}", "{id: c, dependencies: [g]}"),
             passes.dependencies)
    assert list(d.tasks) == ["g.a", "g.b", "c"] and list(d.groups) == ["g"]
    assert d.groups["g"].members == ["g.a", "g.b"] and d.tasks["g.b"].group == ("g",)
    assert d.tasks["g.b"].upstream == ["g.a"] and d.tasks["c"].upstream == ["g.a", "g.b"]


def test_group_defaults_merge_outer_to_inner():
    d = upto(flow("{id: o, priority: high, env: {A: '1'}, tasks: [{id: i, retries: 1, env: {B: '2'}, tasks: [{id: t}]}]}"),
             passes.group_defaults)
    assert d.groups["o.i"].defaults == {"priority": "high", "env": {"A": "1", "B": "2"}, "retries": 1}


def test_for_each_resolves_its_source_and_checks_it():
    d = upto(flow("{id: s, command: x}", "{id: m, dependencies: [s], for_each: {result: s}, command: y}",
                  "{id: n, for_each: {result: s}, command: y}"), passes.for_each)
    assert d.tasks["m"].items.ref == passes.fanout.RunRef("result", "s")
    assert codes(d) == {("workflow.tasks[2].for_each.result", 6, "result_not_upstream")}


def test_sub_workflows_resolve_params_and_refuse_to_run_themselves():
    d = upto(flow("{id: r, run_workflow: other, params: {a: 1, b: {param: p}}}", "{id: s, run_workflow: wf}",
                  head="").replace("name: wf", "name: wf\n  params: {p: 0}"), passes.sub_workflows)
    assert d.tasks["r"].action.params == {"a": 1, "b": passes.fanout.RunRef("param", "p")}
    assert codes(d) == {("workflow.tasks[1].run_workflow", 6, "workflow_cycle")}
