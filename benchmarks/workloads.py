"""The benchmark's workflows, written three ways: iflow YAML, dag-factory YAML, hand-written Python.

Every form describes the same DAGs: the seed example's dependency shape
(``analyze -> design -> {frontend, backend} -> integrate -> test``, priorities
high/medium), repeated block after block for more than six tasks (each block's
first task depends on the previous block's last), with a bash command per
task, retries, exponential retry delay, a per-attempt timeout and absolute
priority weights. The iflow file states only what a person would write (the
seed's header blocks plus a command per task); the values the other two forms
spell out (weights, retries, delays, timeouts) are taken from the iflow plan
of that file, so all three forms carry the very same numbers. ``fingerprint``
in ``_bag_child`` checks that the built DAGs agree.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

# (id, positions within the block it depends on, priority) — the seed example's shape.
SHAPE: tuple[tuple[str, tuple[int, ...], str, str], ...] = (
    ("analyze_requirements", (), "high", "analysis"),
    ("design_architecture", (0,), "high", "design"),
    ("implement_frontend", (1,), "medium", "development"),
    ("implement_backend", (1,), "medium", "development"),
    ("integrate_systems", (2, 3), "high", "integration"),
    ("test_system", (4,), "high", "testing"),
)
FORMS = ("python", "dagfactory", "iflow")
BASH_OPERATOR = "airflow.providers.standard.operators.bash.BashOperator"

HEADER = """\
orchestration:
  enabled: true
  mode: intelligent
  max_concurrent_tasks: 10
  task_timeout: 300
  retry_attempts: 3
scheduling:
  strategy: priority_based
  priority_levels: 5
  load_threshold: 0.8
  auto_scaling: true
coordination:
  sync_mode: event_driven
  conflict_resolution: priority
  state_persistence: true
  communication_timeout: 60
"""

IFLOW_LOADER = '''\
"""Benchmark loader: every iflow workflow file in this folder becomes a DAG (airflow dag)."""

from iflow_airflow.importer import load_workflows

load_workflows(globals())
'''

DAGFACTORY_LOADER = '''\
"""Benchmark loader: every dag-factory YAML file in this folder becomes a DAG (airflow dag)."""

import os

from dagfactory import load_yaml_dags

_here = os.path.dirname(os.path.abspath(__file__))
load_yaml_dags(globals_dict=globals(), dags_folder=_here, defaults_config_path=_here)
'''


@dataclass(frozen=True)
class Task:
    task_id: str
    upstream: tuple[str, ...]
    priority: str
    type: str


@dataclass(frozen=True)
class Expected:
    """What one task carries in every form (taken from the iflow plan)."""

    task_id: str
    upstream: tuple[str, ...]
    command: str
    priority_weight: int
    retries: int
    retry_delay: float
    backoff: float
    timeout: float | None


def shape(n_tasks: int) -> list[Task]:
    """``n_tasks`` tasks: the seed's six-task shape, block after block, chained."""
    tasks: list[Task] = []
    multi = n_tasks > len(SHAPE)
    for i in range(n_tasks):
        block, pos = divmod(i, len(SHAPE))
        name = lambda b, p: f"{SHAPE[p][0]}_{b}" if multi else SHAPE[p][0]  # noqa: E731
        _, deps, prio, kind = SHAPE[pos]
        upstream = [name(block, d) for d in deps]
        if pos == 0 and block > 0:
            upstream.append(name(block - 1, len(SHAPE) - 1))
        tasks.append(Task(name(block, pos), tuple(upstream), prio, kind))
    return tasks


def dag_id(index: int, n_tasks: int) -> str:
    return f"bench_{n_tasks}t_{index:04d}"


def iflow_text(name: str, tasks: list[Task]) -> str:
    lines = [HEADER, "workflow:", f"  name: {name}", "  description: full-stack development benchmark workflow",
             "  tags: [bench]", "  tasks:"]
    for t in tasks:
        deps = ", ".join(t.upstream)
        lines += [f"    - id: {t.task_id}", f"      type: {t.type}", f"      dependencies: [{deps}]",
                  f"      priority: {t.priority}", f"      command: echo {t.task_id}"]
    return "\n".join(lines) + "\n"


def expected_tasks(n_tasks: int) -> list[Expected]:
    """Compile one iflow file of this size and read each task's values off the plan."""
    import tempfile

    from iflow_airflow.compiler import compile_file
    from iflow_airflow.plan.ir import CommandAction
    from iflow_airflow.settings import IflowSettings

    with tempfile.TemporaryDirectory(prefix="iflow-bench-plan-") as tmp:
        path = Path(tmp) / "wf.yaml"
        path.write_text(iflow_text(dag_id(0, n_tasks), shape(n_tasks)), encoding="utf-8")
        c = compile_file(path, settings=IflowSettings(), explicit=True)
    assert c is not None and c.plan is not None, c.error.render() if c and c.error else "not compiled"
    out = []
    for t in c.plan.tasks:
        assert isinstance(t.action, CommandAction)
        out.append(Expected(t.task_id, t.upstream, t.action.command, t.priority_weight, t.retries, t.retry_delay,
                            2.0 if t.exponential_backoff else 0.0, t.timeout))
    return out


