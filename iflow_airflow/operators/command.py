"""``command:`` tasks: run a shell command with ``bash -c``; run values only via the environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from iflow_airflow.operators.base import IflowProcessOperator, result_kwargs


class IflowCommandOperator(IflowProcessOperator):
    """Run ``command`` as ``["bash", "-c", command]``.

    Nothing is Jinja-rendered (``template_fields = ()``): run params and upstream
    results reach the command only as ``IFLOW_PARAM_*`` / ``IFLOW_RESULT_*``
    environment variables, so no run value ever becomes shell text. The result
    is the last non-empty line of stdout (kept as XCom only when
    ``persist_result``). ``cwd`` None runs in a fresh temporary directory, like
    Airflow's BashOperator, so tasks do not litter the worker's working folder.
    """

    ui_color = "#f0ede4"

    def __init__(self, *, command: str, env: Mapping[str, str] | None = None, cwd: str | None = None,
                 result_tasks: Sequence[str] = (), persist_result: bool = True, iflow_item: Any = None,
                 mapped_results: Mapping[str, int | str] | None = None, **kwargs: Any) -> None:
        super().__init__(**result_kwargs(kwargs, persist_result))
        self._keep_process(env, cwd, result_tasks, persist_result, iflow_item, mapped_results)
        if not isinstance(command, str) or not command.strip():
            raise ValueError(f"task {self.task_id!r}: command must be a non-empty string")
        self.command = command

    def execute(self, context: Any) -> str | None:
        self.log.info("Running command with bash -c: %s", self.command)
        result = self.run_process(context, ["bash", "-c", self.command], what=f"command of task {self.task_id!r}")
        return result.last_stdout_line()
