"""Helpers for the front-end (plan layer) unit tests: compile YAML text from a temp folder.

Settings are always passed explicitly so the environment (airflow.cfg,
AIRFLOW__IFLOW__*) never changes a result. ``compile_folder`` imports Airflow's
configuration in-process (for the ``.airflowignore`` matcher), so AIRFLOW_HOME
points at a throw-away folder unless the caller set one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="iflow_unit_airflow_home_")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from tree_files import put  # noqa: E402

from iflow_airflow.compiler import Compiled, compile_file  # noqa: E402
from iflow_airflow.plan.ir import WorkflowPlan  # noqa: E402
from iflow_airflow.settings import IflowSettings  # noqa: E402

SETTINGS = IflowSettings(allowed_modules=("iflow_airflow.examples",))


def write(folder: Path, text: str | bytes, name: str = "wf.yaml") -> Path:
    return put(folder, name, text)


def compile_text(folder: Path, text: str | bytes, name: str = "wf.yaml", settings: IflowSettings = SETTINGS,
                 explicit: bool = True, root: Path | None = None) -> Compiled | None:
    return compile_file(write(folder, text, name), root=root, settings=settings, explicit=explicit)


def plan_of(folder: Path, text: str, **kw) -> WorkflowPlan:
    c = compile_text(folder, text, **kw)
    assert c is not None
    assert c.error is None, c.error.render()
    assert c.plan is not None
    return c.plan


def problems_of(folder: Path, text: str | bytes, **kw) -> set[tuple[str, int | None, int | None, str]]:
    """The exact (key_path, line, column, code) set of a broken file."""
    c = compile_text(folder, text, **kw)
    assert c is not None
    assert c.plan is None and c.error is not None, "expected the file to be rejected"
    return {(p.key_path, p.line, p.column, p.code) for p in c.error.problems}


def error_of(folder: Path, text: str | bytes, **kw):
    c = compile_text(folder, text, **kw)
    assert c is not None and c.error is not None, "expected the file to be rejected"
    return c.error


def tasks_yaml(*tasks: str) -> str:
    """A minimal workflow around some flow-style task mappings."""
    lines = ["workflow:", "  name: wf", "  tasks:"] + [f"    - {t}" for t in tasks]
    return "\n".join(lines) + "\n"



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
