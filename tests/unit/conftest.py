"""The ``front`` fixture: the compile helpers of compile_helpers.py bound to a test's temp folder.

Settings are always passed explicitly so the environment (airflow.cfg,
AIRFLOW__IFLOW__*) never changes a result. ``compile_folder`` imports Airflow's
configuration in-process (for the ``.airflowignore`` matcher), so AIRFLOW_HOME
points at a throw-away folder unless the caller set one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from compile_helpers import (  # noqa: F401  (re-exported: older test files import them from here)
    SETTINGS,
    compile_text,
    error_of,
    plan_of,
    problems_of,
    tasks_yaml,
    write,
)

from iflow_airflow.compiler import Compiled
from iflow_airflow.plan.ir import WorkflowPlan


class Front:
    """The helpers above, bound to one test's temp folder (use the ``front`` fixture)."""

    SETTINGS = SETTINGS

    def __init__(self, folder: Path):
        self.folder = folder

    def write(self, text: str | bytes, name: str = "wf.yaml") -> Path:
        return write(self.folder, text, name)

    def compile(self, text: str | bytes, name: str = "wf.yaml", **kw) -> Compiled | None:
        return compile_text(self.folder, text, name, **kw)

    def plan(self, text: str, **kw) -> WorkflowPlan:
        return plan_of(self.folder, text, **kw)

    def problems(self, text: str | bytes, **kw) -> set[tuple[str, int | None, int | None, str]]:
        return problems_of(self.folder, text, **kw)

    def error(self, text: str | bytes, **kw):
        return error_of(self.folder, text, **kw)

    @staticmethod
    def tasks_yaml(*tasks: str) -> str:
        return tasks_yaml(*tasks)


@pytest.fixture
def front(tmp_path: Path) -> Front:
    return Front(tmp_path)
