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


class IflowResultOperator(BaseOperator):
    """Nothing is Jinja-rendered (run values must never become code or shell text), and the
    result is kept as XCom only when ``persist_result`` (``coordination.state_persistence``)."""

    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()

    def __init__(self, *, result_tasks: Sequence[str] = (), persist_result: bool = True, **kwargs: Any) -> None:
        # state_persistence: false wins over anything else asking for XCom.
        do_xcom_push = bool(kwargs.pop("do_xcom_push", True)) and bool(persist_result)
        super().__init__(do_xcom_push=do_xcom_push, **kwargs)
        self.result_tasks = tuple(result_tasks)
        self.persist_result = persist_result


class IflowProcessOperator(IflowResultOperator):
    """Runs one child process with the ``IFLOW_*`` environment, in ``cwd`` or a fresh temporary
    directory (like BashOperator), and kills its whole process group on timeout or kill."""

    def __init__(self, *, env: Mapping[str, str] | None = None, cwd: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.env = dict(env or {})
        self.cwd = cwd
        self._child: ChildProcess | None = None

    def run_process(self, context: Any, argv: list[str], *, what: str, keep_stdout: bool = False) -> ProcessResult:
        """Run ``argv``; a non-zero exit is an ``AirflowException`` naming ``what`` and the last output.

        ``OSError`` other than an oversized environment (e.g. a missing program) propagates.
        """
        env = build_env(context, self.env, self.result_tasks)
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
