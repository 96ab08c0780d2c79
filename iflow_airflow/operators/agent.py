"""``prompt:`` tasks: run the configured agent CLI non-interactively with the prompt as one argument."""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from iflow_airflow.operators.command import failure_message, require_dir
from iflow_airflow.operators.process import ChildProcess, too_big_message
from iflow_airflow.operators.run_env import build_env
from iflow_airflow.settings import IflowSettings

INSTALL_HINT = (
    "install the iFlow CLI on every worker with `npm i -g @iflow-ai/iflow-cli` "
    "(it provides the `iflow` command; the `iflow-cli-sdk` Python package only drives an installed CLI), "
    "or point [iflow] agent_command in airflow.cfg (environment variable AIRFLOW__IFLOW__AGENT_COMMAND) "
    "at another agent that takes the prompt as its last argument"
)


def agent_argv(agent_command: str, prompt: str) -> list[str]:
    """``shlex.split(agent_command) + [prompt]``: an argv, never a shell line."""
    argv = shlex.split(agent_command)
    if not argv:
        raise AirflowException(
            "the agent command is empty: set [iflow] agent_command (AIRFLOW__IFLOW__AGENT_COMMAND), "
            "for example 'iflow -p'"
        )
    return [*argv, prompt]


class IflowAgentOperator(BaseOperator):
    """Run ``[iflow] agent_command`` (default ``iflow -p``) with ``prompt`` appended as one argument.

    The agent's stdout, stripped, is the answer and the task's result. The
    prompt is passed as-is (no Jinja, no shell); run params and upstream
    results reach the agent as ``IFLOW_PARAM_*`` / ``IFLOW_RESULT_*`` environment
    variables. ``cwd`` None runs the agent in a fresh temporary directory.
    The agent command is read from the worker's configuration when the task runs.
    """

    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()
    ui_color = "#e8e4f0"

    def __init__(
        self,
        *,
        prompt: str,
        env: Mapping[str, str] | None = None,
        result_tasks: Sequence[str] = (),
        persist_result: bool = True,
        cwd: str | None = None,
        **kwargs: Any,
    ) -> None:
        do_xcom_push = bool(kwargs.pop("do_xcom_push", True)) and bool(persist_result)
        super().__init__(do_xcom_push=do_xcom_push, **kwargs)
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"task {self.task_id!r}: prompt must be a non-empty string")
        self.prompt = prompt
        self.env = dict(env or {})
        self.result_tasks = tuple(result_tasks)
        self.persist_result = persist_result
        self.cwd = cwd
        self._child: ChildProcess | None = None

    def execute(self, context: Any) -> str:
        settings = IflowSettings.from_config()
        argv = agent_argv(settings.agent_command, self.prompt)
        env = build_env(context, self.env, self.result_tasks)
        require_dir(self.cwd, self.task_id)
        self._child = ChildProcess(self.log)
        self.log.info("Running agent %s with a prompt of %d characters", argv[:-1], len(self.prompt))
        try:
            if self.cwd is not None:
                result = self._child.run(argv, env, cwd=self.cwd, keep_stdout=True)
            else:
                with tempfile.TemporaryDirectory(prefix="iflow-agent-") as tmp:
                    result = self._child.run(argv, env, cwd=tmp, keep_stdout=True)
        except FileNotFoundError as exc:
            raise AirflowException(
                f"the agent command was not found: {argv[0]!r} (from [iflow] agent_command = "
                f"{settings.agent_command!r}); {INSTALL_HINT}"
            ) from exc
        except PermissionError as exc:
            raise AirflowException(
                f"the agent command {argv[0]!r} (from [iflow] agent_command) is not executable: {exc}"
            ) from exc
        except OSError as exc:
            message = too_big_message(argv, env, exc)
            if message is None:
                raise
            raise AirflowException(f"agent of task {self.task_id!r}: {message}") from exc
        if result.returncode != 0:
            raise AirflowException(failure_message(f"agent {argv[0]!r} of task {self.task_id!r}", result))
        return result.stdout.strip()

    def on_kill(self) -> None:
        if self._child is not None:
            self._child.terminate()
