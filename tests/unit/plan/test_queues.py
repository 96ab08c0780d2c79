"""SPEC §3 Strategies: round_robin deals in turn, load_balanced by cost, priority_based keeps the task's queue."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from iflow_airflow.plan import queues


def _wf(strategy: str, tasks: list[dict], qs: list[str]) -> str:
    out = [f"scheduling: {{strategy: {strategy}, queues: {json.dumps(qs)}}}", "workflow:", "  name: q", "  tasks:"]
    out += ["    - " + json.dumps(t) for t in tasks]
    return "\n".join(out) + "\n"


def test_round_robin_deals_in_turn_in_topological_order(front):
    tasks = [{"id": f"t{i}"} for i in range(7)]
    plan = front.plan(_wf("round_robin", tasks, ["a", "b", "c"]))
    assert [(t.task_id, t.queue) for t in plan.tasks] == [
        ("t0", "a"), ("t1", "b"), ("t2", "c"), ("t3", "a"), ("t4", "b"), ("t5", "c"), ("t6", "a")]


def test_round_robin_follows_dependencies_not_file_order(front):
    tasks = [{"id": "late", "dependencies": ["early"]}, {"id": "early"}, {"id": "other"}]
    plan = front.plan(_wf("round_robin", tasks, ["a", "b"]))
    assert [t.task_id for t in plan.tasks] == ["early", "other", "late"]
    assert {t.task_id: t.queue for t in plan.tasks} == {"early": "a", "other": "b", "late": "a"}


def test_round_robin_ignores_cost_and_keeps_pinned_queues(front):
    tasks = [{"id": "t0", "cost": 100}, {"id": "pin", "queue": "special"}, {"id": "t1"}, {"id": "t2"}]
    plan = front.plan(_wf("round_robin", tasks, ["a", "b"]))
    assert {t.task_id: t.queue for t in plan.tasks} == {"t0": "a", "pin": "special", "t1": "b", "t2": "a"}


def test_round_robin_weights_do_not_depend_on_the_queue(front):
    tasks = [{"id": f"t{i}"} for i in range(4)]
    plan = front.plan(_wf("round_robin", tasks, ["a", "b"]))
    assert len({t.priority_weight for t in plan.tasks}) == 1


def test_priority_based_keeps_the_task_queue(front):
    tasks = [{"id": "a", "queue": "gpu_workers"}, {"id": "b"}, {"id": "c", "queue": "default"}]
    plan = front.plan(_wf("priority_based", tasks, ["default", "other"]))
    assert {t.task_id: t.queue for t in plan.tasks} == {"a": "gpu_workers", "b": None, "c": "default"}


def test_load_balanced_exact_assignment(front):
    tasks = [{"id": "big", "cost": 5}, {"id": "m1", "cost": 3}, {"id": "m2", "cost": 3},
             {"id": "s1", "cost": 2}, {"id": "s2", "cost": 2}, {"id": "one"}]
    plan = front.plan(_wf("load_balanced", tasks, ["q1", "q2"]))
    got = {t.task_id: t.queue for t in plan.tasks}
    # LPT: big->q1(5), m1->q2(3), m2->q2(6), s1->q1(7), s2->q2(8), one->q1(8)
    assert got == {"big": "q1", "m1": "q2", "m2": "q2", "s1": "q1", "s2": "q2", "one": "q1"}
    loads = queues.queue_loads(got, {t.task_id: t.cost for t in plan.tasks})
    assert loads == {"q1": 8.0, "q2": 8.0}
    assert plan.task("one").cost == 1.0  # default cost


def test_load_balanced_counts_pinned_tasks(front):
    tasks = [{"id": "pinned", "queue": "q1", "cost": 10}, {"id": "a", "cost": 4}, {"id": "b", "cost": 4}]
    plan = front.plan(_wf("load_balanced", tasks, ["q1", "q2"]))
    assert {t.task_id: t.queue for t in plan.tasks} == {"pinned": "q1", "a": "q2", "b": "q2"}


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.1, 100, allow_nan=False), min_size=1, max_size=40), st.integers(1, 6))
def test_property_load_balanced_totals_differ_by_at_most_the_largest_cost(costs, nq):
    order = [f"t{i}" for i in range(len(costs))]
    qs = [f"q{i}" for i in range(nq)]
    cost = dict(zip(order, costs))
    got = queues.assign_queues("load_balanced", order, qs, {}, cost)
    assert set(got) == set(order) and set(got.values()) <= set(qs)
    loads = {q: 0.0 for q in qs}
    for t, q in got.items():
        loads[q] += cost[t]
    assert max(loads.values()) - min(loads.values()) <= max(costs) + 1e-9


@hsettings(max_examples=100, deadline=None)
@given(st.integers(1, 50), st.integers(1, 7))
def test_property_round_robin_counts_differ_by_at_most_one(n, nq):
    order = [f"t{i}" for i in range(n)]
    qs = [f"q{i}" for i in range(nq)]
    got = queues.assign_queues("round_robin", order, qs, {}, {t: 1.0 for t in order})
    counts = [list(got.values()).count(q) for q in qs]
    assert max(counts) - min(counts) <= 1
    assert [got[t] for t in order] == [qs[i % nq] for i in range(n)]


def test_load_balanced_in_a_plan_with_real_costs(front):
    costs = [7, 1, 1, 1, 3, 3, 2, 5, 1, 4]
    tasks = [{"id": f"t{i}", "cost": c} for i, c in enumerate(costs)]
    plan = front.plan(_wf("load_balanced", tasks, ["a", "b", "c"]))
    loads = queues.queue_loads({t.task_id: t.queue for t in plan.tasks}, {t.task_id: t.cost for t in plan.tasks})
    assert set(loads) == {"a", "b", "c"}
    assert sum(loads.values()) == sum(costs)
    assert max(loads.values()) - min(loads.values()) <= max(costs)
    assert max(loads.values()) - min(loads.values()) <= 1  # 28 over three queues: 10/9/9


def test_bad_cost_and_queue_values_are_errors(front):
    text = "\n".join([
        "scheduling: {strategy: load_balanced, queues: [a, 'b c']}",
        "workflow:",
        "  name: q",
        "  tasks:",
        "    - {id: x, cost: 0}",
        "    - {id: y, cost: -2, queue: 'no spaces'}",
    ]) + "\n"
    assert front.problems(text) == {
        ("scheduling.queues[1]", 1, 51, "invalid_format"),
        ("workflow.tasks[0].cost", 5, 15, "greater_than"),
        ("workflow.tasks[1].cost", 6, 15, "greater_than"),
        ("workflow.tasks[1].queue", 6, 25, "invalid_format"),
    }


def test_unknown_strategy_lists_the_choices(front):
    err = front.error("scheduling: {strategy: fastest}\n" + front.tasks_yaml("{id: a}"))
    (p,) = err.problems
    assert (p.key_path, p.line, p.column, p.code) == ("scheduling.strategy", 1, 14, "invalid_choice")
    assert p.expected == ("'round_robin', 'priority_based' or 'load_balanced', or a strategy registered under "
                          "the entry point group 'iflow_airflow.strategies' (registered: none)")
