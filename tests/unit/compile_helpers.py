"""Compile YAML text from a temp folder, for the plan-layer unit tests (and their ``front`` fixture).

A module of its own, not conftest.py: test files import these by name, and
``from conftest import ...`` would find whichever conftest pytest loaded last.
Settings are always passed explicitly so the environment (airflow.cfg,
AIRFLOW__IFLOW__*) never changes a result. ``compile_folder`` imports Airflow's
configuration in-process (for the ``.airflowignore`` matcher), so AIRFLOW_HOME
points at a throw-away folder unless the caller set one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
