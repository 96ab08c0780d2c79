"""``callable:`` tasks: call ``pkg.mod:func`` from an allowed module with static args/kwargs.

The module allow-list is checked before importing anything, both when the
workflow is loaded (``check_callable_target``) and again when the task runs
(defence in depth: the worker's configuration is the one that counts).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from iflow_airflow.allowlist import (
    CallableTargetError,
    ModuleNotAllowedError,
    check_callable_target,
    resolve_callable,
    split_target,
)
from iflow_airflow.operators.base import IflowResultOperator, result_kwargs
from iflow_airflow.operators.run_env import pull_results, run_params
from iflow_airflow.settings import IflowSettings

__all__ = [
    "CallableTargetError",
    "IflowCallableOperator",
    "check_callable_target",
    "injectable",
    "resolve_callable",
    "split_target",
]

RESULTS_KWARG = "iflow_results"
PARAMS_KWARG = "iflow_params"
ITEM_KWARG = "iflow_item"


def injectable(func: Callable[..., Any]) -> set[str]:
    """Which of ``iflow_results`` / ``iflow_params`` / ``iflow_item`` ``func`` accepts (by name or ``**kwargs``)."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have no signature: inject nothing
        return set()
    names = {RESULTS_KWARG, PARAMS_KWARG, ITEM_KWARG}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return names
    return {
        n
        for n in names
        if n in sig.parameters
        and sig.parameters[n].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


class IflowCallableOperator(IflowResultOperator):
    """Call ``target`` with ``args``/``kwargs``; its return value is the task's result.

    If the function accepts ``iflow_results`` (or ``**kwargs``) it gets
    ``{upstream_task_id: result}`` for the tasks in ``result_tasks``; if it accepts
    ``iflow_params`` it gets the run's params; a mapped instance (``for_each``) passes its item as
    ``iflow_item`` when the function accepts it. Nothing is Jinja-rendered.
    A target outside the allowed modules fails the task without retrying.
    """

    ui_color = "#e4f0e8"

    def __init__(
        self,
        *,
        target: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        result_tasks: Sequence[str] = (),
        persist_result: bool = True,
        iflow_item: Any = None,
        mapped_results: Mapping[str, int | str] | None = None,
        **operator_kwargs: Any,
    ) -> None:
        super().__init__(**result_kwargs(operator_kwargs, persist_result))
        self._keep_results(result_tasks, persist_result, iflow_item, mapped_results)
        split_target(target)  # malformed targets fail at parse time
        reserved = {RESULTS_KWARG, PARAMS_KWARG, ITEM_KWARG} & set(kwargs or {})
        if reserved:
            raise ValueError(
                f"task {self.task_id!r}: kwargs may not set {sorted(reserved)}; they are filled in at run time"
            )
        self.target = target
        self.call_args = tuple(args)
        self.call_kwargs = dict(kwargs or {})

    def execute(self, context: Any) -> Any:
        settings = IflowSettings.from_config()
        try:
            func = resolve_callable(self.target, settings)
        except (ModuleNotAllowedError, CallableTargetError) as exc:
            raise AirflowFailException(str(exc)) from exc
        kwargs = dict(self.call_kwargs)
        wanted = injectable(func)
        if RESULTS_KWARG in wanted:
            kwargs[RESULTS_KWARG] = pull_results(context, self.result_tasks, self.mapped_results)
        if PARAMS_KWARG in wanted:
            kwargs[PARAMS_KWARG] = run_params(context)
        if ITEM_KWARG in wanted and getattr(context.get("ti"), "map_index", -1) >= 0:
            kwargs[ITEM_KWARG] = self.iflow_item
        self.log.info("Calling %s", self.target)
        result = func(*self.call_args, **kwargs)
        self.log.info("Result of %s: %r", self.target, result)
        return result
