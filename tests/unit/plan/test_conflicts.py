"""SPEC §3 Conflicts -> pools and conflict detection (pairs that may run at once and contend)."""

from __future__ import annotations

import json

import pytest

from iflow_airflow.plan import conflicts
from iflow_airflow.plan.ir import Conflict


def _wf(tasks: list[dict], resources: dict, *, rule: str = "priority", mode: str = "intelligent") -> str:
    out = [f"orchestration: {{mode: {mode}}}", f"coordination: {{conflict_resolution: {rule}}}",
           f"resources: {json.dumps(resources)}", "workflow:", "  name: c", "  tasks:"]
    out += ["    - " + json.dumps(t) for t in tasks]
    return "\n".join(out) + "\n"


def test_resources_become_pools_with_their_slots(front):
    plan = front.plan(_wf([{"id": "a", "resource": "db"}, {"id": "b", "resource": {"name": "gpu", "slots": 2}},
                           {"id": "c"}],
                          {"db": 1, "gpu": {"slots": 2, "max_slots": 4, "description": "two cards"}, "idle": 3}))
    assert {n: (r.pool, r.slots, r.max_slots, r.description) for n, r in plan.resources.items()} == {
        "db": ("iflow_db", 1, None, None), "gpu": ("iflow_gpu", 2, 4, "two cards"), "idle": ("iflow_idle", 3, None, None)}
    assert [(t.task_id, t.resource, t.pool, t.pool_slots) for t in plan.tasks] == [
        ("a", "db", "iflow_db", 1), ("b", "gpu", "iflow_gpu", 2), ("c", None, None, 1)]
    assert plan.conflicts == ()


def test_two_concurrent_tasks_on_a_one_slot_resource_conflict_higher_weight_first(front):
    plan = front.plan(_wf([{"id": "low", "resource": "db", "priority": "low"},
                           {"id": "high", "resource": "db", "priority": "high"}], {"db": 1}))
    assert plan.conflicts == (Conflict("db", "high", "low", "higher priority weight first"),)


def test_dependent_tasks_never_conflict_even_transitively(front):
    plan = front.plan(_wf([{"id": "a", "resource": "db"}, {"id": "b", "dependencies": ["a"]},
                           {"id": "c", "resource": "db", "dependencies": ["b"]}], {"db": 1}))
    assert plan.conflicts == ()


def test_enough_slots_means_no_conflict(front):
    plan = front.plan(_wf([{"id": "a", "resource": "db"}, {"id": "b", "resource": "db"}], {"db": 2}))
    assert plan.conflicts == ()


def test_multi_slot_uses_exceed_capacity(front):
    plan = front.plan(_wf([{"id": "a", "resource": {"name": "gpu", "slots": 2}},
                           {"id": "b", "resource": {"name": "gpu", "slots": 1}},
                           {"id": "c", "resource": {"name": "gpu", "slots": 1}}], {"gpu": 2}))
    pairs = {(c.first, c.second) if c.first < c.second else (c.second, c.first) for c in plan.conflicts}
    assert pairs == {("a", "b"), ("a", "c")}  # b + c fit in two slots
    assert all(c.resource == "gpu" for c in plan.conflicts)


def test_different_resources_do_not_conflict(front):
    plan = front.plan(_wf([{"id": "a", "resource": "db"}, {"id": "b", "resource": "gpu"}, {"id": "c"}],
                          {"db": 1, "gpu": 1}))
    assert plan.conflicts == ()


def test_longer_critical_path_goes_first_within_a_level(front):
    plan = front.plan(_wf([{"id": "short", "resource": "db"}, {"id": "long", "resource": "db"},
                           {"id": "after", "dependencies": ["long"]}], {"db": 1}))
    assert plan.conflicts == (Conflict("db", "long", "short", "higher priority weight first"),)


@pytest.mark.parametrize("rule,reason", [("priority", "same weight: either may go first"),
                                         ("timestamp", "same weight: whichever is queued first")])
