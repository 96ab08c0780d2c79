"""The plan layer (make_plan via compile_file): every SPEC §3 rule and its errors."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from iflow_airflow.compiler import compile_file
from iflow_airflow.plan.ir import (
    CallableAction,
    CheckpointAction,
    CommandAction,
    PromptAction,
    WaitAction,
)
from iflow_airflow.settings import IflowSettings

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "dags" / "full_stack_development.yaml"


def ids_yaml(*tasks: str, head: str = "") -> str:
    return head + "workflow:\n  name: p\n  tasks:\n" + "".join(f"    - {t}\n" for t in tasks)


# --- the seed's example --------------------------------------------------------------------

def test_seed_example_plans_as_it_is(front):
    c = compile_file(EXAMPLE, settings=front.SETTINGS)
    assert c is not None and c.error is None, c.error and c.error.render()
    plan = c.plan
    assert plan.dag_id == "full_stack_development"
    assert plan.description == "完整的全栈应用开发流程"
    assert [t.task_id for t in plan.tasks] == [
        "analyze_requirements", "design_architecture", "implement_frontend", "implement_backend",
        "integrate_systems", "test_system"]
    assert {t.task_id: t.upstream for t in plan.tasks} == {
        "analyze_requirements": (), "design_architecture": ("analyze_requirements",),
        "implement_frontend": ("design_architecture",), "implement_backend": ("design_architecture",),
        "integrate_systems": ("implement_frontend", "implement_backend"), "test_system": ("integrate_systems",)}
    assert {t.task_id: (t.level, t.level_name, t.critical_path) for t in plan.tasks} == {
        "analyze_requirements": (4, "high", 5), "design_architecture": (4, "high", 4),
        "implement_frontend": (3, "medium", 3), "implement_backend": (3, "medium", 3),
        "integrate_systems": (4, "high", 2), "test_system": (4, "high", 1)}
    assert all((t.retries, t.timeout, t.retry_delay, t.exponential_backoff) == (3, 300.0, 30.0, True)
               for t in plan.tasks)
    # dags/iflow.defaults.yaml gives each of its task types an agent prompt (the file itself is unchanged)
    assert all(isinstance(t.action, PromptAction) for t in plan.tasks)
    prompts = {t.task_id: t.action.prompt for t in plan.tasks}
    assert prompts["implement_frontend"] == prompts["implement_backend"] and "$IFLOW_TASK_ID" in prompts["implement_backend"]
    assert len(set(prompts.values())) == 5 and not plan.notes
    assert plan.max_active_tasks == 10 and plan.enabled is True
    assert plan.settings.sync_mode == "event_driven" and plan.settings.strategy == "priority_based"
    assert [t.line for t in plan.tasks] == [22, 26, 30, 34, 38, 42]


def test_seed_example_alone_is_checkpoints_and_validate_says_its_types_match_nothing(front, tmp_path):
    (tmp_path / EXAMPLE.name).write_bytes(EXAMPLE.read_bytes())
    plan = compile_file(tmp_path / EXAMPLE.name, settings=front.SETTINGS).plan
    assert all(isinstance(t.action, CheckpointAction) for t in plan.tasks)
    typed = [n for n in plan.notes if n.startswith("type ")]
    assert typed[0] == ("type 'analysis' matches no task_types entry (known: none declared), "
                        "so analyze_requirements gets no template")
    assert typed[2].endswith("so implement_frontend, implement_backend get no template")
    assert len(typed) == 5


# --- ids and dependencies --------------------------------------------------------------------

def test_dependencies_become_upstream_in_topological_order(front):
    plan = front.plan(ids_yaml("{id: c, dependencies: [a, b]}", "{id: b, dependencies: [a]}", "{id: a}"))
    assert [(t.task_id, t.upstream) for t in plan.tasks] == [("a", ()), ("b", ("a",)), ("c", ("a", "b"))]


def test_unknown_dependency_with_suggestion(front):
    err = front.error(ids_yaml("{id: analyze}", "{id: design, dependencies: [analyse]}",
                               "{id: z, dependencies: [qqqq]}"))
    got = {(p.key_path, p.line, p.column, p.code, p.expected) for p in err.problems}
    assert got == {
        ("workflow.tasks[1].dependencies[0]", 5, 35, "unknown_dependency", "did you mean 'analyze'?"),
        ("workflow.tasks[2].dependencies[0]", 6, 30, "unknown_dependency", "the id of a task in this file"),
    }
    assert "unknown task id 'analyse'" in err.problems[0].message


def test_self_dependency(front):
    assert front.problems(ids_yaml("{id: a, dependencies: [a]}")) == {
        ("workflow.tasks[0].dependencies[0]", 4, 30, "self_dependency")}


def test_duplicate_dependency(front):
    assert front.problems(ids_yaml("{id: a}", "{id: b, dependencies: [a, a]}")) == {
        ("workflow.tasks[1].dependencies[1]", 5, 33, "duplicate_dependency")}


def test_duplicate_id_names_the_first(front):
    err = front.error(ids_yaml("{id: a}", "{id: b}", "{id: a}"))
    (p,) = err.problems
    assert (p.key_path, p.line, p.column, p.code) == ("workflow.tasks[2].id", 6, 8, "duplicate_id")
    assert p.message == "duplicate task id 'a' (also tasks[0])"


@pytest.mark.parametrize("tasks,cycle,index", [
    (["{id: a, dependencies: [c]}", "{id: b, dependencies: [a]}", "{id: c, dependencies: [b]}"],
     "a -> b -> c -> a", 0),
    (["{id: a, dependencies: [b]}", "{id: b, dependencies: [a]}"], "a -> b -> a", 0),
    (["{id: x}", "{id: y, dependencies: [x, w]}", "{id: v, dependencies: [y]}", "{id: w, dependencies: [v]}",
      "{id: after, dependencies: [w]}"], "y -> v -> w -> y", 1),
])
def test_cycles_are_named_task_by_task(front, tasks, cycle, index):
    err = front.error(ids_yaml(*tasks))
    (p,) = err.problems
    assert (p.key_path, p.code) == (f"workflow.tasks[{index}].dependencies", "cycle")
    assert p.message == f"dependency cycle: {cycle}"
    assert p.line == 4 + index


def test_cycle_found_when_downstream_of_it_comes_first(front):
    err = front.error(ids_yaml("{id: tail, dependencies: [b]}", "{id: a, dependencies: [b]}",
                               "{id: b, dependencies: [a]}"))
    (p,) = err.problems
    assert p.code == "cycle" and p.message in ("dependency cycle: a -> b -> a", "dependency cycle: b -> a -> b")


def test_every_dependency_problem_at_once(front):
    assert front.problems(ids_yaml(
        "{id: a, dependencies: [c]}", "{id: b, dependencies: [a]}", "{id: c, dependencies: [b]}",
        "{id: d, dependencies: [c, d, zz, a, a]}", "{id: a}")) == {
        ("workflow.tasks[0].dependencies", 4, 15, "cycle"),
        ("workflow.tasks[3].dependencies[1]", 7, 33, "self_dependency"),
        ("workflow.tasks[3].dependencies[2]", 7, 36, "unknown_dependency"),
        ("workflow.tasks[3].dependencies[4]", 7, 43, "duplicate_dependency"),
        ("workflow.tasks[4].id", 8, 8, "duplicate_id"),
    }


@pytest.mark.parametrize("task_id,ok", [("a-b.c_1", True), ("bad id", False), ("", False), ("ä", False)])
def test_task_id_pattern(front, task_id, ok):
    c = front.compile(ids_yaml(f'{{id: "{task_id}"}}'))
    assert c.ok is ok
    if not ok:
        assert {(p.key_path, p.code) for p in c.error.problems} in (
            {("workflow.tasks[0].id", "invalid_format")}, {("workflow.tasks[0].id", "string_too_short")})


def test_missing_name_and_tasks(front):
    assert front.problems("workflow:\n  description: x\n") == {
        ("workflow.name", 1, 1, "missing"), ("workflow.tasks", 1, 1, "missing")}


def test_empty_task_list(front):
    assert front.problems("workflow:\n  name: x\n  tasks: []\n") == {("workflow.tasks", 3, 3, "too_short")}


# --- retries, timeouts, templates ------------------------------------------------------------

def test_orchestration_retry_settings_reach_every_task(front):
    plan = front.plan(ids_yaml("{id: a}", head=textwrap.dedent("""\
        orchestration:
          retry_attempts: 5
          retry_delay: 12
          retry_backoff: fixed
          task_timeout: 60
          max_retry_delay: 600
        """)))
    t = plan.task("a")
    assert (t.retries, t.retry_delay, t.exponential_backoff, t.timeout, t.max_retry_delay) == (
        5, 12.0, False, 60.0, 600.0)


def test_per_task_overrides_win(front):
    plan = front.plan(ids_yaml(
        "{id: a, retries: 0, retry_delay: 0, retry_backoff: exponential, timeout: 7}",
        "{id: b, timeout: null}", "{id: c}",
        head="orchestration: {retry_attempts: 5, retry_delay: 12, retry_backoff: fixed, task_timeout: 60}\n"))
    assert {t.task_id: (t.retries, t.retry_delay, t.exponential_backoff, t.timeout) for t in plan.tasks} == {
        "a": (0, 0.0, True, 7.0), "b": (5, 12.0, False, None), "c": (5, 12.0, False, 60.0)}


def test_null_task_timeout_means_no_limit(front):
    assert front.plan(ids_yaml("{id: a}", head="orchestration: {task_timeout: null}\n")).task("a").timeout is None


@pytest.mark.parametrize("head,path,code", [
    ("orchestration: {retry_attempts: -1}\n", "orchestration.retry_attempts", "greater_than_equal"),
    ("orchestration: {retry_attempts: 101}\n", "orchestration.retry_attempts", "less_than_equal"),
    ("orchestration: {task_timeout: 0}\n", "orchestration.task_timeout", "greater_than"),
    ("orchestration: {retry_delay: -5}\n", "orchestration.retry_delay", "greater_than_equal"),
    ("orchestration: {retry_backoff: linear}\n", "orchestration.retry_backoff", "invalid_choice"),
    ("orchestration: {mode: smart}\n", "orchestration.mode", "invalid_choice"),
])
def test_orchestration_out_of_range(front, head, path, code):
    assert front.problems(ids_yaml("{id: a}", head=head)) == {(path, 1, 17, code)}


def test_task_types_are_templates_task_values_win(front):
    plan = front.plan(ids_yaml(
        "{id: a, type: build}", "{id: b, type: build, priority: low, retries: 9, env: {B: own}}",
        "{id: c, type: nothing_declared}",
        head=textwrap.dedent("""\
            resources: {farm: 2}
            task_types:
              build: {priority: critical, resource: farm, retries: 1, timeout: 9, command: "make",
                      env: {A: base, B: base}, queue: builders, trigger_rule: all_done}
            """)))
    a, b, c = plan.task("a"), plan.task("b"), plan.task("c")
    assert (a.level, a.resource, a.pool, a.retries, a.timeout, a.action, a.env, a.queue, a.trigger_rule) == (
        5, "farm", "iflow_farm", 1, 9.0, CommandAction("make"), {"A": "base", "B": "base"}, "builders", "all_done")
    assert (b.level, b.retries, b.env, b.action) == (2, 9, {"A": "base", "B": "own"}, CommandAction("make"))
    assert (c.level, c.resource, c.action, c.trigger_rule) == (3, None, CheckpointAction(), "all_success")


def test_own_action_replaces_the_template_action(front):
    plan = front.plan(ids_yaml(
        "{id: a, type: t, prompt: write docs}",
        "{id: b, type: t, callable: 'iflow_airflow.examples.callables:add', args: [1, 2]}",
        "{id: c, type: t}",
        head="task_types:\n  t: {operator: bash, command: make}\n"))
    assert plan.task("a").action == PromptAction("write docs")
    assert plan.task("b").action == CallableAction("iflow_airflow.examples.callables:add", (1, 2), {})
    assert plan.task("c").action == CommandAction("make")


def test_template_errors_are_located_in_the_template(front):
    text = "task_types:\n  build: {priorty: high, retries: -1}\n" + ids_yaml("{id: a, type: build}")
    err = front.error(text)
    assert {(p.key_path, p.line, p.column, p.code) for p in err.problems} == {
        ("task_types.build.priorty", 2, 11, "unknown_key"), ("task_types.build.retries", 2, 26, "greater_than_equal")}
    assert [p.expected for p in err.problems if p.code == "unknown_key"] == ["did you mean `priority`?"]


def test_template_priority_out_of_range_points_at_the_task(front):
    text = "scheduling: {priority_levels: 3}\ntask_types:\n  t: {priority: 5}\n" + ids_yaml("{id: a, type: t}")
    assert front.problems(text) == {("workflow.tasks[0].priority", 7, 7, "priority")}


def test_env_trigger_rule_emits_description(front):
    plan = front.plan(ids_yaml("{id: a, command: 'true', env: {X_1: v}, trigger_rule: one_failed, emits: [done, also], "
                               "description: hello}"))
    t = plan.task("a")
    assert (t.env, t.trigger_rule, t.emits, t.description) == ({"X_1": "v"}, "one_failed", ("done", "also"), "hello")


def test_bad_env_name_and_trigger_rule(front):
    assert front.problems(ids_yaml("{id: a, env: {'1BAD': v}, trigger_rule: sometimes}")) == {
        ("workflow.tasks[0].env", 4, 15, "value_error"), ("workflow.tasks[0].trigger_rule", 4, 33, "invalid_choice")}


def test_max_concurrent_tasks_caps_the_workflow(front):
    assert front.plan(ids_yaml("{id: a}", head="orchestration: {max_concurrent_tasks: 2}\n")).max_active_tasks == 2


@pytest.mark.parametrize("sync_mode,deferrable", [("synchronous", False), ("asynchronous", True),
                                                   ("event_driven", False)])
def test_coordination_reaches_tasks(front, sync_mode, deferrable):
    plan = front.plan(ids_yaml("{id: a}", head=f"coordination: {{sync_mode: {sync_mode}, "
                                               "state_persistence: false, communication_timeout: 9}\n"))
    t = plan.task("a")
    assert (t.deferrable, t.persist_result, t.wait_timeout) == (deferrable, False, 9.0)
    assert plan.settings.state_persistence is False and plan.settings.communication_timeout == 9.0


# --- actions ---------------------------------------------------------------------------------

def test_every_action_kind(front):
    plan = front.plan(ids_yaml(
        "{id: cmd, command: 'echo hi'}",
        "{id: fn, callable: 'iflow_airflow.examples.callables:add', args: [1, 2], kwargs: {}}",
        "{id: ask, prompt: 'say hi'}",
        "{id: file, wait: {file: /tmp/x}}",
        "{id: other, wait: {workflow: up, task: t, poke_interval: 2}}",
        "{id: url, wait: {url: 'https://example.com/ok'}}",
        "{id: cp, operator: checkpoint}",
        "{id: bare}",
        "{id: bash, operator: bash, command: 'echo'}",
        "{id: py, operator: python, callable: 'iflow_airflow.examples.callables:greet', kwargs: {name: x}}",
        "{id: agent, operator: agent, prompt: go}",
    ))
    got = {t.task_id: t.action for t in plan.tasks}
    assert got["cmd"] == CommandAction("echo hi")
    assert got["fn"] == CallableAction("iflow_airflow.examples.callables:add", (1, 2), {})
    assert got["ask"] == PromptAction("say hi")
    assert got["file"].file == "/tmp/x" and isinstance(got["file"], WaitAction)
    assert (got["other"].workflow, got["other"].task, got["other"].poke_interval) == ("up", "t", 2.0)
    assert got["url"].url == "https://example.com/ok"
    assert got["cp"] == CheckpointAction() and got["bare"] == CheckpointAction()
    assert got["bash"] == CommandAction("echo")
    assert got["py"] == CallableAction("iflow_airflow.examples.callables:greet", (), {"name": "x"})
    assert got["agent"] == PromptAction("go")
    assert plan.notes == ("checkpoint (no action: logs and succeeds): cp, bare",)


def test_action_errors_all_at_once(front):
    err = front.error(ids_yaml(
        "{id: a, command: echo, prompt: hi}",
        "{id: b, operator: bash}",
        "{id: c, operator: checkpoint, command: x}",
        "{id: d, operator: nosuch}",
        "{id: e, command: echo, args: [1]}",
        "{id: g, callable: 'iflow_airflow.examples.callables:nope'}",
        "{id: h, command: '   '}",
        "{id: i, prompt: ''}",
        "{id: j, command: echo, callable: 'iflow_airflow.examples.callables:add', wait: {file: /x}}",
    ))
    assert {(p.key_path, p.line, p.code) for p in err.problems} == {
        ("workflow.tasks[0].prompt", 4, "several_actions"),
        ("workflow.tasks[1].operator", 5, "missing_action"),
        ("workflow.tasks[2].operator", 6, "invalid"),
        ("workflow.tasks[3].operator", 7, "operator"),
        ("workflow.tasks[4].args", 8, "stray_args"),
        ("workflow.tasks[5].callable", 9, "callable"),
        ("workflow.tasks[6].command", 10, "invalid"),
        ("workflow.tasks[7].prompt", 11, "invalid"),
        ("workflow.tasks[8].callable", 12, "several_actions"),
    }
    msgs = {p.key_path: p.message for p in err.problems}
    assert msgs["workflow.tasks[0].prompt"] == "a task has at most one action, but command, prompt are set"
    assert msgs["workflow.tasks[8].callable"] == "a task has at most one action, but command, callable, wait are set"
    assert msgs["workflow.tasks[1].operator"] == "operator 'bash' needs `command:`"
    assert "known kinds: agent, bash, callable, checkpoint, command, prompt, python, wait" in \
        msgs["workflow.tasks[3].operator"]


@pytest.mark.parametrize("wait,code", [
    ("{file: /x, url: 'http://x'}", "value_error"),
    ("{}", "value_error"),
    ("{url: 'ftp://x'}", "value_error"),
    ("{workflow: w}", "value_error"),
    ("{file: /x, poke_interval: 0}", "greater_than"),
    ("{file: /x, flie: y}", "unknown_key"),
])
def test_bad_waits(front, wait, code):
    probs = front.problems(ids_yaml(f"{{id: a, wait: {wait}}}"))
    assert len(probs) == 1
    ((path, line, _, got_code),) = probs
    assert line == 4 and got_code == code and path.startswith("workflow.tasks[0].wait")


@pytest.fixture
def marker_module(tmp_path, monkeypatch):
    """A module that writes a marker file when imported, importable from tmp_path."""
    name = f"iflow_marker_mod_{tmp_path.name.replace('-', '_')}"
    marker = tmp_path / "imported.marker"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n\ndef run():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def test_callable_from_a_module_not_allowed_is_an_error_and_never_imported(front, marker_module):
    name, marker = marker_module
    err = front.error(ids_yaml(f"{{id: a, callable: '{name}:run'}}"))
    (p,) = err.problems
    assert (p.key_path, p.line, p.column, p.code) == ("workflow.tasks[0].callable", 4, 15, "callable")
    assert f"module {name!r} is not in the allowed modules ([iflow] allowed_modules = iflow_airflow.examples;" in p.message
    assert not marker.exists()
    assert name not in sys.modules


def test_allowed_callable_module_is_imported_control(front, marker_module):
    """Control for the test above: the marker does appear when the module is allowed."""
    name, marker = marker_module
    plan = front.plan(ids_yaml(f"{{id: a, callable: '{name}:run'}}"), settings=IflowSettings(allowed_modules=(name,)))
    assert plan.task("a").action == CallableAction(f"{name}:run")
    assert marker.read_text() == "imported"


@pytest.mark.parametrize("target", ["iflow_airflow.examples_evil:run", "iflow_airflow:examples",
                                    "iflow_airflow.examplesx.mod:f"])
def test_allowed_prefix_is_a_dot_boundary(front, target):
    (p,) = front.error(ids_yaml(f"{{id: a, callable: '{target}'}}")).problems
    assert p.code == "callable" and "is not in the allowed modules" in p.message


def test_callable_needs_module_colon_function(front):
    assert front.problems(ids_yaml("{id: a, callable: 'os.system'}")) == {
        ("workflow.tasks[0].callable", 4, 15, "invalid_format")}


def test_no_allowed_modules_allows_nothing(front):
    (p,) = front.error(ids_yaml("{id: a, callable: 'iflow_airflow.examples.callables:add'}"),
                       settings=IflowSettings()).problems
    assert p.code == "callable" and "is not in the allowed modules ([iflow] allowed_modules is empty;" in p.message


def test_attribute_path_cannot_leave_the_allowed_module(front):
    err = front.error(ids_yaml("{id: a, callable: 'iflow_airflow.examples.callables:os.system', args: [id]}"))
    assert {(p.key_path, p.code) for p in err.problems} == {("workflow.tasks[0].callable", "callable")}


def test_emits_requires_event_driven(front):
    text = ids_yaml("{id: a, emits: [done]}", head="coordination: {sync_mode: asynchronous}\n")
    err = front.error(text)
    (p,) = err.problems
    assert (p.key_path, p.line, p.column, p.code) == ("workflow.tasks[0].emits", 5, 15, "emits_mode")
    assert front.plan(ids_yaml("{id: a, emits: [done]}")).task("a").emits == ("done",)


# --- unknown keys, all errors at once --------------------------------------------------------

def test_unknown_key_suggests_the_nearest_key_at_its_line_and_column(front):
    err = front.error(textwrap.dedent("""\
        workflow:
          name: x
          tasks:
            - id: a
              priorty: high
        """))
    (p,) = err.problems
    assert (p.key_path, p.line, p.column, p.code) == ("workflow.tasks[0].priorty", 5, 7, "unknown_key")
    assert p.expected == "did you mean `priority`?"
    assert p.message == "unknown key `priorty`"
    assert str(p).startswith(f"{err.file}:5:7: workflow.tasks[0].priorty: unknown key `priorty`")


@pytest.mark.parametrize("key,block,near", [
    ("orchestraton", None, "orchestration"), ("shceduling", None, "scheduling"),
    ("retry_atempts", "orchestration", "retry_attempts"), ("stratgy", "scheduling", "strategy"),
    ("sync_mod", "coordination", "sync_mode"), ("conflict_resolutoin", "coordination", "conflict_resolution"),
])
def test_unknown_keys_in_every_block(front, key, block, near):
    text = (f"{key}: {{}}\n" if block is None else f"{block}:\n  {key}: 1\n") + ids_yaml("{id: a}")
    (p,) = front.error(text).problems
    assert p.code == "unknown_key" and p.expected == f"did you mean `{near}`?"
    assert (p.line, p.column) == ((1, 1) if block is None else (2, 3))


def test_unknown_key_far_from_everything_lists_the_keys(front):
    (p,) = front.error("orchestration: {zzzzzz: 1}\n" + ids_yaml("{id: a}")).problems
    assert p.expected.startswith("one of: enabled, max_concurrent_tasks, max_retry_delay, mode")


def test_all_schema_errors_of_a_file_at_once(front):
    text = textwrap.dedent("""\
        orchestraton: {}
        orchestration: {retry_attempts: -1, max_concurrent_tasks: ten, mode: smart}
        scheduling: {strategy: fastest, priority_levels: 0}
        workflow:
          name: "bad name!"
          tasks:
            - id: a
              priorty: high
            - {idd: b}
        """)
    assert front.problems(text) == {
        ("orchestraton", 1, 1, "unknown_key"),
        ("orchestration.retry_attempts", 2, 17, "greater_than_equal"),
        ("orchestration.max_concurrent_tasks", 2, 37, "int_parsing"),
        ("orchestration.mode", 2, 64, "invalid_choice"),
        ("scheduling.strategy", 3, 14, "invalid_choice"),
        ("scheduling.priority_levels", 3, 33, "greater_than_equal"),
        ("workflow.name", 5, 3, "invalid_format"),
        ("workflow.tasks[0].priorty", 8, 7, "unknown_key"),
        ("workflow.tasks[1].id", 9, 7, "missing"),
        ("workflow.tasks[1].idd", 9, 8, "unknown_key"),
    }


def test_schema_and_plan_errors_together(front):
    """An unknown optional key does not hide a dependency or time-zone error elsewhere in the file."""
    text = textwrap.dedent("""\
        workflow:
          name: x
          timezone: Europe/Berln
          tasks:
            - id: a
              priorty: high
            - {id: b, dependencies: [c]}
        """)
    assert front.problems(text) == {
        ("workflow.timezone", 3, 3, "timezone"),
        ("workflow.tasks[0].priorty", 6, 7, "unknown_key"),
        ("workflow.tasks[1].dependencies[0]", 7, 30, "unknown_dependency"),
    }


def test_problems_are_sorted_by_position(front):
    err = front.error(ids_yaml("{id: b, dependencies: [zz]}", "{id: a, dependencies: [yy]}",
                               head="orchestration: {mode: x}\n"))
    assert [(p.line, p.column) for p in err.problems] == sorted((p.line, p.column) for p in err.problems)
    assert err.render().splitlines()[0].endswith("3 problems in iflow workflow file")
