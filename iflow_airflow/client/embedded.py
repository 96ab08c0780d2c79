"""The engine's embedded Airflow: a private deployment on loopback, started once and kept warm.

``WorkflowEngine()`` (mode ``"embedded"``) runs definitions here. On the first
call :class:`EmbeddedAirflow` starts, through one supervisor process
(:mod:`iflow_airflow.client.supervisor`), an api-server bound to ``127.0.0.1`` on
a free port (also the execution API of the task processes) and ``airflow db
migrate`` side by side, then a scheduler (LocalExecutor) and a dag-processor,
and a triggerer once the api-server answers, on SQLite in a private home or on
the ``database_url`` given. The api-server's start is the longest: it builds its
app while the database is migrated and serves once it is
(:mod:`iflow_airflow.client.launch`). Later calls
reuse it; :meth:`EmbeddedAirflow.stop` (the engine's ``close()``, context exit
or interpreter exit) ends it, and the supervisor ends it by itself when the
engine's process dies, even by SIGKILL.

Each run (:meth:`EmbeddedAirflow.run`):

1. writes the definition to ``dags/<workflow>/<workflow>.yaml`` next to its own
   loader ``dags/<workflow>/<workflow>.py`` (one parse unit per workflow, so
   a changed workflow re-parses alone); the YAML carries the tag
   ``iflow-engine-<sha256 prefix of the definition>`` (:func:`tag_definition`);
2. creates or resizes the pools of its resources over the REST API (what the
   scheduler's resource keeper would do a moment later);
3. waits until the DAG over the REST API carries that tag: that exact version
   is parsed (an import error of its file, newer than the write, fails fast);
4. triggers it and waits for the run, then reads task instances, results
   (XCom) and, of failed tasks, the error and the log tail.

The default SQLite file runs in WAL mode with a 30 s lock wait
(:mod:`iflow_airflow.client.sqlite_args`): four components write it at once.

Runs of one workflow name take turns (the dags folder holds one version of a
file); runs of different names overlap freely and share pools and priorities
like in any deployment, because this is one. Only the private Airflow's
intervals are tuned (:data:`INTERVALS`); the user's deployment is never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from iflow_airflow.client.engine import EngineError, WorkflowResult, _result
from iflow_airflow.client.rest import AirflowApiError, AirflowRestClient
from iflow_airflow.client.supervisor import marked_processes, read_status, tail
from iflow_airflow.plan.ir import WorkflowPlan

MARKER_KEY = "IFLOW_ENGINE_MARKER"
TAG_PREFIX = "iflow-engine-"
USER = "iflow"
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
#: Started beside the migration (they import and build, then wait for the database): the api-server's
#: start is the longest (building its app and the execution API's routers, ~12 s of CPU); the others
#: start as the migration ends, so that they do not take the second core from the migration.
EARLY = ("api-server",)
#: Started once the api-server accepts connections: the triggerer is needed only when a task defers
#: (it picks up what deferred before it started), and its start (~4 s of CPU) would otherwise compete
#: with the api-server's on two cores.
LATE = ("triggerer",)
POLL = 0.2
LOG_TAIL_LINES = 40

#: Latency settings of the private Airflow only (a deployment keeps its own). The
#: dag-processor lists the folder every second and re-parses a file as soon as its
#: mtime changed, but leaves unchanged files alone for 5 minutes; the scheduler
#: sleeps 0.2 s when idle instead of 1 s; pools follow the files every second.
INTERVALS = {
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "1",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",
    "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "60",
    "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "600",
    "AIRFLOW__IFLOW__KEEPER_INTERVAL": "1",
}

LOADER = ('"""iflow engine: the iflow workflow file in this folder becomes an Airflow DAG."""\n'
          "# definition {digest}\n"
          "from iflow_airflow.importer import load_workflows\n\nload_workflows(globals())\n")


class EngineStartError(EngineError):
    """The embedded Airflow did not start (the message says why and has the log tail)."""


# --- the definition's version tag ------------------------------------------------------------


def definition_digest(document: Mapping[str, Any]) -> str:
    """sha256 (first 16 hex digits) of a definition document, stable across key order."""
    text = json.dumps(document, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def tag_definition(document: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """(the document with ``workflow.tags`` + ``iflow-engine-<digest>``, that tag).

    A ``tags`` that is not a list is left as it is, for validation to report.
    """
    tag = TAG_PREFIX + definition_digest(document)
    wf = dict(document.get("workflow") or {})
    tags = wf.get("tags", [])
    if isinstance(tags, list):
        wf["tags"] = [*(t for t in tags if not (isinstance(t, str) and t.startswith(TAG_PREFIX))), tag]
    return {**document, "workflow": wf}, tag


# --- environment -------------------------------------------------------------------------------


def embedded_env(base: Mapping[str, str], home: Path, port: int, database_url: str | None,
                 marker: str) -> dict[str, str]:
    """The private Airflow's environment: ``base`` (the engine's, AIRFLOW_* scrubbed) plus a
    single-machine deployment on loopback, fresh secrets and :data:`INTERVALS`."""
    env = dict(base)
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager."
                                       "SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json.generated"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs" / "tasks"),
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
        MARKER_KEY: marker,
        **INTERVALS,
    })
    if database_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
    else:  # the default SQLite file: wait for locks rather than fail (client/sqlite_args.py)
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "iflow_airflow.client.sqlite_args.SYNC"
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] = "iflow_airflow.client.sqlite_args.ASYNC"
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the api-server's start says so if it was taken since)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _epoch(value: Any) -> float:
    """Seconds since the epoch of an ISO time from the API (0 when absent)."""
    if not value:
        return 0.0
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def airflow_version() -> str:
    """The installed apache-airflow's version (without importing Airflow)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow")
    except PackageNotFoundError:
        return "unknown"


