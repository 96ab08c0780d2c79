"""``wait:`` tasks: wait for a file, an HTTP 2xx, a time, or another workflow's task.

Every wait is bounded by ``timeout_seconds`` (``coordination.communication_timeout``),
each url check included (``runtime.http_policy``: one deadline per check, no body read,
redirects only to the same host).
Non-deferrable (``sync_mode`` synchronous / event_driven): the worker polls.
Deferrable (``asynchronous``): the task defers and frees its worker slot.

Another workflow's task ("workflow" + "task"): the condition is ExternalTaskSensor-like,
but on the LATEST run of that workflow (iflow runs are mostly manual and have no
logical date to match): it holds when the task is ``success`` in the run of that
workflow with the greatest ``run_after``. Limits, from what the Airflow 3 task SDK
offers workers (no ORM):

- the worker reads task states with ``ti.get_task_states`` and each new run's
  ``run_after`` with one task-SDK ``GetDagRun`` request (cached), so the first
  poke costs one request per existing run of that workflow;
- deferrable, when that workflow has a run: the task defers on the standard
  provider's ``WorkflowTrigger`` pinned to that run (a newer run started during
  the wait is not looked at; clearing and re-running that run is);
- deferrable, when that workflow has no run yet: ``IflowWaitTrigger`` waits for
  the task to succeed in any run (all runs are then newer than the wait);
- a failed task in the latest run does not fail the wait: it keeps waiting (a
  new run or a cleared task may still succeed) until the timeout.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, TaskDeferralTimeout

from iflow_airflow.triggers.wait import HTTP_ATTEMPT_TIMEOUT, IflowWaitTrigger, describe, is_2xx, parse_until

# Extra time the deferral timeout gives the trigger to report its own, clearer, timeout.
DEFER_TIMEOUT_MARGIN = 30.0


def timeout_message(what: str, seconds: float) -> str:
    return f"wait for {what} timed out after {seconds:g} s (coordination.communication_timeout)"


class IflowWaitOperator(BaseOperator):
    """Wait for exactly one of: ``file``, ``url``, ``until``, or ``workflow`` + ``task``.

    See the module docstring for the other-workflow semantics and limits.
    ``until`` may be a datetime or an ISO-8601 string; a naive value is UTC.
    The wait has no result (nothing is pushed to XCom).
    """

    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()
    ui_color = "#e4ecf0"

    def __init__(
        self,
        *,
        file: str | None = None,
        url: str | None = None,
        until: datetime | str | None = None,
        workflow: str | None = None,
        task: str | None = None,
        timeout_seconds: float = 60.0,
        poke_interval: float = 5.0,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("do_xcom_push", False)
        super().__init__(**kwargs)
        given = [name for name, v in (("file", file), ("url", url), ("until", until)) if v is not None]
        if workflow is not None or task is not None:
            if not (workflow and task):
                raise ValueError(f"task {self.task_id!r}: a wait for another workflow needs both workflow and task")
            given.append("workflow+task")
        if len(given) != 1:
            raise ValueError(
                f"task {self.task_id!r}: wait needs exactly one of file, url, until, workflow+task; got "
                f"{', '.join(given) or 'none'}"
            )
        if float(timeout_seconds) <= 0:
            raise ValueError(f"task {self.task_id!r}: timeout_seconds must be > 0")
        self.kind = {"file": "file", "url": "url", "until": "until"}.get(given[0], "external_task")
        self.file = file
        self.url = url
        self.until = parse_until(until).isoformat() if until is not None else None
        self.workflow = workflow
        self.external_task = task
        self.timeout_seconds = float(timeout_seconds)
        self.poke_interval = max(float(poke_interval), 0.05)
        self.deferrable = bool(deferrable)
        self.what = describe(
            self.kind, file=file, url=url, until=self.until, external_dag_id=workflow, external_task_id=task
        )
        self._run_after: dict[str, datetime] = {}
        self._deadline: float | None = None  # monotonic end of a polling wait: bounds each url check

    # -- the condition, checked in the worker ---------------------------------------------

    def _holds(self, context: Any) -> bool:
        if self.kind == "file":
            return os.path.exists(self.file)
        if self.kind == "url":
            from iflow_airflow.http_policy import probe_url_sync

            left = self._deadline - time.monotonic() if self._deadline is not None else self.timeout_seconds
            status, detail = probe_url_sync(self.url, min(HTTP_ATTEMPT_TIMEOUT, max(left, 0.05)))
            self.log.info("wait for %s: %s", self.what, detail)
            return status is not None and is_2xx(status)
        if self.kind == "until":
            return datetime.now(timezone.utc) >= parse_until(self.until)
        run_id, state = self.latest_external_state(context)
        self.log.info("wait for %s: latest run %s, state %s", self.what, run_id, state)
        return state == "success"

    def latest_external_state(self, context: Any) -> tuple[str | None, str | None]:
        """(run_id, state) of the awaited task in the other workflow's latest run; (None, None) if none."""
        ti = context["ti"]
        by_run = ti.get_task_states(dag_id=self.workflow, task_ids=[self.external_task]) or {}
        if not by_run:
            return None, None
        for run_id in by_run:
            if run_id not in self._run_after:
                self._run_after[run_id] = _run_after(self.workflow, run_id)
        latest = max(by_run, key=lambda r: (self._run_after[r], r))
        return latest, by_run[latest].get(self.external_task)

    def _sleep_for(self, deadline: float) -> float:
        step = self.poke_interval
        if self.kind == "until":
            step = max((parse_until(self.until) - datetime.now(timezone.utc)).total_seconds(), 0.0)
        return max(min(step, deadline - time.monotonic()), 0.0)

    # -- execution --------------------------------------------------------------------------

    def execute(self, context: Any) -> None:
        if self.deferrable:
            return self._defer(context)
        self.log.info("waiting for %s (up to %g s)", self.what, self.timeout_seconds)
        deadline = self._deadline = time.monotonic() + self.timeout_seconds
        while True:
            if self._holds(context):
                self.log.info("wait for %s: condition met", self.what)
                return None
            if time.monotonic() >= deadline:
                raise AirflowException(timeout_message(self.what, self.timeout_seconds))
            time.sleep(self._sleep_for(deadline))

    def _defer(self, context: Any) -> None:
        defer_timeout = timedelta(seconds=self.timeout_seconds + DEFER_TIMEOUT_MARGIN)
        if self.kind == "external_task":
            run_id, state = self.latest_external_state(context)
            if state == "success":
                self.log.info("wait for %s: already succeeded in run %s", self.what, run_id)
                return None
            if run_id is not None:
                from airflow.providers.standard.triggers.external_task import WorkflowTrigger

                self.log.info("wait for %s: deferring on run %s (state %s)", self.what, run_id, state)
                self.defer(
                    trigger=WorkflowTrigger(
                        external_dag_id=self.workflow,
                        run_ids=[run_id],
                        external_task_ids=[self.external_task],
                        allowed_states=["success"],
                        poke_interval=self.poke_interval,
                    ),
                    method_name="execute_complete",
                    timeout=timedelta(seconds=self.timeout_seconds),
                )
        elif self._holds(context):  # already there: skip the round trip through the triggerer
            self.log.info("wait for %s: condition met", self.what)
            return None
        self.log.info("wait for %s: deferring (up to %g s)", self.what, self.timeout_seconds)
        self.defer(
            trigger=IflowWaitTrigger(
                self.kind,
                file=self.file,
                url=self.url,
                until=self.until,
                external_dag_id=self.workflow,
                external_task_id=self.external_task,
                poke_interval=self.poke_interval,
                deadline=time.time() + self.timeout_seconds,
                timeout_seconds=self.timeout_seconds,
            ),
            method_name="execute_complete",
            timeout=defer_timeout,
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> None:
        status = (event or {}).get("status")
        if status in ("ok", "success"):
            self.log.info("wait for %s: condition met", self.what)
            return None
        if status == "timeout":
            raise AirflowException(timeout_message(self.what, self.timeout_seconds))
        raise AirflowException(f"wait for {self.what} ended without its condition: {event!r}")

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any) -> Any:
        """Turn Airflow's generic deferral timeout into the wait's own timeout message."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout as exc:
            raise AirflowException(timeout_message(self.what, self.timeout_seconds)) from exc


def _run_after(dag_id: str, run_id: str) -> datetime:
    """When a run of another workflow was due, via the task SDK (workers have no ORM)."""
    from iflow_airflow import version_compat

    try:
        dag_run = version_compat.get_dag_run(dag_id, run_id)
    except Exception:  # a run deleted meanwhile: oldest, so it never wins
        return datetime.min.replace(tzinfo=timezone.utc)
    return dag_run.run_after or dag_run.start_date or datetime.min.replace(tzinfo=timezone.utc)
