"""``command:`` tasks: run a shell command with ``bash -c``; run values only via the environment."""

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


class IflowCommandOperator(BaseOperator):
    """Run ``command`` as ``["bash", "-c", command]``.

    Nothing is Jinja-rendered (``template_fields = ()``): run params and upstream
    results reach the command only as ``IFLOW_PARAM_*`` / ``IFLOW_RESULT_*``
    environment variables, so no run value ever becomes shell text. The result
    is the last non-empty line of stdout (kept as XCom only when
    ``persist_result``). ``cwd`` None runs in a fresh temporary directory, like
    Airflow's BashOperator, so tasks do not litter the worker's working folder.
    """

    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()
    ui_color = "#f0ede4"

    def __init__(
        self,
        *,
        command: str,
        env: Mapping[str, str] | None = None,
        result_tasks: Sequence[str] = (),
        persist_result: bool = True,
        cwd: str | None = None,
        **kwargs: Any,
    ) -> None:
        # state_persistence: false (persist_result) wins over anything else asking for XCom.
        do_xcom_push = bool(kwargs.pop("do_xcom_push", True)) and bool(persist_result)
        super().__init__(do_xcom_push=do_xcom_push, **kwargs)
        if not isinstance(command, str) or not command.strip():
            raise ValueError(f"task {self.task_id!r}: command must be a non-empty string")
        self.command = command
        self.env = dict(env or {})
        self.result_tasks = tuple(result_tasks)
        self.persist_result = persist_result
        self.cwd = cwd
        self._child: ChildProcess | None = None

    def execute(self, context: Any) -> str | None:
        env = build_env(context, self.env, self.result_tasks)
        self._child = ChildProcess(self.log)
        argv = ["bash", "-c", self.command]
        require_dir(self.cwd, self.task_id)
        self.log.info("Running command with bash -c: %s", self.command)
        try:
            if self.cwd is not None:
                result = self._child.run(argv, env, cwd=self.cwd)
            else:
                with tempfile.TemporaryDirectory(prefix="iflow-") as tmp:
                    result = self._child.run(argv, env, cwd=tmp)
        except OSError as exc:
            message = too_big_message(argv, env, exc)
            if message is None:
                raise
            raise AirflowException(f"task {self.task_id!r}: {message}") from exc
        self.log.info("Command exited with return code %s", result.returncode)
        if result.returncode != 0:
            raise AirflowException(failure_message(f"command of task {self.task_id!r}", result))
        return result.last_stdout_line()

    def on_kill(self) -> None:
        if self._child is not None:
            self._child.terminate()
