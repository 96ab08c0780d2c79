"""A task's merged fields -> its one action (SPEC §3 "Actions"), checked and located.

Rule: a task has at most one of ``command`` / ``callable`` / ``prompt`` /
``wait`` / ``run_workflow``, or an ``operator:`` kind; none is a checkpoint.
``args``/``kwargs`` belong to ``callable:`` and custom operator kinds only,
``params`` to ``run_workflow:``. Code a file names must
be inside ``[iflow] allowed_modules`` (checked without importing anything
else). Every mistake is added to the draft's problems; the action is then
``None`` (the file will not get a plan).
"""

from __future__ import annotations

from typing import Any

from iflow_airflow import allowlist as code_policy
from iflow_airflow.errors import PathPart
from iflow_airflow.plan.draft import Problems
from iflow_airflow.plan.ir import (
    Action,
    CallableAction,
    CheckpointAction,
    CommandAction,
    OperatorAction,
    PromptAction,
    RunWorkflowAction,
    WaitAction,
)
from iflow_airflow.settings import IflowSettings

BUILTIN_ACTIONS = ("command", "callable", "prompt", "wait", "run_workflow")
ACTION_FIELDS = (*BUILTIN_ACTIONS, "operator")

Path = tuple[PathPart, ...]


def given_actions(fields: dict[str, Any]) -> list[str]:
    """The built-in action keys a task sets, in their canonical order."""
    return [k for k in BUILTIN_ACTIONS if fields.get(k) is not None]


def _operator_kind(kind: str, given: list[str], fields: dict[str, Any], path: Path, p: Problems,
                   settings: IflowSettings) -> Action | None | bool:
    """An ``operator:`` kind: its action, None on a problem, or True to go on with the built-in action."""
    problem = code_policy.operator_problem(kind, settings)
    if problem:
        p.add(path + ("operator",), problem, code="operator")
        return None
    builtin = code_policy.OPERATOR_KINDS.get(kind)
    if builtin is None:  # a custom kind takes only kwargs
        if given:
            p.add(path + ("operator",), f"operator kind {kind!r} cannot be combined with {given[0]}",
                  "either a custom `operator:` with `kwargs:`, or one built-in action")
            return None
        return OperatorAction(kind, dict(fields.get("kwargs") or {}))
    if builtin == "checkpoint":
        if given:
            p.add(path + ("operator",), f"a checkpoint has no action, but {given[0]} is set")
            return None
        return CheckpointAction()
    if builtin not in given:
        p.add(path + ("operator",), f"operator {kind!r} needs `{builtin}:`",
              f"add `{builtin}:` to the task or its task_types entry", code="missing_action")
        return None
    return True


def _check_args(fields: dict[str, Any], given: list[str], kind: str | None, path: Path, p: Problems) -> None:
    if fields.get("args") is None and fields.get("kwargs") is None:
        return
    if given != ["callable"] and not (kind and code_policy.OPERATOR_KINDS.get(kind) is None):
        key = "args" if fields.get("args") is not None else "kwargs"
        p.add(path + (key,), f"`{key}` is only used with `callable:` or a custom `operator:`", code="stray_args")


def _check_params(fields: dict[str, Any], given: list[str], path: Path, p: Problems) -> None:
    if fields.get("params") is not None and "run_workflow" not in given:
        p.add(path + ("params",), "`params` is only used with `run_workflow:`",
              "add `run_workflow: <workflow name>`, or remove `params`", code="stray_params")


def _builtin(what: str, fields: dict[str, Any], path: Path, p: Problems, settings: IflowSettings) -> Action | None:
    """The one built-in action ``what`` (command / callable / prompt / wait)."""
    if what == "command":
        if not fields["command"].strip():
            p.add(path + ("command",), "empty command", "a shell command, or no action for a checkpoint")
        return CommandAction(fields["command"])
    if what == "callable":
        problem = code_policy.callable_problem(fields["callable"], settings)
        if problem:
            p.add(path + ("callable",), problem, code="callable")
            return None
        return CallableAction(fields["callable"], tuple(fields.get("args") or ()), dict(fields.get("kwargs") or {}))
    if what == "prompt":
        if not fields["prompt"].strip():
            p.add(path + ("prompt",), "empty prompt")
        return PromptAction(fields["prompt"])
    if what == "run_workflow":  # its params are resolved by the sub_workflows pass (plan/fanout.py)
        return RunWorkflowAction(fields["run_workflow"])
    w = fields["wait"]
    return WaitAction(file=w.get("file"), url=w.get("url"), until=w.get("until"), workflow=w.get("workflow"),
                      task=w.get("task"), poke_interval=w.get("poke_interval", 5.0))


def action_of(fields: dict[str, Any], path: Path, p: Problems, settings: IflowSettings) -> Action | None:
    """The task's action, or None after adding its problem to ``p``."""
    given = given_actions(fields)
    kind = fields.get("operator")
    if kind is not None:
        decided = _operator_kind(kind, given, fields, path, p, settings)
        if decided is not True:
            return decided  # type: ignore[return-value]
    if len(given) > 1:
        p.add(path + (given[1],), f"a task has at most one action, but {', '.join(given)} are set",
              "one of command / callable / prompt / wait / run_workflow / operator", code="several_actions")
        return None
    _check_args(fields, given, kind, path, p)
    _check_params(fields, given, path, p)
    if not given:
        return CheckpointAction()
    return _builtin(given[0], fields, path, p, settings)
