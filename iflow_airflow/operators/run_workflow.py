"""``run_workflow:`` tasks: trigger another iflow workflow with ``params`` and wait for it.

Built on the standard provider's ``TriggerDagRunOperator`` (Airflow 3: the task
runner triggers through the API server, waits polling, or defers to a
``DagStateTrigger`` when ``deferrable``), so the child run, its link in the
UI and the wait are Airflow's own. What this adds:

* ``params`` are resolved when the task runs: literals as written,
  ``{param: p}`` from this run's parameters, ``{result: t}`` from an upstream
  task's result (a ``for_each`` task's: the list of its items' results). They
  become the child run's configuration as data; nothing is Jinja-rendered.
* The child run's id is chosen here (parent workflow, task, run and try), so
  it is the task's result (XCom ``return_value``) for dependants, and a retry
  triggers a new child run.
* The task fails when the child run fails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

from iflow_airflow.operators.run_env import pull_results, run_params
from iflow_airflow.plan.ir import RunRef

RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.~:+-]")  # Airflow's default [scheduler] allowed_run_id_pattern
MAX_RUN_ID = 250


def child_run_id(context: Mapping[str, Any]) -> str:
    """``iflow__<parent dag>.<task>__<parent run>__try<n>``, within Airflow's run id pattern."""
    ti = context["ti"]
    raw = f"iflow__{ti.dag_id}.{ti.task_id}__{ti.run_id}__try{getattr(ti, 'try_number', 1)}"
    return RUN_ID_UNSAFE.sub("_", raw)[:MAX_RUN_ID]


def resolve_params(params: Mapping[str, Any], context: Mapping[str, Any], results: Mapping[str, Any]) -> dict:
    """The child's run configuration: each ``RunRef`` replaced by its run-time value."""
    run = run_params(context)
    conf: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, RunRef):
            value = run.get(value.name) if value.source == "param" else results.get(value.name)
        conf[key] = value
    return conf


class IflowRunWorkflowOperator(TriggerDagRunOperator):
    """Trigger ``workflow`` with ``iflow_params`` resolved, wait for it, fail if it fails."""

    template_fields: Sequence[str] = ()  # run values are data, never templates
    ui_color = "#eaf0fb"

    def __init__(self, *, workflow: str, iflow_params: Mapping[str, Any] | None = None,
                 result_tasks: Sequence[str] = (), mapped_results: Mapping[str, int | str] | None = None,
                 persist_result: bool = True, poke_interval: float = 5.0, deferrable: bool = False,
                 **kwargs: Any) -> None:
        kwargs["do_xcom_push"] = bool(persist_result)
        super().__init__(trigger_dag_id=workflow, wait_for_completion=True, poke_interval=poke_interval,
                         deferrable=deferrable, failed_states=["failed"], openlineage_inject_parent_info=False,
                         **kwargs)
        self.iflow_params = dict(iflow_params or {})
        self.result_tasks = tuple(result_tasks)
        self.mapped_results = dict(mapped_results or {})
        self.persist_result = persist_result

    def execute(self, context: Any) -> None:
        results = pull_results(context, self.result_tasks, self.mapped_results)
        self.conf = resolve_params(self.iflow_params, context, results)
        self.trigger_run_id = child_run_id(context)
        if self.persist_result:  # the task's result: kept before the wait, so a wait in the worker keeps it
            context["ti"].xcom_push(key="return_value", value=self.trigger_run_id)
        self.log.info("Running workflow %s as run %s with params %s", self.trigger_dag_id, self.trigger_run_id,
                      sorted(self.conf))
        super().execute(context)

    def execute_complete(self, context: Any, event: Any) -> str | None:
        super().execute_complete(context, event)  # raises when the child run failed
        return self.trigger_run_id if self.persist_result else None
