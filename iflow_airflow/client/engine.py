"""The engine API of the iflow design: run a workflow definition from Python.

    from iflow_airflow import WorkflowEngine

    result = WorkflowEngine().run_workflow("etl", {"tasks": [{"id": "a", "command": "echo hi"}]})
    result.state                    # "success" | "failed"
    result.tasks["a"].result        # "hi"  (the last line of output; a callable's return value)
    result.figures["total_time"]    # the monitoring figures of the run (iflow_airflow.runtime.figures)

    result = await WorkflowEngine().execute_workflow("etl", definition)   # the same, awaitable

``definition`` is the iflow design's dict form: the ``workflow`` block's contents
(``description``, ``tasks``, ...) with the other blocks (``orchestration``,
``scheduling``, ``coordination``, ``resources``, ``task_types``) optional; both
``{"workflow": {...}, "orchestration": {...}}`` and a bare ``{"description": ...,
"tasks": [...]}`` (other blocks may sit beside the bare contents) are accepted.
``name`` sets ``workflow.name``. It is validated by the same models and plan as
a file (problems raise :class:`~iflow_airflow.errors.WorkflowFileError`, with key
paths; lines refer to the YAML the engine writes, ``WorkflowFileError.source``).

Three modes:

* **Embedded** (default): a private Airflow (scheduler with LocalExecutor,
  dag-processor, triggerer, api-server on 127.0.0.1 and a free port; SQLite in a
  temporary home or ``database_url``), started on the first call and kept warm
  (:mod:`iflow_airflow.client.embedded`). Pools, priorities, concurrency caps,
  retries, timeouts, deferrable waits and events behave as in a deployment,
  because it is one; concurrent calls (``asyncio.gather``) share it. Use the
  engine as a context manager (or call :meth:`WorkflowEngine.close`): that
  stops every process and removes the folder; interpreter exit does the same,
  and the Airflow's supervisor ends it by itself if the caller is killed.
* **Test** (``mode="test"``): a private Airflow home with the definition, and
  ``dag.test()`` in a subprocess (Airflow reads its configuration when imported,
  so it never runs in the caller's process). Tasks run one after another;
  pools, priorities and ``max_concurrent_tasks`` are ignored as in every
  ``dag.test()``. No server processes; good for a quick check of one workflow.
* **Remote**: ``WorkflowEngine(url=..., username=..., password=...)`` triggers the
  workflow of that name deployed on a running Airflow (REST API v2, see
  :mod:`iflow_airflow.client.rest`) and waits for the run; a name that is not deployed
  raises :class:`~iflow_airflow.client.rest.WorkflowNotDeployedError`. The deployed
  file is what runs; a ``definition`` given as well is only validated.

A failed run's ``WorkflowResult.error`` is the first failed task's error
(``TaskResult.error``, with ``TaskResult.log_tail``; embedded mode); a definition
with problems raises :class:`~iflow_airflow.errors.WorkflowFileError` before
anything starts; an embedded Airflow that cannot start raises
:class:`~iflow_airflow.client.embedded.EngineStartError` with the reason.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from iflow_airflow.errors import Problem, WorkflowFileError
from iflow_airflow.plan.ir import WorkflowPlan
from iflow_airflow.runtime import figures
from iflow_airflow.settings import DEFAULTS, IflowSettings

TOP_BLOCKS = ("orchestration", "scheduling", "coordination", "resources", "task_types")
PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def _installed() -> bool:
    """Installed as a distribution? (Then the source tree must not go on PYTHONPATH: its egg-info
    would make Airflow see the plugin's entry point twice.)"""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("iflow-airflow")
    except PackageNotFoundError:
        return False
    return True
LOADER = ('"""iflow engine: every iflow workflow file here becomes an Airflow DAG."""\n'
          "from iflow_airflow.importer import load_workflows\n\nload_workflows(globals())\n")
MIGRATE_TIMEOUT = 600.0
LOG_TAIL = 20_000


class EngineError(RuntimeError):
    """The private Airflow could not be set up or did not run the workflow (message has the log tail)."""


@dataclass(frozen=True)
class TaskResult:
    """One task of a finished run."""

    task_id: str
    state: str | None  # success, failed, upstream_failed, skipped ...
    tries: int  # Airflow's try_number (0: never started)
    duration: float | None  # seconds of the last try
    result: Any = None  # the kept result (XCom return_value); None with state_persistence: false
    start_date: datetime | None = None
    end_date: datetime | None = None
    error: str | None = None  # embedded/remote, failed tasks: "Type: message" of the error the log records
    log_tail: str = field(default="", repr=False)  # embedded/remote, failed tasks: the last lines of its log


@dataclass(frozen=True)
class WorkflowResult:
    """The outcome of one run: ``state`` is ``"success"`` or ``"failed"``."""

    workflow: str
    run_id: str
    state: str
    tasks: dict[str, TaskResult]
    figures: dict[str, Any]  # iflow_airflow.runtime.figures.workflow_figures() of this run
    mode: str  # "embedded" | "test" | "remote"
    log: str = field(default="", repr=False)  # test: the dag.test() output's tail; else the failed tasks' log tails

    @property
    def ok(self) -> bool:
        return self.state == "success"

    @property
    def results(self) -> dict[str, Any]:
        """``{task_id: result}`` of the tasks that kept one."""
        return {t: r.result for t, r in self.tasks.items() if r.result is not None}

    @property
    def error(self) -> str | None:
        """The error of the first failed task (by start time) that recorded one; None otherwise."""
        failed = sorted((r for r in self.tasks.values() if r.state == "failed" and r.error),
                        key=lambda r: r.start_date or datetime.max.replace(tzinfo=timezone.utc))
        return failed[0].error if failed else None


# --- definition -> validated YAML ----------------------------------------------------------


def _shape_error(name: str, message: str, expected: str) -> WorkflowFileError:
    return WorkflowFileError(f"{name or 'workflow'} (definition)",
                             [Problem(f"{name or 'workflow'} (definition)", message, ("workflow",), None, None,
                                      expected, "shape")])


def workflow_document(name: str | None, definition: Mapping[str, Any]) -> dict[str, Any]:
    """The file form ``{blocks..., "workflow": {...}}`` of a definition, with ``name`` set."""
    if not isinstance(definition, Mapping):
        raise _shape_error(name or "", f"a definition must be a mapping, not {type(definition).__name__}",
                           '{"tasks": [...]} or {"workflow": {"tasks": [...]}}')
    data = copy.deepcopy(dict(definition))
    if "workflow" in data:
        wf = data.pop("workflow")
        if not isinstance(wf, Mapping):
            raise _shape_error(name or "", f"`workflow` must be a mapping (got {type(wf).__name__})",
                               '{"workflow": {"tasks": [...]}}')
        blocks, wf = data, dict(wf)
    else:
        blocks = {k: data.pop(k) for k in TOP_BLOCKS if k in data}
        wf = data
    if name:
        wf = {"name": name, **{k: v for k, v in wf.items() if k != "name"}}
    return {**blocks, "workflow": wf}


def definition_yaml(name: str | None, definition: Mapping[str, Any]) -> str:
    """The YAML text the engine validates and writes into its dags folder."""
    document = workflow_document(name, definition)
    try:
        body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    except yaml.YAMLError as exc:
        raise _shape_error(name or "", f"the definition is not plain data (YAML cannot hold it): {exc}",
                           "str, int, float, bool, None, dates, lists and dicts only") from None
    return f"# written by iflow_airflow.client.engine for workflow {document['workflow'].get('name')!r}\n{body}"


def engine_settings(allowed_modules: tuple[str, ...] | list[str] | str | None = None) -> IflowSettings:
    """``[iflow]`` settings from ``AIRFLOW__IFLOW__*`` (never from an airflow.cfg: no Airflow import here)."""
    env = {k: os.environ.get(f"AIRFLOW__IFLOW__{k.upper()}", v) for k, v in DEFAULTS.items()}
    if allowed_modules is None:
        allowed_modules = env["allowed_modules"]
    if isinstance(allowed_modules, str):
        allowed_modules = [p.strip() for p in allowed_modules.replace("\n", ",").split(",")]
    return IflowSettings(allowed_modules=tuple(p for p in allowed_modules if p),
                         agent_command=env["agent_command"], max_file_bytes=int(env["max_file_bytes"]),
                         pool_prefix=env["pool_prefix"])


def validate_definition(name: str | None, definition: Mapping[str, Any],
                        settings: IflowSettings | None = None) -> tuple[WorkflowPlan, str]:
    """(plan, YAML text) of a definition; :class:`WorkflowFileError` with every problem otherwise."""
    from iflow_airflow.compiler import compile_document
    from iflow_airflow.source import reader as yaml_source

    text = definition_yaml(name, definition)
    wf_name = workflow_document(name, definition)["workflow"].get("name")
    display = f"{wf_name if isinstance(wf_name, str) and wf_name else 'workflow'}.yaml"
    try:
        plan = compile_document(yaml_source.parse(display, text), [], settings or engine_settings())
    except WorkflowFileError as exc:
        exc.source = text  # type: ignore[attr-defined]  # the lines of the problems are in this text
        raise
    return plan, text


# --- rows for the figures -------------------------------------------------------------------


def _dt(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _task_row(workflow: str, run_id: str, t: Mapping[str, Any]) -> figures.TaskRow:
    return figures.TaskRow(
        dag_id=workflow, run_id=run_id, task_id=t["task_id"], state=t.get("state"),
        queued_dttm=_dt(t.get("queued_dttm", t.get("queued_when"))), start_date=_dt(t.get("start_date")),
        end_date=_dt(t.get("end_date")), try_number=int(t.get("try_number") or 0), pool=t.get("pool"),
        pool_slots=int(t.get("pool_slots") or 1), priority_weight=t.get("priority_weight"),
        scheduled_dttm=_dt(t.get("scheduled_dttm", t.get("scheduled_when"))),
        map_index=int(t.get("map_index", -1) if t.get("map_index") is not None else -1))


def _result(workflow: str, run: Mapping[str, Any], tis: list[Mapping[str, Any]], values: Mapping[str, Any],
            upstream: Mapping[str, Any], mode: str, log: str = "",
            failures: Mapping[str, tuple[str | None, str]] | None = None) -> WorkflowResult:
    """The result object from the run's and task instances' API-shaped rows; ``failures``:
    ``{task_id: (error, log tail)}`` of the failed tasks."""
    run_id = run.get("run_id") or run.get("dag_run_id")
    rows = [_task_row(workflow, run_id, t) for t in tis]
    run_row = figures.RunRow(dag_id=workflow, run_id=run_id, state=run.get("state"),
                             start_date=_dt(run.get("start_date")), end_date=_dt(run.get("end_date")),
                             queued_at=_dt(run.get("queued_at")), run_after=_dt(run.get("run_after")),
                             run_type=run.get("run_type"))
    tasks: dict[str, TaskResult] = {}
    for t, row in zip(tis, rows):
        duration = t.get("duration")
        if duration is None and row.start_date and row.end_date:
            duration = (row.end_date - row.start_date).total_seconds()
        error, log_tail = (failures or {}).get(row.task_id, (None, ""))
        tasks[row.task_id] = TaskResult(row.task_id, row.state, row.try_number,
                                        None if duration is None else round(float(duration), 3),
                                        values.get(row.task_id), row.start_date, row.end_date, error, log_tail)
    fig = figures.workflow_figures(workflow, [run_row], rows, now=datetime.now(timezone.utc),
                                   upstream={k: list(v) for k, v in upstream.items()}, total_tasks=len(upstream) or None)
    return WorkflowResult(workflow, run_id, str(run.get("state")), tasks, fig, mode, log)


# --- the engine -----------------------------------------------------------------------------


def _cleanup(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


MODES = ("embedded", "test", "remote")


class WorkflowEngine:
    """Run iflow workflow definitions in a private Airflow (default) or on a running one (``url``).

    ``mode``: ``"embedded"`` (default without ``url``: a private scheduler,
    dag-processor, triggerer and api-server, started on first use and kept warm,
    see :mod:`iflow_airflow.client.embedded`), ``"test"`` (``dag.test()`` in a
    subprocess: serial, pools and priorities ignored; quick for one-off checks)
    or ``"remote"`` (default with ``url``).
    ``allowed_modules``: the ``[iflow] allowed_modules`` for ``callable:`` tasks and
    extensions (default: ``$AIRFLOW__IFLOW__ALLOWED_MODULES``). ``env``: extra
    environment of the private Airflow (and so of the tasks). ``home``: keep
    the private Airflow there instead of a temporary folder (reused).
    ``timeout``: seconds a run may take (None: no limit). Embedded only:
    ``database_url`` (default SQLite in the home), ``port`` (default a free one),
    ``startup_timeout`` (seconds until the api-server answers), ``parse_timeout``
    (seconds until the written definition is parsed).
    """

    def __init__(self, url: str | None = None, username: str | None = None, password: str | None = None, *,
                 mode: str | None = None, allowed_modules: tuple[str, ...] | list[str] | str | None = None,
                 env: Mapping[str, str] | None = None, home: str | os.PathLike[str] | None = None,
                 timeout: float | None = None, poll_interval: float = 1.0, database_url: str | None = None,
                 port: int | None = None, startup_timeout: float = 180.0, parse_timeout: float = 120.0) -> None:
        self.mode = mode or ("remote" if url else "embedded")
        if self.mode not in MODES or (self.mode == "remote") != bool(url):
            raise ValueError(f"mode must be one of {MODES} ('remote' exactly when a url is given), not {mode!r}")
        self.url = url
        self.username = username
        self.password = password
        self.settings = engine_settings(allowed_modules)
        self.env = dict(env or {})
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._home = Path(home).resolve() if home is not None else None
        self._own_home = home is None
        self._lock = threading.Lock()
        self._migrated = False
        self._finalizer: weakref.finalize | None = None
        self._runs = 0
        self.database_url = database_url
        self.port = port
        self.startup_timeout = startup_timeout
        self.parse_timeout = parse_timeout
        self._embedded: Any = None  # client.embedded.EmbeddedAirflow, made on the first embedded run

    # --- public API -----------------------------------------------------------------------

    def run_workflow(self, name: str, definition: Mapping[str, Any] | None = None, *,
                     conf: Mapping[str, Any] | None = None) -> WorkflowResult:
        """Run the workflow and wait for it; returns the :class:`WorkflowResult`."""
        if self.url:
            if definition is not None:
                validate_definition(name, definition, self.settings)
            return self._run_remote(name, conf)
        if definition is None:
            raise ValueError("run_workflow needs a definition when no Airflow url is given")
        if self.mode == "test":
            plan, text = validate_definition(name, definition, self.settings)
            return self._run_in_process(plan, text, conf)
        from iflow_airflow.client.embedded import tag_definition

        document, tag = tag_definition(workflow_document(name, definition))
        plan, text = validate_definition(None, document, self.settings)
        return self.embedded().run(plan, text, tag, conf, timeout=self.timeout, parse_timeout=self.parse_timeout)

    async def execute_workflow(self, name: str, definition: Mapping[str, Any] | None = None, *,
                               conf: Mapping[str, Any] | None = None) -> WorkflowResult:
        """:meth:`run_workflow`, awaitable (in a worker thread). Embedded and remote runs overlap
        (``asyncio.gather``; up to the default executor's thread count); test-mode runs take turns."""
        return await asyncio.to_thread(self.run_workflow, name, definition, conf=conf)

    def validate(self, name: str, definition: Mapping[str, Any]) -> WorkflowPlan:
        """The plan of a definition, or :class:`WorkflowFileError` (nothing runs)."""
        return validate_definition(name, definition, self.settings)[0]

    def embedded(self) -> Any:
        """The :class:`~iflow_airflow.client.embedded.EmbeddedAirflow` (made, not yet started, on first use)."""
        from iflow_airflow.client.embedded import EmbeddedAirflow

        with self._lock:
            if self._embedded is None:
                own = self._home is None
                if own:
                    self._home = Path(tempfile.mkdtemp(prefix="iflow-engine-")).resolve()
                assert self._home is not None
                self._embedded = EmbeddedAirflow(self._home, self._base_env(), own_home=own, port=self.port,
                                                 database_url=self.database_url,
                                                 startup_timeout=self.startup_timeout)
            return self._embedded

    def close(self) -> None:
        """Stop the embedded Airflow (no process left) and remove the temporary folder the engine made."""
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
            if self._own_home:
                self._home = None
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        if self._own_home:
            self._home = None
            self._migrated = False

    def __enter__(self) -> WorkflowEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- remote -----------------------------------------------------------------------------

    def _run_remote(self, name: str, conf: Mapping[str, Any] | None) -> WorkflowResult:
        from iflow_airflow.client.embedded import collect
        from iflow_airflow.client.rest import AirflowRestClient

        with AirflowRestClient(self.url or "", self.username, self.password) as client:
            client.require_dag(name)
            run_id = client.trigger(name, conf)
            run = client.wait_for_run(name, run_id, timeout=self.timeout, poll=self.poll_interval)
            upstream: dict[str, list[str]] = {}
            for task in client.get(f"/api/v2/dags/{name}/tasks")["tasks"]:
                upstream.setdefault(task["task_id"], [])
                for down in task.get("downstream_task_ids") or ():
                    upstream.setdefault(down, []).append(task["task_id"])
            return collect(client, name, run, upstream, "remote")

    # --- private Airflow (embedded and test mode) ------------------------------------------

    @property
    def home(self) -> Path | None:
        """The private Airflow's home (None until the first embedded or test run)."""
        return self._home

    def _airflow_env(self) -> dict[str, str]:
        """The test-mode subprocess's environment: :meth:`_base_env` with INFO logging."""
        env = self._base_env()
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
        return env

    def _base_env(self) -> dict[str, str]:
        """The private Airflow's environment in both modes: the caller's minus every ``AIRFLOW*``
        variable, plus home, dags folder, SQLite, this engine's ``[iflow]`` settings and ``env``."""
        assert self._home is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_", "_AIRFLOW"))}
        env.update({
            "AIRFLOW_HOME": str(self._home),
            "AIRFLOW_CONFIG": str(self._home / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self._home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self._home / 'airflow.db'}",
            "AIRFLOW__IFLOW__ALLOWED_MODULES": ",".join(self.settings.allowed_modules),
            "AIRFLOW__IFLOW__AGENT_COMMAND": self.settings.agent_command,
            "AIRFLOW__IFLOW__MAX_FILE_BYTES": str(self.settings.max_file_bytes),
            "AIRFLOW__IFLOW__POOL_PREFIX": self.settings.pool_prefix,
        })
        env["PATH"] = os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH")) if p)
        env.update(self.env)
        if not _installed():  # running from a source tree: let the subprocess import it the same way
            paths = [str(PACKAGE_PARENT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
            env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        return env

    def _ensure_airflow(self) -> dict[str, str]:
        if self._home is None:
            self._home = Path(tempfile.mkdtemp(prefix="iflow-engine-")).resolve()
            self._finalizer = weakref.finalize(self, _cleanup, str(self._home))
        (self._home / "dags").mkdir(parents=True, exist_ok=True)
        loader = self._home / "dags" / "iflow_dags.py"
        if not loader.exists():
            loader.write_text(LOADER, encoding="utf-8")
        env = self._airflow_env()
        marker = self._home / ".iflow-engine-migrated"
        if not self._migrated and not marker.exists():
            proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, cwd=self._home,
                                  capture_output=True, text=True, timeout=MIGRATE_TIMEOUT)
            if proc.returncode != 0:
                raise EngineError(f"`airflow db migrate` in {self._home} failed (exit {proc.returncode}):\n"
                                  f"{(proc.stdout + proc.stderr)[-LOG_TAIL:]}")
            marker.write_text("ok\n")
        self._migrated = True
        return env

    def _run_in_process(self, plan: WorkflowPlan, text: str, conf: Mapping[str, Any] | None) -> WorkflowResult:
        with self._lock:
            env = self._ensure_airflow()
            assert self._home is not None
            dags = self._home / "dags"
            for old in [*dags.glob("*.yaml"), *dags.glob("*.yml")]:  # one workflow per run: no cross-file checks
                old.unlink()
            (dags / f"{plan.dag_id}.yaml").write_text(text, encoding="utf-8")
            self._runs += 1
            spec_path = self._home / f"run-{self._runs}.json"
            out_path = self._home / f"result-{self._runs}.json"
            log_path = self._home / f"run-{self._runs}.log"
            spec_path.write_text(json.dumps({"dag_id": plan.dag_id, "conf": dict(conf or {})}, default=str))
            started = time.monotonic()
            with log_path.open("wb") as log:
                try:
                    proc = subprocess.run([sys.executable, "-m", "iflow_airflow.client.engine", str(spec_path),
                                           str(out_path)], env=env, cwd=self._home, stdout=log,
                                          stderr=subprocess.STDOUT, timeout=self.timeout)
                except subprocess.TimeoutExpired:
                    raise EngineError(f"workflow {plan.dag_id!r} did not finish within {self.timeout:g} s; "
                                      f"log: {log_path}") from None
            output = _log_tail(log_path)
            if proc.returncode != 0 or not out_path.exists():
                raise EngineError(f"the dag.test() process of {plan.dag_id!r} failed (exit {proc.returncode}) "
                                  f"after {time.monotonic() - started:.1f} s:\n{output}")
            data = json.loads(out_path.read_text(encoding="utf-8"))
        if data.get("error"):
            raise EngineError(f"workflow {plan.dag_id!r} did not run: {data['error']}\n--- output ---\n{output}")
        upstream = {t.task_id: list(t.upstream) for t in plan.tasks}
        return _result(plan.dag_id, data["run"], data["tis"], data["xcom"], upstream, "test", output)


def _log_tail(path: Path) -> str:
    """The last ``LOG_TAIL`` characters of a run's log, reading only its end (a task that
    printed gigabytes must not be read whole into the caller's memory)."""
    with path.open("rb") as fh:
        fh.seek(max(fh.seek(0, os.SEEK_END) - 4 * LOG_TAIL, 0))
        return fh.read().decode("utf-8", errors="replace")[-LOG_TAIL:]


# --- the dag.test() subprocess ----------------------------------------------------------------


def _child_main(argv: list[str]) -> int:
    """``python -m iflow_airflow.client.engine SPEC.json OUT.json``: parse the dags folder, dag.test() one DAG."""
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    out: dict[str, Any] = {"error": None}
    try:
        from airflow.dag_processing.dagbag import DagBag
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
        bag = DagBag(dag_folder=folder)
        dag_id = spec["dag_id"]
        dag = bag.dags.get(dag_id)
        if dag is None:
            errors = "; ".join(f"{k}: {v}" for k, v in bag.import_errors.items()) or "none"
            out["error"] = f"DAG {dag_id!r} not found in {folder}; import errors: {errors}"
        else:
            dr = dag.test(run_conf=spec.get("conf") or None)

            def state(s: Any) -> str | None:
                return None if s is None else str(getattr(s, "value", s))

            with create_session() as session:
                run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == dr.run_id))
                out["run"] = {"run_id": run.run_id, "state": state(run.state), "start_date": run.start_date,
                              "end_date": run.end_date, "queued_at": run.queued_at, "run_after": run.run_after,
                              "run_type": state(run.run_type)}
                tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                                 TaskInstance.run_id == dr.run_id)).all()
                out["tis"] = [{"task_id": ti.task_id, "state": state(ti.state), "try_number": ti.try_number,
                               "start_date": ti.start_date, "end_date": ti.end_date, "duration": ti.duration,
                               "queued_dttm": ti.queued_dttm, "scheduled_dttm": ti.scheduled_dttm,
                               "pool": ti.pool, "pool_slots": ti.pool_slots, "map_index": ti.map_index,
                               "priority_weight": ti.priority_weight} for ti in tis]
                rows = session.scalars(XComModel.get_many(run_id=dr.run_id, dag_ids=dag_id,
                                                          key="return_value")).all()
                out["xcom"] = {row.task_id: XComModel.deserialize_value(row) for row in rows}
    except Exception:
        out["error"] = traceback.format_exc()

    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else str(value)

    Path(argv[1]).write_text(json.dumps(out, default=plain), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover - runs in the engine's subprocess
    sys.exit(_child_main(sys.argv[1:]))