def test_equal_weights_say_how_the_tie_is_resolved(front, rule, reason):
    plan = front.plan(_wf([{"id": "a", "resource": "db"}, {"id": "b", "resource": "db"}], {"db": 1},
                          rule=rule, mode="basic"))
    assert plan.conflicts == (Conflict("db", "a", "b", reason),)


def test_random_resolution_orders_by_the_seeded_shuffle(front):
    plan = front.plan(_wf([{"id": f"t{i}", "resource": "db"} for i in range(6)], {"db": 1}, rule="random",
                          mode="basic"))
    weight = {t.task_id: t.priority_weight for t in plan.tasks}
    assert len(plan.conflicts) == 15  # every pair of six
    for c in plan.conflicts:
        assert weight[c.first] >= weight[c.second]


def test_conflicts_are_listed_up_to_a_cap_with_a_note():
    n = 25  # 300 pairs
    order = [f"t{i}" for i in range(n)]
    found, notes = conflicts.detect(order, {t: [] for t in order}, {t: "db" for t in order}, {t: 1 for t in order},
                                    {"db": 1}, {t: 1 for t in order}, "priority")
    assert len(found) == conflicts.MAX_REPORTED_PER_RESOURCE
    assert notes == [f"resource db: 300 contending pairs, first {conflicts.MAX_REPORTED_PER_RESOURCE} listed"]


def test_ancestor_bits_match_transitive_closure():
    order = ["a", "b", "c", "d", "e"]
    upstream = {"a": [], "b": ["a"], "c": ["b"], "d": [], "e": ["c", "d"]}
    bits = conflicts.ancestors_bits(order, upstream)
    decoded = {t: {order[i] for i in range(len(order)) if bits[t] >> i & 1} for t in order}
    assert decoded == {"a": set(), "b": {"a"}, "c": {"a", "b"}, "d": set(), "e": {"a", "b", "c", "d"}}


def test_unknown_resource_is_an_error_with_a_suggestion(front):
    text = "resources: {database: 1}\n" + front.tasks_yaml("{id: a, resource: databse}", "{id: b, resource: zzz}")
    err = front.error(text)
    assert {(p.key_path, p.line, p.column, p.code, p.expected) for p in err.problems} == {
        ("workflow.tasks[0].resource", 5, 15, "unknown_resource", "did you mean 'database'?"),
        ("workflow.tasks[1].resource", 6, 15, "unknown_resource",
         "declare it under `resources:` in this file or in an iflow.defaults.yaml"),
    }


def test_using_more_slots_than_declared_is_an_error(front):
    text = "resources: {gpu: 2}\n" + front.tasks_yaml("{id: a, resource: {name: gpu, slots: 3}}")
    err = front.error(text)
    assert {(p.key_path, p.line, p.column, p.code, p.expected) for p in err.problems} == {
        ("workflow.tasks[0].resource", 5, 15, "resource_slots", "at most 2")}


def test_max_slots_below_slots_is_an_error(front):
    text = "resources:\n  gpu: {slots: 3, max_slots: 2}\n" + front.tasks_yaml("{id: a}")
    assert front.problems(text) == {("resources.gpu.max_slots", 2, 19, "invalid")}


@pytest.mark.parametrize("decl,path,code", [
    ("0", "resources.db.slots", "greater_than_equal"),
    ("-1", "resources.db.slots", "greater_than_equal"),
    ("{slot: 1}", "resources.db.slots", "missing"),
    ("{slot: 1}", "resources.db.slot", "unknown_key"),
    ("two", "resources.db", "model_type"),
])
def test_bad_resource_declarations(front, decl, path, code):
    text = f"resources:\n  db: {decl}\n" + front.tasks_yaml("{id: a}")
    probs = front.problems(text)
    assert (path, code) in {(p, c) for p, _, _, c in probs}
    assert all(line == 2 for _, line, _, _ in probs)
