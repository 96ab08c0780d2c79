"""What the iflow operators share: no templating, results handed on, child processes run safely."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from iflow_airflow.operators.process import ChildProcess, ProcessResult, too_big_message
from iflow_airflow.operators.run_env import build_env


def require_dir(cwd: str | None, task_id: str) -> None:
    """A missing working directory is the task's configuration error, not a missing program."""
    if cwd is not None and not os.path.isdir(cwd):
        raise AirflowException(f"task {task_id!r}: working directory {cwd!r} does not exist")


def failure_message(what: str, result: ProcessResult) -> str:
    """``<what> failed with exit code N`` plus the last lines of output, for the task log and UI."""
    code = result.returncode
    how = f"was killed by signal {-code}" if code < 0 else f"failed with exit code {code}"
    lines = "\n".join(f"  {line}" for line in result.tail) or "  (no output)"
    return f"{what} {how}; last lines of output:\n{lines}"


def result_kwargs(kwargs: dict[str, Any], persist_result: bool) -> dict[str, Any]:
    """BaseOperator kwargs with XCom only when ``persist_result`` (state_persistence: false wins)."""
    kwargs["do_xcom_push"] = bool(kwargs.pop("do_xcom_push", True)) and bool(persist_result)
    return kwargs


class IflowResultOperator(BaseOperator):
    """Nothing is Jinja-rendered (run values must never become code or shell text), and the
    result is kept as XCom only when ``persist_result`` (``coordination.state_persistence``).

    No ``__init__`` here on purpose: Airflow wraps every ``__init__`` in the class chain to
    apply defaults, and DAG parsing is a hot path; concrete classes call ``_keep_results``.
    """

    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()

    def _keep_results(self, result_tasks: Sequence[str], persist_result: bool, iflow_item: Any = None,
                      mapped_results: Mapping[str, int | str] | None = None) -> None:
        """``iflow_item``: this instance's item when the task is mapped (``for_each``, set by
        ``expand``); ``mapped_results``: upstream tasks with ``for_each`` -> their item count or
        ``<id>__items`` task (their results are lists)."""
        self.result_tasks = tuple(result_tasks)
        self.persist_result = persist_result
        self.iflow_item = iflow_item
        self.mapped_results = dict(mapped_results or {})


class IflowProcessOperator(IflowResultOperator):
    """Runs one child process with the ``IFLOW_*`` environment, in ``cwd`` or a fresh temporary
    directory (like BashOperator), and kills its whole process group on timeout or kill."""

    _child: ChildProcess | None = None

    def _keep_process(self, env: Mapping[str, str] | None, cwd: str | None, result_tasks: Sequence[str],
                      persist_result: bool, iflow_item: Any = None,
                      mapped_results: Mapping[str, int | str] | None = None) -> None:
        self._keep_results(result_tasks, persist_result, iflow_item, mapped_results)
        self.env = dict(env or {})
        self.cwd = cwd

    def run_process(self, context: Any, argv: list[str], *, what: str, keep_stdout: bool = False) -> ProcessResult:
        """Run ``argv``; a non-zero exit is an ``AirflowException`` naming ``what`` and the last output.

        ``OSError`` other than an oversized environment (e.g. a missing program) propagates.
        """
        env = build_env(context, self.env, self.result_tasks, item=self.iflow_item, mapped=self.mapped_results)
        require_dir(self.cwd, self.task_id)
        self._child = ChildProcess(self.log)
        try:
            if self.cwd is not None:
                result = self._child.run(argv, env, cwd=self.cwd, keep_stdout=keep_stdout)
            else:
                with tempfile.TemporaryDirectory(prefix="iflow-") as tmp:
                    result = self._child.run(argv, env, cwd=tmp, keep_stdout=keep_stdout)
        except OSError as exc:
            message = too_big_message(argv, env, exc)
            if message is None:
                raise
            raise AirflowException(f"{what}: {message}") from exc
        self.log.info("%s exited with return code %s", what, result.returncode)
        if result.returncode != 0:
            raise AirflowException(failure_message(what, result))
        return result

    def on_kill(self) -> None:
        if self._child is not None:
            self._child.terminate()
