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


ITEM = "IFLOW_ITEM"
ITEM_INDEX = "IFLOW_ITEM_INDEX"


def item_count(ti: Any, count: int | str) -> int:
    """How many items a mapped upstream has: a literal list's length, or the length of the list its
    ``<id>__items`` task kept."""
    if isinstance(count, int):
        return count
    items = ti.xcom_pull(task_ids=count, key="return_value")
    return len(items) if isinstance(items, list) else 0


def _mapped_result(ti: Any, task_id: str, count: int | str) -> list[Any]:
    """A mapped upstream's results in item order; an item without a result is ``None`` (JSON null).

    Pulled by explicit map indexes: Airflow returns a single value for a one-item pull by task id,
    and leaves out items that returned nothing, which would shift the order.
    """
    n = item_count(ti, count)
    if n == 0:
        return []
    values = ti.xcom_pull(task_ids=task_id, key="return_value", map_indexes=list(range(n)))
    return list(values) if isinstance(values, (list, tuple)) else [values]


def pull_results(context: Mapping[str, Any], result_tasks: Iterable[str],
                 mapped: Mapping[str, int | str] | None = None) -> dict[str, Any]:
    """The XCom ``return_value`` of each listed upstream task of this run (missing ones left out).

    ``mapped``: upstream tasks with ``for_each`` -> their item count or ``<id>__items`` task; their
    result is the list of the items' results, in item order.
    """
    ti = context["ti"]
    results: dict[str, Any] = {}
    for task_id in result_tasks:
        if mapped and task_id in mapped:
            results[task_id] = _mapped_result(ti, task_id, mapped[task_id])
            continue
        value = ti.xcom_pull(task_ids=task_id, key="return_value")
        if value is not None:
            results[task_id] = value
    return results


def item_env(context: Mapping[str, Any], item: Any) -> dict[str, str]:
    """``IFLOW_ITEM`` (a string as it is, anything else JSON) and ``IFLOW_ITEM_INDEX`` for a mapped
    task instance; nothing for a task that is not mapped."""
    index = getattr(context.get("ti"), "map_index", -1)
    if index is None or index < 0:
        return {}
    return {ITEM: _clean(to_env_value(item)), ITEM_INDEX: str(index)}


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
    item: Any = None,
    mapped: Mapping[str, int | str] | None = None,
) -> dict[str, str]:
    """The full environment for a task's child process.

    Order (later wins): the OS environment (``base``, default ``os.environ``), the
    task's own ``env``, ``IFLOW_PARAM_*``, ``IFLOW_RESULT_*``, then the run
    identity ``IFLOW_WORKFLOW``/``IFLOW_RUN_ID``/``IFLOW_TASK_ID``/``IFLOW_TRY_NUMBER``,
    so a task's ``env`` cannot spoof the values that come from the run. Declared params
    are written after undeclared conf keys, so a key that maps to the same variable
    (``a-b`` for the declared ``a_b``) never replaces a declared, type-checked value.
    ``results`` may be passed when already pulled (saves XCom round trips). A mapped task
    instance also gets its ``item`` as ``IFLOW_ITEM``/``IFLOW_ITEM_INDEX`` (after ``env``: not spoofable).
    """
    out: dict[str, str] = dict(os.environ if base is None else base)
    for key, value in (env or {}).items():
        out[str(key)] = _clean(to_env_value(value))
    declared = declared_params(context)
    # undeclared conf keys first, declared params last: `a-b` in a run's conf never shadows `a_b`
    for name, value in sorted(run_params(context).items(), key=lambda item: item[0] in declared):
        out[env_name(PARAM_PREFIX, name)] = _clean(to_env_value(value))
    if results is None:
        results = pull_results(context, result_tasks, mapped)
    for task_id, value in results.items():
        if value is not None:
            out[env_name(RESULT_PREFIX, task_id)] = _clean(to_env_value(value))
    out.update(item_env(context, item))

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
