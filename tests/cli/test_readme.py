"""The README's mapping table names every key of the file format (the models are the source of truth)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from iflow_airflow.schema import models
from iflow_airflow.schema.validate import _item_type, _unwrap

README = Path(__file__).resolve().parents[2] / "README.md"
CONTAINERS = {"resources": "resources.<name>", "task_types": "task_types.<type>", "params": "workflow.params.<p>",
              "tasks": "workflow.tasks[]"}


def key_paths(model: type[BaseModel], prefix: str, seen: frozenset = frozenset()) -> list[tuple[str, str]]:
    """(parent path as written in the README, leaf key) for every field, recursively.

    A model met again below itself (a group's ``tasks:`` holds tasks) is not walked twice."""
    out = []
    for name, field in model.model_fields.items():
        out.append((prefix, name))
        path = f"{prefix}.{name}" if prefix else name
        inner = _unwrap(field.annotation) or _unwrap(_item_type(field.annotation) or object)
        if name in CONTAINERS:
            path = CONTAINERS[name]
        if inner and name not in ("task_types", "params") and inner[0] not in seen:
            out.extend(key_paths(inner[0], path, seen | {model}))
    return out


def mapping_rows() -> list[str]:
    text = README.read_text()
    section = text.split("## YAML -> Airflow mapping", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")]


def test_every_model_key_is_in_the_mapping_table():
    rows = mapping_rows()
    missing = []
    for parent, leaf in key_paths(models.WorkflowFile, ""):
        full = f"{parent}.{leaf}" if parent else leaf
        ok = any(f"`{full}" in row or (parent and f"`{parent}" in row and re.search(rf"\b{leaf}\b", row))
                 for row in rows)
        if not ok:
            missing.append(full)
    assert missing == []


def test_mapping_table_names_no_key_the_models_lack():
    known = {f"{p}.{k}" if p else k for p, k in key_paths(models.WorkflowFile, "")}
    first_cells = [row.split("|")[1] for row in mapping_rows()[2:]]
    named = {m for cell in first_cells for m in re.findall(r"`([a-z_]+(?:\.[a-z_<>\[\]]+)+)", cell)}
    unknown = {n for n in named if n not in known | set(CONTAINERS.values()) and not n.endswith(".*")}
    assert unknown == set()


def test_configuration_table_is_every_iflow_option_with_its_default():
    """The `[iflow]` table lists exactly settings.DEFAULTS, with the shipped defaults."""
    from iflow_airflow.settings import DEFAULTS

    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \|", section, re.M)}
    assert set(rows) == set(DEFAULTS)
    for key, default in DEFAULTS.items():
        cell = rows[key]
        assert (f"`{default}`" in cell) if default else cell.startswith("(empty"), (key, cell)


# --- every command of the README, as written --------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import zipfile  # noqa: E402

import pytest  # noqa: E402

REPO = README.parent
VENV_BIN = Path(sys.executable).parent
COMMAND_START = ("iflow-airflow ", "make ", "pip install", "docker compose", "python benchmarks/", "pytest ")
#: README commands this file does not run, and what runs them instead (a new one must be added here).
RUN_ELSEWHERE = {
    "make run": "tests/e2e/test_make_run.py (scripts/run-standalone under signals), test_seed_demo_agent.py",
    "make test": "the suite itself",
    "pytest -m distributed tests/distributed -s": "the distributed suite",
    "docker compose build && docker compose up airflow-init && docker compose up -d": "no Docker here (CI)",
    "pip install -e '.[bench]'": "benchmarks only",
    "docker compose": "no Docker here (CI); the compose settings are checked by tests/distributed",
    "make setup": "the virtualenv every test runs in",
    "make test-fast": "the suite itself",
    "iflow-airflow sync-pools": "tests/airflow/test_sync_pools_cli.py (needs a migrated database)",
    "pytest tests/e2e/test_bad_edit.py -s": "part of the suite (e2e), with its figures printed",
    "pytest tests/e2e/test_git_bundle.py -s": "part of the suite (e2e), with its figures printed",
    "pytest tests/unit/schema/test_fuzz.py -k attacks -s": "part of the suite (unit), with its figures printed",
}


def readme_commands() -> list[str]:
    """Every concrete command the README shows: inline code and lines of ``bash`` blocks,
    less the CLI table's synopses (``PATH...``, ``[RUN_ID]``) and benchmark invocations."""
    text = README.read_text()
    found: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        found += [line.split("#")[0].strip() for line in block.splitlines()]
    found += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    commands = []
    for cmd in found:
        if not cmd.startswith(COMMAND_START) or cmd.startswith("python benchmarks/"):
            continue
        if re.search(r"\b[A-Z]{3,}\b|\[|\.\.\.", cmd):  # a synopsis, not a command
            continue
        if cmd not in commands:
            commands.append(cmd)
    return commands


def plain_shell(tmp_path: Path) -> dict[str, str]:
    """A new user's shell after `source .venv/bin/activate`: no Airflow settings at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    return env


def run_as_written(cmd: str, tmp_path: Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=plain_shell(tmp_path), capture_output=True, text=True,
                          timeout=600)


def test_the_readme_commands_are_known():
    """Each README command is run below or named in RUN_ELSEWHERE (nothing slips by untested)."""
    offline = [c for c in readme_commands() if c.startswith(("iflow-airflow validate", "iflow-airflow explain",
                                                            "iflow-airflow schema"))]
    rest = [c for c in readme_commands() if c not in offline and not c.startswith(("make dist", "pip install dist/"))]
    assert "iflow-airflow validate dags/" in offline and "iflow-airflow explain billing.yaml" in offline
    assert sorted(set(rest) - set(RUN_ELSEWHERE)) == []


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if c.startswith("iflow-airflow ")
                                 and "billing.yaml" not in c])
def test_each_cli_command_works_as_written_on_the_shipped_files(cmd, tmp_path):
    out = run_as_written(cmd, tmp_path)
    assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"
    if cmd == "iflow-airflow validate dags/":
        shipped = [p for p in (REPO / "dags").glob("*.yaml") if p.name != "iflow.defaults.yaml"]
        assert out.stdout.splitlines()[-1] == f"{len(shipped)} files checked, 0 with problems"
    if cmd.startswith("iflow-airflow schema") and "--path" not in cmd:
        assert json.loads(out.stdout)["additionalProperties"] is False


def test_the_readme_example_workflow_validates(tmp_path):
    block = re.search(r"## Writing a workflow\n\n```yaml\n(.*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "nightly_etl.yaml").write_text(block)
    out = run_as_written("iflow-airflow validate nightly_etl.yaml", tmp_path, cwd=tmp_path)
    assert out.returncode == 0, out.stdout
    assert "OK   nightly_etl.yaml: workflow nightly_etl, 3 tasks, 1 resource, 0 conflicts" in out.stdout


def test_the_worked_example_explains_as_the_readme_says(tmp_path):
    """The two files sharing `db` (README, "A worked example"): `explain billing.yaml` shows what it says."""
    (tmp_path / "iflow.defaults.yaml").write_text("resources: {db: 1}\n")
    (tmp_path / "billing.yaml").write_text("workflow:\n  name: billing\n  tasks:\n    - {id: close_books, "
                                           "priority: critical, resource: db, command: 'true'}\n")
    (tmp_path / "reports.yaml").write_text("workflow:\n  name: reports\n  tasks:\n    - {id: refresh, "
                                           "priority: low, resource: db, command: 'true'}\n")
    text = README.read_text()
    assert "`iflow-airflow explain billing.yaml` shows `close_books  critical(5)  5000100" in text
    out = run_as_written("iflow-airflow explain billing.yaml", tmp_path, cwd=tmp_path)
    assert re.search(r"close_books\s+critical\(5\)\s+5000100\s.*iflow_db x1", out.stdout), out.stdout
    refresh = run_as_written("iflow-airflow explain reports.yaml", tmp_path, cwd=tmp_path)
    assert re.search(r"refresh\s+low\(2\)\s+2000100\s", refresh.stdout) and "`refresh` gets `2000100`" in text


def test_make_dist_builds_the_wheel_the_readme_installs(tmp_path):
    """`make dist`, then the README's `pip install dist/...whl` (into a target folder here): the
    installed package carries the schemas, the plugin's files and the demo agent."""
    install = next(c for c in readme_commands() if c.startswith("pip install dist/"))
    out = run_as_written("make dist", tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    wheel = REPO / install.split()[-1]
    assert wheel.is_file(), sorted(p.name for p in (REPO / "dist").iterdir())
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"iflow_airflow/schema/workflow.schema.json", "iflow_airflow/schema/defaults.schema.json",
            "iflow_airflow/runtime/plugin/static/iflow.js", "iflow_airflow/examples/demo_agent.py"} <= names
    target = tmp_path / "site"
    out = run_as_written(f"{install} --no-deps --target {target}", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    probe = ("from iflow_airflow.schema import published; import json; "
             "print(json.loads(published.packaged_text('defaults'))['title'], published.packaged_path('workflow'))")
    got = subprocess.run([sys.executable, "-c", probe], env={**plain_shell(tmp_path), "PYTHONPATH": str(target)},
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert got.stdout.startswith("iflow defaults file (iflow.defaults.yaml) " + str(target)), got.stderr
