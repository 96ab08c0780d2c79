"""SPEC §3 Priority: names -> levels, integer ranges, absolute weights and their tie-breaks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from iflow_airflow.compiler import compile_document
from iflow_airflow.errors import WorkflowFileError
from iflow_airflow.plan import priorities
from iflow_airflow.schema.models import PRIORITY_NAMES
from iflow_airflow.settings import IflowSettings
from iflow_airflow.source.reader import parse

SETTINGS = IflowSettings(allowed_modules=("iflow_airflow.examples",))


def _plan_from_text(text: str):
    return compile_document(parse("mem.yaml", text), [], SETTINGS)


def _workflow(tasks: list[dict], *, levels: int = 5, mode: str = "intelligent", rule: str = "priority",
              name: str = "wf") -> str:
    out = [f"orchestration: {{mode: {mode}}}",
           f"scheduling: {{priority_levels: {levels}}}",
           f"coordination: {{conflict_resolution: {rule}}}",
           "workflow:", f"  name: {name}", "  tasks:"]
    for t in tasks:
        out.append("    - " + json.dumps(t))
    return "\n".join(out) + "\n"


# --- names and integers -> levels -------------------------------------------------------------

def test_five_levels_map_names_critical_to_lowest(front):
    plan = front.plan(_workflow([{"id": n, "priority": n} for n in PRIORITY_NAMES]))
    assert {t.task_id: (t.level, t.level_name) for t in plan.tasks} == {
        "critical": (5, "critical"), "high": (4, "high"), "medium": (3, "medium"), "low": (2, "low"),
        "lowest": (1, "lowest")}


@pytest.mark.parametrize("levels", range(1, 101))
def test_names_span_every_level_count_monotonically(levels):
    got = [priorities.level_of_name(n, levels) for n in PRIORITY_NAMES]
    assert got[0] == levels and got[-1] == 1
    assert got == sorted(got, reverse=True)
    assert all(1 <= g <= levels for g in got)
    if levels >= 5:  # enough levels: five distinct names give five distinct levels
        assert len(set(got)) == 5


def test_names_on_ten_levels(front):
    plan = front.plan(_workflow([{"id": n, "priority": n} for n in PRIORITY_NAMES], levels=10))
    levels = [plan.task(n).level for n in PRIORITY_NAMES]
    assert levels[0] == 10 and levels[-1] == 1 and levels == sorted(levels, reverse=True)
    assert len(set(levels)) == 5


def test_default_priority_is_medium(front):
    plan = front.plan(_workflow([{"id": "a"}]))
    assert (plan.task("a").level, plan.task("a").level_name) == (3, "medium")


def test_integers_one_to_n_are_levels_higher_is_more_urgent(front):
    plan = front.plan(_workflow([{"id": f"t{i}", "priority": i} for i in range(1, 8)], levels=7))
    assert [plan.task(f"t{i}").level for i in range(1, 8)] == list(range(1, 8))
    weights = [plan.task(f"t{i}").priority_weight for i in range(1, 8)]
    assert weights == sorted(weights) and len(set(weights)) == 7


def test_integer_as_string_is_a_level(front):
    plan = front.plan(_workflow([{"id": "a", "priority": "2"}]))
    assert (plan.task("a").level, plan.task("a").level_name) == (2, "2")


@pytest.mark.parametrize("value,levels", [(0, 5), (6, 5), (-1, 5), (4, 3), (2, 1), (101, 100)])
def test_integer_out_of_range_is_an_error_at_the_priority(front, value, levels):
    text = _workflow([{"id": "a"}, {"id": "b", "priority": value}], levels=levels)
    err = front.error(text)
    assert {(p.key_path, p.line, p.column, p.code) for p in err.problems} == {
        ("workflow.tasks[1].priority", 8, 19, "priority")}
    assert f"priority {value} is outside 1..{levels}" in err.problems[0].message
    assert err.problems[0].expected.startswith(f"1..{levels} or one of critical")


@pytest.mark.parametrize("value", ['"urgent"', '"critcal"', "2.5", "true", "[1]"])
def test_priority_of_wrong_kind_is_an_error(front, value):
    text = front.tasks_yaml("{id: a}", "{id: b, priority: " + value + "}")
    probs = front.problems(text)
    assert len(probs) == 1
    (path, line, col, code), = probs
    assert (path, line) == ("workflow.tasks[1].priority", 5)


def test_unknown_priority_name_lists_the_names(front):
    err = front.error(front.tasks_yaml("{id: a, priority: critcal}"))
    assert "critical, high, medium, low, lowest" in err.problems[0].message


# --- weights ---------------------------------------------------------------------------------

def test_higher_level_outweighs_any_critical_path_directly():
    top_of_low = priorities.weight(1, critical_path=10**9, mode="advanced", conflict_resolution="random",
                                   dag_id="d" * 200, task_id="t" * 200)
    bottom_of_high = priorities.weight(2, critical_path=1, mode="basic", conflict_resolution="priority",
                                       dag_id="x", task_id="y")
    assert top_of_low < bottom_of_high
    for level in (1, 5, 100):
        for mode in ("basic", "intelligent", "advanced"):
            for rule in ("priority", "timestamp", "random"):
                for cp in (1, 2, priorities.CRITICAL_PATH_CAP, 10**6):
                    w = priorities.weight(level, critical_path=cp, mode=mode, conflict_resolution=rule,
                                          dag_id="dag", task_id=f"t{cp}")
                    assert level * priorities.LEVEL_SPAN <= w < (level + 1) * priorities.LEVEL_SPAN


def test_levels_compare_across_workflows(front):
    """A level means the same weight band in every workflow, whatever else the workflow sets."""
    a = front.plan(_workflow([{"id": "x", "priority": 3}], levels=10, mode="advanced", rule="random",
                             name="a"))
    b = front.plan(_workflow([{"id": "y", "priority": 3}], levels=3, mode="basic", name="b"))
    c = front.plan(_workflow([{"id": "z", "priority": 4}], levels=4, mode="basic", name="c"))
    for w in (a.task("x").priority_weight, b.task("y").priority_weight):
        assert 3 * priorities.LEVEL_SPAN <= w < 4 * priorities.LEVEL_SPAN
    assert c.task("z").priority_weight > max(a.task("x").priority_weight, b.task("y").priority_weight)


@st.composite
def _random_dags(draw):
    n = draw(st.integers(1, 14))
    levels = draw(st.integers(1, 10))
    mode = draw(st.sampled_from(["basic", "intelligent", "advanced"]))
    rule = draw(st.sampled_from(["priority", "timestamp", "random"]))
    tasks = []
    for j in range(n):
        deps = [f"t{i}" for i in range(j) if draw(st.booleans())]
        prio = draw(st.one_of(st.integers(1, levels), st.sampled_from(PRIORITY_NAMES)))
        tasks.append({"id": f"t{j}", "dependencies": deps, "priority": prio})
    return tasks, levels, mode, rule


@hsettings(max_examples=150, deadline=None)
@given(_random_dags())
def test_property_a_higher_level_always_outweighs_a_lower_one(case):
    tasks, levels, mode, rule = case
    plan = _plan_from_text(_workflow(tasks, levels=levels, mode=mode, rule=rule))
    by_level: dict[int, list[int]] = {}
    for t in plan.tasks:
        by_level.setdefault(t.level, []).append(t.priority_weight)
    present = sorted(by_level)
    for lo, hi in zip(present, present[1:]):
        assert min(by_level[hi]) > max(by_level[lo])
    # and within a level, under intelligent/advanced, a longer critical path never weighs less
    if mode != "basic":
        for a in plan.tasks:
            for b in plan.tasks:
                if a.level == b.level and a.critical_path > b.critical_path:
                    assert a.priority_weight > b.priority_weight
    else:
        if rule != "random":
            for _level, ws in by_level.items():
                assert len(set(ws)) == 1


DIAMOND = [
    {"id": "start"},
    {"id": "long1", "dependencies": ["start"]},
    {"id": "long2", "dependencies": ["long1"]},
    {"id": "short", "dependencies": ["start"]},
    {"id": "end", "dependencies": ["long2", "short"]},
]


@pytest.mark.parametrize("mode", ["intelligent", "advanced"])
def test_longer_critical_path_wins_ties_within_a_level(front, mode):
    plan = front.plan(_workflow(DIAMOND, mode=mode))
    assert {t.task_id: t.critical_path for t in plan.tasks} == {
        "start": 4, "long1": 3, "long2": 2, "short": 2, "end": 1}
    w = {t.task_id: t.priority_weight for t in plan.tasks}
    assert w["start"] > w["long1"] > w["long2"] == w["short"] > w["end"]
    assert w["long1"] - w["short"] == priorities.RANDOM_BUCKETS  # one step of critical path


def test_basic_mode_ignores_the_critical_path(front):
    plan = front.plan(_workflow(DIAMOND, mode="basic"))
    assert {t.priority_weight for t in plan.tasks} == {3 * priorities.LEVEL_SPAN}


def test_timestamp_adds_no_tie_break(front):
    plan = front.plan(_workflow(DIAMOND, mode="basic", rule="timestamp"))
    assert {t.priority_weight for t in plan.tasks} == {3 * priorities.LEVEL_SPAN}


def test_level_beats_critical_path_in_a_plan(front):
    tasks = [{"id": f"c{i}", "dependencies": [f"c{i - 1}"] if i else [], "priority": "low"} for i in range(30)]
    tasks.append({"id": "lonely", "priority": "medium"})
    plan = front.plan(_workflow(tasks, mode="advanced", rule="random"))
    assert plan.task("c0").critical_path == 30
    assert plan.task("lonely").priority_weight > plan.task("c0").priority_weight


# --- random: a fixed, seeded shuffle ---------------------------------------------------------

RANDOM_TASKS = [{"id": f"task_{i}"} for i in range(20)]


def test_random_is_a_shuffle_not_a_constant(front):
    plan = front.plan(_workflow(RANDOM_TASKS, mode="basic", rule="random"))
    weights = [t.priority_weight for t in plan.tasks]
    assert len(set(weights)) > 10  # 20 tasks over 100 buckets
    assert all(3 * priorities.LEVEL_SPAN <= w < 3 * priorities.LEVEL_SPAN + priorities.RANDOM_BUCKETS
               for w in weights)
    assert weights != sorted(weights) and weights != sorted(weights, reverse=True)


def test_random_is_stable_across_calls(front):
    one = [t.priority_weight for t in front.plan(_workflow(RANDOM_TASKS, mode="basic", rule="random")).tasks]
    two = [t.priority_weight for t in _plan_from_text(_workflow(RANDOM_TASKS, mode="basic", rule="random")).tasks]
    assert one == two


def test_random_depends_on_the_workflow_too():
    a = [priorities.shuffle_rank("dag_a", f"task_{i}") for i in range(20)]
    b = [priorities.shuffle_rank("dag_b", f"task_{i}") for i in range(20)]
    assert a != b


@pytest.mark.parametrize("hashseed", ["0", "12345"])
def test_random_is_stable_across_processes(hashseed):
    here = [t.priority_weight for t in _plan_from_text(_workflow(RANDOM_TASKS, mode="basic", rule="random")).tasks]
    code = (
        "import json, sys\n"
        "from iflow_airflow.compiler import compile_document\n"
        "from iflow_airflow.settings import IflowSettings\n"
        "from iflow_airflow.source.reader import parse\n"
        "plan = compile_document(parse('mem.yaml', sys.stdin.read()), [], IflowSettings())\n"
        "print(json.dumps([t.priority_weight for t in plan.tasks]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    out = subprocess.run([sys.executable, "-c", code], input=_workflow(RANDOM_TASKS, mode="basic", rule="random"),
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    assert json.loads(out.stdout) == here


def test_shuffle_rank_known_value():
    """Pin the seeded shuffle: a change would silently reorder every random-resolved workflow."""
    import hashlib

    digest = hashlib.sha256(b"wf\x00task_0").digest()
    assert priorities.shuffle_rank("wf", "task_0") == int.from_bytes(digest[:4], "big") % 100


def test_random_with_intelligent_only_breaks_critical_path_ties(front):
    plan = front.plan(_workflow(DIAMOND, mode="intelligent", rule="random"))
    w = {t.task_id: t.priority_weight for t in plan.tasks}
    assert w["start"] > w["long1"] > max(w["long2"], w["short"])
    assert min(w["long2"], w["short"]) > w["end"]
    # the shuffle stays inside one critical-path step
    assert abs(w["long2"] - w["short"]) < priorities.RANDOM_BUCKETS


def test_plan_errors_are_workflow_file_errors():
    with pytest.raises(WorkflowFileError) as exc:
        _plan_from_text(_workflow([{"id": "a", "priority": 9}]))
    assert exc.value.problems[0].code == "priority"