def template_path() -> Path:
    """Where the migrated SQLite template of this Airflow version is kept: ``$IFLOW_ENGINE_CACHE``
    or ``$XDG_CACHE_HOME/iflow-airflow`` (default ``~/.cache/iflow-airflow``)."""
    root = os.environ.get("IFLOW_ENGINE_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "iflow-airflow"
    return Path(root) / f"airflow-{airflow_version()}-sqlite.db"


def _component_argv(name: str, port: int) -> list[str]:
    """``airflow <name>`` through the launcher: it imports while the database is migrated."""
    argv = [sys.executable, "-m", "iflow_airflow.client.launch", name]
    return [*argv, "--port", str(port), "--host", "127.0.0.1"] if name == "api-server" else argv


def _stop_supervisor(proc: subprocess.Popen[bytes], home: str, marker: str, remove: bool,
                     timeout: float) -> list[str]:
    """Cut the lifeline, wait for the supervisor, kill any marked leftover; remove ``home`` if ours.

    A module function (no reference to the engine) so that ``weakref.finalize`` can run it at exit.
    """
    with contextlib.suppress(OSError, ValueError):
        if proc.stdin is not None:
            proc.stdin.write(b"stop\n")
            proc.stdin.close()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    left, killed = [], marked_processes(MARKER_KEY, marker)
    for p in killed:
        with contextlib.suppress(psutil.Error):
            left.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            p.kill()
    psutil.wait_procs(killed, timeout=10)
    if remove:
        shutil.rmtree(home, ignore_errors=True)
    return left


# --- the embedded Airflow ---------------------------------------------------------------------


class EmbeddedAirflow:
    """One private Airflow (see the module docstring). Thread-safe: runs may overlap."""

    def __init__(self, home: Path, base_env: Mapping[str, str], *, own_home: bool, port: int | None = None,
                 database_url: str | None = None, startup_timeout: float = 180.0,
                 stop_timeout: float = 30.0) -> None:
        self.home = home
        self.port = port or free_port()
        self.marker = uuid.uuid4().hex
        self.database_url = database_url
        self.env = embedded_env(base_env, home, self.port, database_url, self.marker)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.own_home = own_home
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: AirflowRestClient | None = None
        self._ready = threading.Lock()
        self._starting = threading.Lock()
        self._names: dict[str, threading.Lock] = {}
        self._names_lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None
        self.timings: dict[str, float] = {}

    @property
    def dags(self) -> Path:
        return self.home / "dags"

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor (once); returns at once, :meth:`client` waits for readiness."""
        with self._starting:
            if self._proc is None:
                self._start()

    def _start(self) -> None:
        if importlib.util.find_spec("airflow") is None:
            raise EngineStartError(f"apache-airflow is not installed for {sys.executable}; install "
                                   "iflow-airflow with its dependencies (pip install iflow-airflow)")
        for sub in ("dags", "logs"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        (self.home / "status.json").unlink(missing_ok=True)
        cfg = self.home / "airflow.cfg"
        if not cfg.exists():  # every setting is in the environment; no component races to write one
            cfg.write_text("# iflow engine: settings come from the environment (client/embedded.py)\n")
        spec = {"home": str(self.home), "env": self.env, "marker_key": MARKER_KEY, "marker": self.marker,
                "sqlite": None if self.database_url else str(self.home / "airflow.db"),
                "template": None if self.database_url else str(template_path()),
                "airflow_version": airflow_version(), "remove_home": self.own_home,
                "migrate": [sys.executable, "-m", "airflow", "db", "migrate"],
                "components": {c: _component_argv(c, self.port) for c in COMPONENTS},
                "early": list(EARLY), "late": list(LATE), "api_port": self.port}
        spec_path = self.home / "supervisor.json"
        spec_path.unlink(missing_ok=True)
        with os.fdopen(os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(spec, f)  # readable by this user only: it holds the private Airflow's secrets
        self.timings["start"] = time.monotonic()
        with (self.home / "logs" / "supervisor.log").open("ab") as log:
            self._proc = subprocess.Popen([sys.executable, "-m", "iflow_airflow.client.supervisor", str(spec_path)],
                                          env=self.env, cwd=self.home, stdin=subprocess.PIPE, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self._finalizer = weakref.finalize(self, _stop_supervisor, self._proc, str(self.home), self.marker,
                                           self.own_home, self.stop_timeout)

    def stop(self) -> list[str]:
        """Stop every process and remove the home if the engine made it; returns leftovers (killed)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        left: list[str] = []
        if self._finalizer is not None and self._finalizer.alive:
            left = self._finalizer() or []
        self._proc = None
        return left

    def _failure(self, what: str) -> EngineStartError:
        """The error saying why the Airflow is down: the supervisor's reason and that log's tail, else
        ``what`` with every log's tail. Before the api-server answered it "could not start"."""
        status = read_status(self.home)
        head = f"the embedded Airflow in {self.home} " + ("is down" if self._client else "could not start")
        if status.get("phase") == "failed":
            return EngineStartError(f"{head}: {status.get('reason')}\n--- {status.get('log')} ---\n"
                                    f"{status.get('tail', '')}")
        logs = "\n".join(f"--- {p} ---\n{tail(p, 15)}" for p in sorted((self.home / "logs").glob("*.log")))
        return EngineStartError(f"{head}: {what} (supervisor phase {status.get('phase', 'not started')!r})\n{logs}")

    def check_alive(self) -> None:
        """Raise :class:`EngineStartError` with the reason when the Airflow is down."""
        if self._proc is None:
            raise EngineStartError("the embedded Airflow is stopped")
        if self._proc.poll() is not None or read_status(self.home).get("phase") == "failed":
            raise self._failure(f"its supervisor exited ({self._proc.poll()})")

    def client(self) -> AirflowRestClient:
        """A logged-in REST client, once the api-server answers (starts the Airflow if needed)."""
        with self._ready:
            if self._client is not None:
                return self._client
            self.start()
            deadline = self.timings["start"] + self.startup_timeout
            password_file = Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
            client = AirflowRestClient(self.url, USER, None)
            while True:
                self.check_alive()
                with contextlib.suppress(OSError, ValueError, KeyError, AirflowApiError):
                    client.password = json.loads(password_file.read_text())[USER]
                    client.login()
                    break
                if time.monotonic() > deadline:
                    client.close()
                    raise self._failure(f"its api-server did not answer on {self.url} within "
                                        f"{self.startup_timeout:g} s")
                time.sleep(POLL)
            self.timings["api_ready"] = time.monotonic() - self.timings["start"]
            self._warm_execution_api(client)
            self._client = client
            return client

    def _warm_execution_api(self, client: AirflowRestClient) -> None:
        """One request to the execution API right away: its first answer builds the versioned app
        (seconds on a busy machine) unless the launcher built it already (client/launch.py), which
        would otherwise hit the first task's start with timeouts and retries. Best effort."""
        with contextlib.suppress(Exception):
            client.http.get("/execution/health", timeout=max(10.0, self.startup_timeout))
        self.timings["execution_api_ready"] = time.monotonic() - self.timings["start"]

    # --- one run ------------------------------------------------------------------------------

    def _name_lock(self, dag_id: str) -> threading.Lock:
        with self._names_lock:
            return self._names.setdefault(dag_id, threading.Lock())

    def write(self, plan: WorkflowPlan, text: str, tag: str) -> bool:
        """Write the definition and its loader (atomically); False when that version is already there."""
        folder = self.dags / plan.dag_id
        folder.mkdir(parents=True, exist_ok=True)
        yaml_path, loader_path = folder / f"{plan.dag_id}.yaml", folder / f"{plan.dag_id}.py"
        loader = LOADER.format(digest=tag)
        with contextlib.suppress(OSError):
            if yaml_path.read_text(encoding="utf-8") == text and loader_path.read_text(encoding="utf-8") == loader:
                return False
        for path, body in ((yaml_path, text), (loader_path, loader)):  # the loader last: it is what is watched
            tmp = folder / f".{path.name}.tmp"
            tmp.write_text(body, encoding="utf-8")
            os.replace(tmp, path)
        return True

    def sync_pools(self, client: AirflowRestClient, plan: WorkflowPlan) -> None:
        """Create or resize the pools of the plan's resources (pools iflow manages only)."""
        from iflow_airflow.compiler import Compiled
        from iflow_airflow.runtime.pools import MANAGED_MARK, desired_pools

        wanted = desired_pools([Compiled(self.dags / plan.dag_id, plan.dag_id, plan)])
        if not wanted:
            return
        current = {p["name"]: p for p in client._paged("/api/v2/pools", "pools")}
        for pool in wanted.values():
            have = current.get(pool.name)
            if have is not None and not str(have.get("description") or "").startswith(MANAGED_MARK):
                continue  # a pool a person made is never changed
            if have is None or have.get("slots") != pool.slots:
                client.set_pool(pool.name, pool.slots, pool.pool_description)

    def wait_parsed(self, client: AirflowRestClient, dag_id: str, tag: str, written_at: float,
                    timeout: float) -> dict[str, Any]:
        """The DAG, once it carries ``tag``; an import error of its folder newer than the write fails."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            dag = client.dag(dag_id)
            if dag is not None and tag in {t.get("name") for t in dag.get("tags") or ()}:
                return dag
            errors = [e for e in client._paged("/api/v2/importErrors", "import_errors")
                      if str(e.get("filename", "")).startswith(f"{dag_id}/")
                      and _epoch(e.get("timestamp")) >= written_at - 1]
            if errors:
                raise EngineError(f"the embedded Airflow could not load workflow {dag_id!r}: "
                                  + "\n".join(str(e.get("stack_trace")) for e in errors))
            if time.monotonic() > deadline:
                raise EngineError(f"workflow {dag_id!r} was not parsed within {timeout:g} s; "
                                  f"dag-processor log:\n{tail(self.home / 'logs' / 'dag-processor.log')}")
            time.sleep(POLL)

    def _check_scheduler(self, client: AirflowRestClient) -> None:
        """Past the startup deadline, a scheduler that does not report healthy is a start failure."""
        if time.monotonic() < self.timings["start"] + self.startup_timeout:
            return
        health = (client.get("/api/v2/monitor/health").get("scheduler") or {}).get("status")
        if health != "healthy":
            raise self._failure(f"its scheduler is {health or 'not reporting'} after {self.startup_timeout:g} s")

    def wait_run(self, client: AirflowRestClient, dag_id: str, run_id: str, timeout: float | None) -> dict[str, Any]:
        """Poll the run until it is ``success`` or ``failed`` (the Airflow going down ends the wait)."""
        from iflow_airflow.client.rest import TERMINAL_RUN_STATES

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.check_alive()
            run = client.dag_run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if run["state"] == "queued":
                self._check_scheduler(client)
            if deadline is not None and time.monotonic() > deadline:
                states = {t["task_id"]: t["state"] for t in client.task_instances(dag_id, run_id)}
                raise EngineError(f"workflow {dag_id!r} (run {run_id}) did not finish within {timeout:g} s; "
                                  f"run {run['state']}, tasks {states}; logs under {self.home / 'logs'}")
            time.sleep(POLL)

    def run(self, plan: WorkflowPlan, text: str, tag: str, conf: Mapping[str, Any] | None, *,
            timeout: float | None, parse_timeout: float) -> WorkflowResult:
        """Write, wait for that version, trigger, wait, collect (see the module docstring)."""
        self.start()
        with self._name_lock(plan.dag_id):
            written_at = time.time()
            self.write(plan, text, tag)  # before the api-server answers: parsing overlaps the start
            client = self.client()
            self.sync_pools(client, plan)
            dag = self.wait_parsed(client, plan.dag_id, tag, written_at, parse_timeout)
            self.timings.setdefault("first_parsed", time.monotonic() - self.timings["start"])
            run_id = client.trigger(plan.dag_id, conf, unpause=bool(dag.get("is_paused")))  # one write less
            run = self.wait_run(client, plan.dag_id, run_id, timeout)
            self.timings.setdefault("first_run_done", time.monotonic() - self.timings["start"])
        return collect(client, plan.dag_id, run, {t.task_id: list(t.upstream) for t in plan.tasks})


def task_log(client: AirflowRestClient, dag_id: str, run_id: str, ti: Mapping[str, Any]) -> tuple[str | None, str]:
    """(error, log tail) of a task instance's last try: the error is ``Type: message`` of the last
    exception the log records, else its last error line; the tail is its last lines as text."""
    from iflow_airflow.client.rest import _q

    path = (f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(ti['task_id'])}/logs/"
            f"{int(ti.get('try_number') or 1)}")
    try:
        r = client.request("GET", path, params={"full_content": True, "map_index": ti.get("map_index", -1)},
                           headers={"Accept": "application/json"})
        content = r.json().get("content") or []
    except (AirflowApiError, ValueError) as exc:
        return None, f"(log unavailable: {exc})"
    error, lines = None, []
    for entry in content:
        if not isinstance(entry, dict):
            lines.append(str(entry))
            continue
        level = entry.get("level", "")
        lines.append(f"{entry.get('timestamp', '')} {level} {entry.get('event', '')}".strip())
        for detail in entry.get("error_detail") or ():
            if isinstance(detail, dict) and detail.get("exc_type"):
                error = f"{detail['exc_type']}: {detail.get('exc_value', '')}"
                lines.append(error)
        if error is None and level in ("error", "critical") and entry.get("event"):
            error = str(entry["event"])
    return error, "\n".join(lines[-LOG_TAIL_LINES:])


def collect(client: AirflowRestClient, dag_id: str, run: Mapping[str, Any], upstream: Mapping[str, list[str]],
            mode: str = "embedded") -> WorkflowResult:
    """The :class:`WorkflowResult` of a finished run over the REST API: states, results, figures, and
    the failed tasks' errors and log tails. ``upstream``: ``{task_id: [upstream task ids]}``."""
    run_id = run["dag_run_id"]
    tis = client.task_instances(dag_id, run_id)
    values = {t["task_id"]: client.result(dag_id, run_id, t["task_id"]) for t in tis if t.get("state") == "success"}
    failures = {t["task_id"]: task_log(client, dag_id, run_id, t) for t in tis if t.get("state") == "failed"}
    log = "\n".join(f"--- {task} ---\n{tail_text}" for task, (_, tail_text) in failures.items())
    return _result(dag_id, run, tis, {k: v for k, v in values.items() if v is not None}, upstream, mode,
                   log, failures)
