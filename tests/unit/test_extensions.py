"""Extension points (iflow_airflow/extensions.py): a strategy, a resolver and a monitor registered by entry points.

``tests/extension_pkg`` is a distribution folder (``iflow_test_ext-0.1.dist-info``
with ``entry_points.txt``) that ``importlib.metadata`` finds once it is on
``sys.path``; nothing is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from iflow_airflow import extensions
from iflow_airflow.build import registry
from iflow_airflow.runtime import monitor
from iflow_airflow.schema.models import json_schema
from iflow_airflow.settings import IflowSettings

EXT_DIR = Path(__file__).resolve().parents[1] / "extension_pkg"
ALLOWED = IflowSettings(allowed_modules=("iflow_airflow.examples", "iflow_test_ext"))


@pytest.fixture(autouse=True)
def extension_pkg(monkeypatch):
    monkeypatch.syspath_prepend(str(EXT_DIR))
    extensions.clear_cache()
    yield
    extensions.clear_cache()


def test_registered_names_exclude_builtins():
    assert extensions.known_names("strategy") == [
        "round_robin", "priority_based", "load_balanced", "test_cost_first", "test_not_a_strategy",
        "test_out_of_band"]
    assert extensions.known_names("resolver") == ["priority", "timestamp", "random", "test_reverse_alphabetical"]
    assert extensions.known_names("monitor") == ["test_private_monitor", "test_recorder"]


def test_custom_strategy_chooses_tie_breaks_and_queues_within_the_level_bands(front):
    plan = front.plan("""
        scheduling: {strategy: test_cost_first, queues: [fast, slow]}
        workflow:
          name: wf
          tasks:
            - {id: a, priority: high, cost: 2, command: "true"}
            - {id: b, priority: high, cost: 7, command: "true"}
            - {id: c, priority: low, cost: 999, queue: pinned, dependencies: [a], command: "true"}
            - {id: d, priority: low, cost: 1, command: "true"}
        """, settings=ALLOWED)
    got = {t.task_id: (t.priority_weight, t.queue) for t in plan.tasks}
    assert got == {
        "a": (4_002_000, "fast"),
        "b": (4_007_000, "slow"),
        "c": (2_999_000, "pinned"),  # the task's own queue wins; a lower level stays below every high task
        "d": (2_001_000, "fast"),
    }
    assert plan.settings.strategy == "test_cost_first"


def test_custom_resolver_orders_tied_tasks_and_the_conflicts(front):
    text = """
        coordination: {conflict_resolution: test_reverse_alphabetical}
        resources: {db: 1}
        workflow:
          name: wf
          tasks:
            - {id: x, resource: db, command: "true"}
            - {id: y, command: "true"}
            - {id: z, resource: db, command: "true"}
            - {id: w, priority: high, resource: db, command: "true"}
        """
    plan = front.plan(text, settings=ALLOWED)
    weights = {t.task_id: t.priority_weight for t in plan.tasks}
    # medium = level 3, critical path 1 -> 3,000,100 plus the vote: z 99, y 98, x 97 (w has a level of its own)
    assert weights == {"x": 3_000_197, "y": 3_000_198, "z": 3_000_199, "w": 4_000_199}
    assert [(c.first, c.second) for c in plan.conflicts] == [("z", "x"), ("w", "x"), ("w", "z")]
    # the same file with the built-in rule: all medium tasks tie
    builtin = front.plan(text.replace("test_reverse_alphabetical", "priority"), settings=ALLOWED)
    assert {t.task_id: t.priority_weight for t in builtin.tasks} == {
        "x": 3_000_100, "y": 3_000_100, "z": 3_000_100, "w": 4_000_100}


def test_unknown_names_are_located_and_list_the_registered_ones(front):
    err = front.error("""
        scheduling: {strategy: test_cost_frist}
        coordination: {conflict_resolution: coin_flip}
        workflow:
          name: wf
          monitors: [test_recorder, nope]
          tasks:
            - {id: a}
        """, settings=ALLOWED)
    got = {(p.key_path, p.line, p.column, p.code): p.expected for p in err.problems}
    assert got == {
        ("scheduling.strategy", 1, 14, "invalid_choice"):
            "did you mean 'test_cost_first'? 'round_robin', 'priority_based' or 'load_balanced', or a strategy "
            "registered under the entry point group 'iflow_airflow.strategies' (registered: test_cost_first, "
            "test_not_a_strategy, test_out_of_band)",
        ("coordination.conflict_resolution", 2, 16, "invalid_choice"):
            "'priority', 'timestamp' or 'random', or a resolver registered under the entry point group "
            "'iflow_airflow.resolvers' (registered: test_reverse_alphabetical)",
        ("workflow.monitors[1]", 5, 29, "invalid_choice"):
            "a monitor registered under the entry point group 'iflow_airflow.monitors' "
            "(registered: test_private_monitor, test_recorder)",
    }


def test_modules_outside_allowed_modules_are_never_imported(front):
    err = front.error("""
        scheduling: {strategy: test_cost_first}
        workflow:
          name: wf
          monitors: [test_private_monitor]
          tasks:
            - {id: a}
        """, settings=IflowSettings(allowed_modules=("iflow_airflow.examples",)))
    got = {(p.key_path, p.code): p.message for p in err.problems}
    assert set(got) == {("scheduling.strategy", "extension"), ("workflow.monitors[0]", "extension")}
    assert got[("workflow.monitors[0]", "extension")].startswith(
        "monitor 'test_private_monitor' (iflow_test_ext_private:Recorder): module 'iflow_test_ext_private' is "
        "not in the allowed modules ([iflow] allowed_modules = iflow_airflow.examples;")
    assert "iflow_test_ext_private" not in sys.modules


def test_broken_strategies_are_located_errors(front):
    wf = "scheduling: {{strategy: {}}}\nworkflow: {{name: wf, tasks: [{{id: a}}, {{id: b}}]}}\n"
    err = front.error(wf.format("test_out_of_band"), settings=ALLOWED)
    assert [(p.key_path, p.code, p.message, p.expected) for p in err.problems] == [
        ("scheduling.strategy", "extension", f"strategy 'test_out_of_band' gave task {t!r} the tie-break 1000000",
         "an integer 0..999,999 for every task (a higher level must always outweigh a lower one)")
        for t in ("a", "b")]
    err = front.error(wf.format("test_not_a_strategy"), settings=ALLOWED)
    assert [p.message for p in err.problems] == [
        "strategy 'test_not_a_strategy': 'iflow_test_ext:NotAStrategy' is not a "
        "iflow_airflow.extensions.SchedulingStrategy"]


def test_monitor_receives_the_events_of_its_workflow(front, monkeypatch):
    import iflow_test_ext

    monkeypatch.setattr(extensions, "_monitor_settings", [ALLOWED])  # [iflow] settings of this "process"

    plan = front.plan("workflow: {name: watched, monitors: [test_recorder], tasks: [{id: a}]}\n", settings=ALLOWED)
    assert plan.monitors == ("test_recorder",)
    other = front.plan("workflow: {name: unwatched, tasks: [{id: a}]}\n", name="other.yaml", settings=ALLOWED)
    registry.register(plan)
    registry.register(other)
    iflow_test_ext.EVENTS.clear()
    try:
        monitor.log_event("task_success", workflow="watched", run_id="r1", task="a", try_number=1)
        monitor.log_event("task_success", workflow="unwatched", run_id="r2", task="a", try_number=1)
        monitor.log_event("run_failed", workflow="watched", run_id="r1", failed_tasks="a")
    finally:
        registry.clear()
    assert iflow_test_ext.EVENTS == [
        ("task_success", {"workflow": "watched", "run_id": "r1", "task": "a", "try_number": 1}),
        ("run_failed", {"workflow": "watched", "run_id": "r1", "failed_tasks": "a"}),
    ]


def test_schema_offers_builtins_as_enum_plus_a_free_name():
    defs = json_schema()["$defs"]
    name = {"maxLength": 200, "minLength": 1, "pattern": "^[A-Za-z0-9_.-]+$", "title": "registered name",
            "type": "string"}
    assert defs["Scheduling"]["properties"]["strategy"]["anyOf"] == [
        {"enum": ["round_robin", "priority_based", "load_balanced"], "type": "string"}, name]
    assert defs["Coordination"]["properties"]["conflict_resolution"]["anyOf"] == [
        {"enum": ["priority", "timestamp", "random"], "type": "string"}, name]
    assert defs["Workflow"]["properties"]["monitors"]["items"] == name