def dagfactory_text(name: str, tasks: list[Expected]) -> str:
    """dag-factory 1.x YAML (timedeltas as ``__type__`` objects, tasks as a list)."""
    t0 = tasks[0]
    out = [
        f"{name}:",
        "  default_args:",
        "    owner: iflow",
        "    start_date: 2026-01-01",
        f"    retries: {t0.retries}",
        f"    retry_delay: {{__type__: datetime.timedelta, seconds: {t0.retry_delay:g}}}",
        f"    retry_exponential_backoff: {t0.backoff}",
        f"    execution_timeout: {{__type__: datetime.timedelta, seconds: {t0.timeout:g}}}",
        "  schedule: null",
        "  catchup: false",
        "  max_active_tasks: 10",
        "  description: full-stack development benchmark workflow",
        "  tags: [bench]",
        "  tasks:",
    ]
    for t in tasks:
        deps = ", ".join(t.upstream)
        out += [f"    - task_id: {t.task_id}", f"      operator: {BASH_OPERATOR}",
                f"      bash_command: {t.command}", f"      priority_weight: {t.priority_weight}",
                "      weight_rule: absolute", f"      dependencies: [{deps}]"]
    return "\n".join(out) + "\n"


def python_text(name: str, tasks: list[Expected]) -> str:
    """A DAG file as a person would write it: one operator per task, then the dependencies."""
    t0 = tasks[0]
    head = textwrap.dedent(f'''\
        """{name}: full-stack development benchmark workflow."""

        from datetime import timedelta

        import pendulum
        from airflow.providers.standard.operators.bash import BashOperator
        from airflow.sdk import DAG

        default_args = {{
            "owner": "iflow",
            "retries": {t0.retries},
            "retry_delay": timedelta(seconds={t0.retry_delay:g}),
            "retry_exponential_backoff": {t0.backoff},
            "execution_timeout": timedelta(seconds={t0.timeout:g}),
        }}

        with DAG(
            dag_id="{name}",
            description="full-stack development benchmark workflow",
            schedule=None,
            start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
            catchup=False,
            max_active_tasks=10,
            tags=["bench"],
            default_args=default_args,
        ):
        ''')
    body = []
    for t in tasks:
        body.append(f"    {t.task_id} = BashOperator(task_id={t.task_id!r}, bash_command={t.command!r}, "
                    f"priority_weight={t.priority_weight}, weight_rule=\"absolute\")")
    for t in tasks:
        for u in t.upstream:
            body.append(f"    {u} >> {t.task_id}")
    return head + "\n".join(body) + "\n"


def write_form(form: str, folder: Path, n_files: int, n_tasks: int, expected: list[Expected] | None = None) -> None:
    """(Re)write ``folder`` with ``n_files`` DAGs of ``n_tasks`` tasks in ``form``."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    expected = expected or expected_tasks(n_tasks)
    tasks = shape(n_tasks)
    if form == "iflow":
        (folder / "iflow_dags.py").write_text(IFLOW_LOADER, encoding="utf-8")
        for i in range(n_files):
            name = dag_id(i, n_tasks)
            (folder / f"{name}.yaml").write_text(iflow_text(name, tasks), encoding="utf-8")
    elif form == "dagfactory":
        (folder / "dagfactory_dags.py").write_text(DAGFACTORY_LOADER, encoding="utf-8")
        for i in range(n_files):
            name = dag_id(i, n_tasks)
            (folder / f"{name}.yaml").write_text(dagfactory_text(name, expected), encoding="utf-8")
    elif form == "python":
        for i in range(n_files):
            name = dag_id(i, n_tasks)
            (folder / f"{name}.py").write_text(python_text(name, expected), encoding="utf-8")
    else:
        raise ValueError(form)
    meta = {"form": form, "files": n_files, "tasks": n_tasks,
            "expected": [e.__dict__ | {"upstream": list(e.upstream)} for e in expected]}
    (folder.parent / f"{folder.name}.json").write_text(json.dumps(meta), encoding="utf-8")


def expected_fingerprint(n_files: int, n_tasks: int, expected: list[Expected]) -> list:
    """The per-DAG summary every form must produce (see ``_bag_child.summarise``)."""
    tasks = sorted([e.task_id, sorted(e.upstream), e.command, e.priority_weight, "absolute", e.retries,
                    e.retry_delay, e.backoff, e.timeout, "iflow"] for e in expected)
    return [[dag_id(i, n_tasks), tasks] for i in range(n_files)]


def tree_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts)


if __name__ == "__main__":  # pragma: no cover - manual look at the generated text
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    exp = expected_tasks(n)
    print(iflow_text(dag_id(0, n), shape(n)))
    print(dagfactory_text(dag_id(0, n), exp))
    print(python_text(dag_id(0, n), exp))
