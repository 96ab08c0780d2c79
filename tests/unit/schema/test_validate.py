"""validate.py: pydantic errors -> located problems with "did you mean"; bugs found in it."""

from __future__ import annotations

import pytest

from iflow_airflow.errors import WorkflowFileError
from iflow_airflow.schema import models, validate
from iflow_airflow.source import reader as yaml_source


def test_suggest_nearest_key():
    assert validate.suggest("priorty", sorted(models.Task.model_fields)) == "priority"
    assert validate.suggest("dependecies", sorted(models.Task.model_fields)) == "dependencies"
    assert validate.suggest("zzzzzz", sorted(models.Task.model_fields)) is None


@pytest.mark.parametrize("loc,model", [
    (("workflow",), models.Workflow),
    (("workflow", "tasks", 3), models.Task),
    (("workflow", "schedule"), models.EventsSchedule),
    (("workflow", "tasks", 0, "wait"), models.WaitSpec),
    (("workflow", "tasks", 0, "resource"), models.ResourceUse),
    (("resources", "gpu"), models.Resource),
    (("task_types", "build"), models.TaskType),
    (("workflow", "params", "p"), models.Param),
    (("workflow", "name"), None),
    (("nonsense",), None),
])
def test_model_at(loc, model):
    assert validate.model_at(loc) is model


def _validate(text: str):
    doc = yaml_source.parse("f.yaml", text)

    def locate(path):
        hit = doc.locate(path)
        return "f.yaml", hit[0] if hit else None, hit[1] if hit else None

    return validate.validate(doc.data, "f.yaml", locate)


def _problems(text: str):
    with pytest.raises(WorkflowFileError) as exc:
        _validate(text)
    return {(p.key_path, p.line, p.column, p.code) for p in exc.value.problems}


def test_validate_returns_the_model():
    wf = _validate("workflow: {name: x, tasks: [{id: a, resource: gpu}]}\nresources: {gpu: 2}\n")
    assert wf.workflow.tasks[0].resource == models.ResourceUse(name="gpu", slots=1)
    assert wf.resources["gpu"] == models.Resource(slots=2)


def test_union_branch_matching_the_shape_is_kept():
    # a mapping schedule: only the EventsSchedule branch's error, not "should be a string"
    assert _problems("workflow: {name: x, schedule: {events: [a], bogus: 1}, tasks: [{id: a}]}\n") == {
        ("workflow.schedule.bogus", 1, 45, "unknown_key")}


def test_unknown_key_in_task_resource_suggests():
    with pytest.raises(WorkflowFileError) as exc:
        _validate("workflow: {name: x, tasks: [{id: a, resource: {name: g, slot: 2}}]}\n")
    (p,) = exc.value.problems
    assert (p.key_path, p.code, p.expected) == ("workflow.tasks[0].resource.slot", "unknown_key", "did you mean `slots`?")


def test_repaired_drops_only_bad_optional_keys():
    data = {"workflow": {"name": "x", "bogus": 1, "tasks": [{"id": "a", "priorty": 1}]}}
    with pytest.raises(WorkflowFileError) as exc:
        validate.validate(data, "f", lambda p: ("f", None, None))
    wf = validate.repaired(data, exc.value.problems)
    assert wf is not None and wf.workflow.tasks[0].id == "a"
    assert data["workflow"]["bogus"] == 1  # the input is not changed
    missing = {"workflow": {"tasks": [{"id": "a"}]}}
    with pytest.raises(WorkflowFileError) as exc:
        validate.validate(missing, "f", lambda p: ("f", None, None))
    assert validate.repaired(missing, exc.value.problems) is None


def test_task_type_named_str_keeps_its_key_path():
    assert _problems("task_types:\n  str: {retries: -1}\nworkflow: {name: x, tasks: [{id: a}]}\n") == {
        ("task_types.str.retries", 2, 9, "greater_than_equal")}


def test_invalid_resource_name_key_path():
    assert _problems("resources:\n  'bad name': 1\nworkflow: {name: x, tasks: [{id: a}]}\n") == {
        ("resources.bad name", 2, 3, "invalid_format")}


def test_one_problem_per_bad_value():
    with pytest.raises(WorkflowFileError) as exc:
        _validate("workflow: {name: x, start_date: soon, tasks: [{id: a}]}\n")
    assert len(exc.value.problems) == 1


def test_impossible_date_is_a_located_yaml_problem():
    with pytest.raises(WorkflowFileError) as exc:
        yaml_source.parse("f.yaml", "workflow:\n  start_date: 2026-13-01\n")
    assert [(p.key_path, p.line, p.column) for p in exc.value.problems] == [("workflow.start_date", 2, 15)]


def test_impossible_date_is_contained_as_this_files_error(front):
    """Whatever the bug above, one file's crash stays that file's error."""
    c = front.compile("workflow:\n  name: x\n  start_date: 2026-02-30\n  tasks: [{id: a}]\n")
    assert c.plan is None and len(c.error.problems) == 1
    assert "2026-02-30" in c.error.render() or "day is out of range" in c.error.render()
