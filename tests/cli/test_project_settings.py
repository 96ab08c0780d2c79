"""The project's ``config/iflow.cfg``: one file grants the shipped examples their modules, for the CLI too.

Run as a person would, in a plain shell: the ``iflow-airflow`` command in a fresh process, no
``AIRFLOW__IFLOW__*`` variables, an empty Airflow home.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CALLS = "workflow:\n  name: w\n  tasks:\n    - {id: a, callable: 'iflow_airflow.examples.callables:add', args: [1, 2]}\n"
GRANT = "[iflow]\nallowed_modules = iflow_airflow.examples\n"


def plain_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONFIG"))}
    env.update(AIRFLOW_HOME=str(home), **extra)
    return env


def validate(project: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("iflow-airflow")
    return subprocess.run([str(cli), "validate", *args], cwd=project, env=plain_env(project / "home", **extra),
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "iflow_dags.py").write_text((REPO / "dags" / "iflow_dags.py").read_text())
    (tmp_path / "dags" / "w.yaml").write_text(CALLS)
    return tmp_path


def test_shipped_dags_validate_in_a_plain_shell_from_the_repo_root():
    out = validate(REPO, "dags/")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK   release_pipeline.yaml" in out.stdout


def test_without_a_grant_the_error_names_the_file_and_the_line_to_add(project: Path):
    out = validate(project, "dags/")
    assert out.returncode == 1
    cfg = project / "config" / "iflow.cfg"
    assert ("module 'iflow_airflow.examples.callables' is not in the allowed modules ([iflow] allowed_modules is "
            "empty; from the default") in out.stdout
    assert (f"add `allowed_modules = iflow_airflow.examples.callables` under [iflow] in {cfg}, or set the "
            "environment variable AIRFLOW__IFLOW__ALLOWED_MODULES=iflow_airflow.examples.callables") in out.stdout


def test_the_project_file_beside_the_dags_folder_grants(project: Path):
    (project / "config").mkdir()
    (project / "config" / "iflow.cfg").write_text(GRANT)
    out = validate(project, "dags/")
    assert out.returncode == 0, out.stdout
    # a single file inside the dags folder is checked with its deployment's settings too
    assert validate(project, "dags/w.yaml").returncode == 0


def test_the_environment_wins_and_the_error_says_so(project: Path):
    (project / "config").mkdir()
    (project / "config" / "iflow.cfg").write_text(GRANT)
    out = validate(project, "dags/", AIRFLOW__IFLOW__ALLOWED_MODULES="other")
    assert out.returncode == 1
    assert ("from the environment variable AIRFLOW__IFLOW__ALLOWED_MODULES); to allow it, set the environment "
            "variable AIRFLOW__IFLOW__ALLOWED_MODULES=other,iflow_airflow.examples.callables") in out.stdout


def test_a_settings_file_inside_the_dags_folder_grants_nothing(project: Path):
    """Whoever writes workflow files cannot write the deployment's settings next to them."""
    for folder in (project / "dags" / "config", project / "dags"):
        folder.mkdir(exist_ok=True)
        (folder / "iflow.cfg").write_text(GRANT)
    (project / "dags" / "sub").mkdir()
    (project / "dags" / "sub" / "config").mkdir()
    (project / "dags" / "sub" / "config" / "iflow.cfg").write_text(GRANT)
    (project / "dags" / "w.yaml").rename(project / "dags" / "sub" / "w.yaml")
    for target in ("dags/", "dags/sub", "dags/sub/w.yaml"):
        out = validate(project, target)
        assert out.returncode == 1 and "is not in the allowed modules" in out.stdout, (target, out.stdout)
