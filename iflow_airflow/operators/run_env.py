"""The environment a task's process sees: how run values reach commands and agents.

Run parameters and upstream results are handed to child processes ONLY as
environment variables (``IFLOW_PARAM_<name>``, ``IFLOW_RESULT_<task>``), never
pasted into shell text, so a hostile value such as ``$(rm -rf ~)`` stays data.
Shared by the command and agent operators.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from iflow_airflow.constants import PARAM_PREFIX, RESULT_PREFIX, env_name  # noqa: F401  (part of this module's API)


def to_env_value(value: Any) -> str:
    """Strings as they are; anything else JSON-encoded (so ``True`` -> ``true``, ``None`` -> ``null``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def _clean(value: str) -> str:
    # The OS refuses NUL bytes in the environment; drop them rather than fail the task.
    return value.replace("\x00", "")


def pull_results(context: Mapping[str, Any], result_tasks: Iterable[str]) -> dict[str, Any]:
    """The XCom ``return_value`` of each listed upstream task of this run (missing ones left out)."""
    ti = context["ti"]
    results: dict[str, Any] = {}
    for task_id in result_tasks:
        value = ti.xcom_pull(task_ids=task_id, key="return_value")
        if value is not None:
            results[task_id] = value
    return results


def run_params(context: Mapping[str, Any]) -> dict[str, Any]:
    """The run's params as a plain dict (Airflow's ParamsDict resolves Param objects on access)."""
    params = context.get("params") or {}
    return {str(k): params[k] for k in params}


def declared_params(context: Mapping[str, Any]) -> set[str]:
    """Names of the params the workflow declares (the DAG's), as opposed to extra keys of a run's conf."""
    dag = getattr(context.get("task"), "dag", None) or context.get("dag")
    return {str(k) for k in (getattr(dag, "params", None) or {})}


def build_env(
    context: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    result_tasks: Iterable[str] = (),
    *,
    base: Mapping[str, str] | None = None,
    results: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The full environment for a task's child process.

    Order (later wins): the OS environment (``base``, default ``os.environ``), the
    task's own ``env``, ``IFLOW_PARAM_*``, ``IFLOW_RESULT_*``, then the run
    identity ``IFLOW_WORKFLOW``/``IFLOW_RUN_ID``/``IFLOW_TASK_ID``/``IFLOW_TRY_NUMBER``,
    so a task's ``env`` cannot spoof the values that come from the run. Declared params
    are written after undeclared conf keys, so a key that maps to the same variable
    (``a-b`` for the declared ``a_b``) never replaces a declared, type-checked value.
    ``results`` may be passed when already pulled (saves XCom round trips).
    """
    out: dict[str, str] = dict(os.environ if base is None else base)
    for key, value in (env or {}).items():
        out[str(key)] = _clean(to_env_value(value))
    declared = declared_params(context)
    # undeclared conf keys first, declared params last: `a-b` in a run's conf never shadows `a_b`
    for name, value in sorted(run_params(context).items(), key=lambda item: item[0] in declared):
        out[env_name(PARAM_PREFIX, name)] = _clean(to_env_value(value))
    if results is None:
        results = pull_results(context, result_tasks)
    for task_id, value in results.items():
        if value is not None:
            out[env_name(RESULT_PREFIX, task_id)] = _clean(to_env_value(value))

    ti = context.get("ti")
    dag_run = context.get("dag_run")
    identity = {
        "IFLOW_WORKFLOW": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "IFLOW_RUN_ID": getattr(ti, "run_id", None) or context.get("run_id"),
        "IFLOW_TASK_ID": getattr(ti, "task_id", None),
        "IFLOW_TRY_NUMBER": getattr(ti, "try_number", None),
    }
    for key, value in identity.items():
        if value is not None:
            out[key] = _clean(str(value))
    return out
