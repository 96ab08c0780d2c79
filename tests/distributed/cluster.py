"""The docker-compose deployment, natively: CeleryExecutor on PostgreSQL and Redis.

    with CeleryCluster(tmp / "cluster", dags_folder) as cluster:
        cluster.client.wait_for_dag("full_stack_development")
        ...

Built by composition on the end-to-end harness (``tests/e2e/harness.py``):

* a FRESH PostgreSQL database per cluster (``CREATE DATABASE iflow_dist_<random>``,
  dropped with ``WITH (FORCE)`` at the end) and a dedicated Redis DB number
  (locked with a key, ``FLUSHDB`` at start and end);
* the Airflow settings come from ``docker-compose.yaml`` through
  :func:`scripts/compose_settings.py: celery_env` (handed to :class:`AirflowDeployment` as
  ``extra_env``, which it applies over its own ``standalone_env``: ``celery_env``
  is a superset of it, so the result is exactly ``celery_env``), plus the few
  settings in :data:`TEST_ONLY_SETTINGS`, which are NOT deployment settings;
* the compose services ``airflow-scheduler``, ``airflow-dag-processor``,
  ``airflow-apiserver`` and ``airflow-triggerer`` are the harness's components;
  the two Celery workers are started from the compose services'
  ``command:`` (``celery worker -q default`` / ``-q queue_b``), each with its own
  ``--celery-hostname``, small ``--concurrency`` and its own log-server port, and
  are added to the deployment's components, so the harness's liveness checks,
  log tails and stop (SIGTERM, SIGKILL after the grace, leftover-process check)
  cover them and their prefork children too;
* faults: :meth:`CeleryCluster.kill_worker` (SIGKILL of the worker's whole
  process group and of every descendant, as ``docker kill`` would),
  :meth:`CeleryCluster.stop_component` / :meth:`CeleryCluster.start_component`
  (e.g. SIGTERM the scheduler, wait until it is gone, start it again).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

from compose_settings import DEFAULT_COMPOSE_FILE, celery_env  # noqa: E402  (scripts/: tests/conftest.py)
from harness import (  # noqa: E402
    AirflowClient,
    AirflowDeployment,
    Component,
    DeploymentError,
    free_port,
)

#: The compose services whose processes the harness starts (name there -> here).
CORE_SERVICES = {
    "airflow-dag-processor": "dag-processor",
    "airflow-scheduler": "scheduler",
    "airflow-apiserver": "api-server",
    "airflow-triggerer": "triggerer",
}
#: The compose worker services and the short names used here (and as TI hostnames).
WORKER_SERVICES = {"airflow-worker-a": "worker-a", "airflow-worker-b": "worker-b"}

#: TEST-ONLY settings, not deployment settings (docker-compose.yaml keeps Airflow's
#: defaults): a worker killed in the middle of a task leaves its task instance
#: "running" without heartbeats; Airflow 3.3's scheduler fails such a task instance
#: (and so retries it) after ``task_instance_heartbeat_timeout`` seconds (default
#: 300), checked every ``..._detection_interval`` seconds (default 10). Short values
#: keep the fault check short. Heartbeats come every ``[workers]
#: min_heartbeat_interval`` (5 s), so 30 s leaves room on a loaded machine.
TEST_ONLY_SETTINGS: dict[str, str] = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
}

#: Module (in this folder) whose ``hostname()`` gives each worker its own TI hostname,
#: as its own container would in compose (all workers share this machine here).
HOSTNAME_CALLABLE = "worker_identity.hostname"
WORKER_HOSTNAME_VAR = "IFLOW_DIST_WORKER_HOSTNAME"

#: Redis DB numbers this suite may use (one per concurrent run), unless
#: IFLOW_DIST_REDIS_DB names one.
REDIS_DBS = (13, 14, 15)
REDIS_LOCK_KEY = "iflow-dist:lock"


def compose_commands(
    services: Iterable[str], compose_file: str | os.PathLike[str] = DEFAULT_COMPOSE_FILE
) -> dict[str, list[str]]:
    """``command:`` of each named compose service, as argv after ``airflow``."""
    path = Path(compose_file)
    path = path if path.is_absolute() else REPO_ROOT / path
    defined = yaml.safe_load(path.read_text(encoding="utf-8"))["services"]
    out = {}
    for service in services:
        command = defined[service]["command"]
        out[service] = shlex.split(command) if isinstance(command, str) else [str(x) for x in command]
    return out


def queues_of(argv: Sequence[str]) -> list[str]:
    """The ``-q``/``--queues`` value of a worker argv, split at commas."""
    for i, arg in enumerate(argv):
        if arg in ("-q", "--queues"):
            return argv[i + 1].split(",")
        if arg.startswith("--queues="):
            return arg.split("=", 1)[1].split(",")
    raise ValueError(f"no -q in {argv}")


def with_queues(argv: Sequence[str], queues: Sequence[str]) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in ("-q", "--queues"):
            out[i + 1] = ",".join(queues)
            return out
    raise ValueError(f"no -q in {argv}")


@dataclass
class Worker:
    service: str  # compose service name
    name: str  # short name, TI hostname and celery node name prefix
    argv: list[str]  # full argv
    queues: list[str]
    log_port: int
    starts: int = 0

    @property
    def node(self) -> str:
        return f"{self.name}@iflow-dist"


@dataclass
class Fault:
    """What a fault did: the processes it killed and when."""

    component: str
    signal: str
    pids: list[int]
    at: float = field(default_factory=time.time)


class CeleryCluster:
    """The compose deployment as native processes; see the module docstring."""

    def __init__(
        self,
        root: Path,
        dags_folder: Path,
        *,
        worker_concurrency: int = 2,
        extra_worker_queues: Sequence[str] = (),
        pg_host: str = "127.0.0.1",
        pg_port: int = 5432,
        pg_user: str = "postgres",
        redis_host: str = "127.0.0.1",
        redis_port: int = 6379,
        compose_file: str | os.PathLike[str] = DEFAULT_COMPOSE_FILE,
        startup_timeout: float = 300,
        stop_grace: float = 30,
    ) -> None:
        self.root = Path(root).resolve()
        self.home = self.root / "home"
        self.dags_folder = Path(dags_folder).resolve()
        self.worker_concurrency = worker_concurrency
        self.extra_worker_queues = list(extra_worker_queues)
        self.pg = {"host": pg_host, "port": pg_port, "user": pg_user}
        self.redis_host, self.redis_port = redis_host, redis_port
        self.compose_file = compose_file
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.dbname = f"iflow_dist_{secrets.token_hex(4)}"
        self.redis_db: int | None = None
        self.run_token = secrets.token_hex(8)
        self.port = free_port()
        self.env: dict[str, str] = {}  # what every component runs with (before per-worker additions)
        self.test_only: dict[str, str] = {}
        self.deployment: AirflowDeployment | None = None
        self.workers: dict[str, Worker] = {}
        self.faults: list[Fault] = []
        self.timings: dict[str, float] = {}
        self.db_created = False
        self.db_dropped = False
        self.leftovers: list[str] = []
        self._stopped: dict[str, Component] = {}

    # --- services ---------------------------------------------------------------

    def _pg(self):
        import psycopg2

        conn = psycopg2.connect(dbname="postgres", connect_timeout=10, **self.pg)
        conn.autocommit = True
        return conn

    def create_database(self) -> None:
        with contextlib.closing(self._pg()) as conn, conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.dbname}"')
        self.db_created = True

    def database_exists(self) -> bool:
        with contextlib.closing(self._pg()) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,))
            return cur.fetchone() is not None

    def drop_database(self) -> None:
        if not self.db_created:
            return
        with contextlib.closing(self._pg()) as conn, conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        self.db_dropped = not self.database_exists()

    def redis(self, db: int | None = None):
        import redis

        return redis.Redis(host=self.redis_host, port=self.redis_port, db=self.redis_db if db is None else db)

    def claim_redis_db(self) -> None:
        """Take the first free dedicated Redis DB (lock key), then FLUSHDB it."""
        wanted = os.environ.get("IFLOW_DIST_REDIS_DB")
        candidates = (int(wanted),) if wanted else REDIS_DBS
        for db in candidates:
            r = self.redis(db)
            if r.set(REDIS_LOCK_KEY, self.run_token, nx=True, ex=3600):
                r.flushdb()
                r.set(REDIS_LOCK_KEY, self.run_token, ex=3600)
                self.redis_db = db
                return
        raise DeploymentError(
            f"Redis DBs {candidates} are all locked by other runs of this suite "
            f"(key {REDIS_LOCK_KEY!r}; it expires after an hour); set IFLOW_DIST_REDIS_DB"
        )

    def release_redis_db(self) -> None:
        if self.redis_db is None:
            return
        r = self.redis()
        if r.get(REDIS_LOCK_KEY) in (None, self.run_token.encode()):
            r.flushdb()

    @property
    def broker_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"

    # --- lifecycle --------------------------------------------------------------

    def build_env(self) -> dict[str, str]:
        env = celery_env(
            self.home,
            self.dags_folder,
            port=self.port,
            dbname=self.dbname,
            pg_host=self.pg["host"],
            pg_port=self.pg["port"],
            pg_user=self.pg["user"],
            broker_url=self.broker_url,
            worker_concurrency=self.worker_concurrency,
            compose_file=self.compose_file,
        )
        self.test_only = {
            **TEST_ONLY_SETTINGS,
            # The triggerer serves its logs on a fixed port (8794); other Airflows on
            # this machine may hold it.
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # Not an Airflow setting: the api-server, the celery workers and the log
            # servers retitle themselves with setproctitle, which by default overwrites
            # /proc/<pid>/environ; with SPT_NOENV it does not, so the tests can read the
            # environment every component really runs with.
            "SPT_NOENV": "1",
        }
        return {**env, **self.test_only}

    def start(self) -> CeleryCluster:
        t0 = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.create_database()
            self.claim_redis_db()
            self.env = self.build_env()
            self.deployment = AirflowDeployment(
                self.home,
                self.dags_folder,
                components=tuple(CORE_SERVICES.values()),
                extra_env=self.env,
                port=self.port,
                startup_timeout=self.startup_timeout,
                stop_grace=self.stop_grace,
            )
            self.deployment.start()
            self.timings["core_ready"] = time.monotonic() - t0
            commands = compose_commands(WORKER_SERVICES, self.compose_file)
            for service, name in WORKER_SERVICES.items():
                argv = commands[service]
                queues = queues_of(argv) + self.extra_worker_queues
                full = ["airflow", *with_queues(argv, queues)]
                full += ["--celery-hostname", f"{name}@iflow-dist", "--concurrency", str(self.worker_concurrency)]
                full += ["--pid", str(self.home / f"{name}.pid")]
                self.workers[name] = Worker(service, name, full, queues, free_port())
            for name in self.workers:
                self.start_worker(name, wait=False)
            for name in self.workers:
                self.wait_worker_ready(name)
            self.timings["startup"] = time.monotonic() - t0
        except BaseException:
            self.stop(check_leftovers=False)
            raise
        return self

    def worker_env(self, worker: Worker) -> dict[str, str]:
        assert self.deployment is not None
        env = dict(self.deployment.env)
        env[WORKER_HOSTNAME_VAR] = worker.name
        env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = HOSTNAME_CALLABLE
        # Each worker serves its task logs on its own port (compose: one container each).
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(worker.log_port)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
        return env

    def start_worker(self, name: str, *, wait: bool = True) -> None:
        dep = self._dep()
        worker = self.workers[name]
        comp = Component(name, worker.argv, dep.log_dir / f"{name}.log")
        comp.start(self.worker_env(worker), dep.home)
        dep.components[name] = comp
        worker.starts += 1
        if wait:
            self.wait_worker_ready(name)

    def celery_inspect(self, timeout: float = 3.0) -> dict[str, list[str]]:
        """Queues each live worker consumes from, by celery node name (remote control)."""
        from celery import Celery

        app = Celery("iflow-dist-probe", broker=self.broker_url)
        try:
            replies = app.control.inspect(timeout=timeout).active_queues() or {}
        finally:
            app.close()
        return {node: sorted(q["name"] for q in queues) for node, queues in replies.items()}

    def wait_worker_ready(self, name: str, timeout: float = 180) -> None:
        worker = self.workers[name]
        t0 = time.monotonic()
        self.client.wait_until(
            lambda: self.celery_inspect().get(worker.node) == sorted(worker.queues),
            timeout,
            f"celery worker {worker.node} consuming {worker.queues}",
            interval=1.0,
        )
        self.timings[f"{name}_ready_{worker.starts}"] = time.monotonic() - t0

    def _dep(self) -> AirflowDeployment:
        if self.deployment is None:
            raise DeploymentError("the cluster is not started")
        return self.deployment

    @property
    def client(self) -> AirflowClient:
        return self._dep().client

    def component_pids(self, name: str) -> list[int]:
        """The component's leader and every descendant (any session)."""
        return _tree(self._dep().components[name])

    def component_environ(self, name: str) -> dict[str, str]:
        """The environment the component's main process really runs with (from /proc)."""
        dep = self._dep()
        env = psutil.Process(dep.components[name].pid).environ()
        if env.get("IFLOW_E2E_DEPLOYMENT") != dep.marker:
            raise DeploymentError(f"{name}: /proc environment unreadable or not this deployment's")
        return env

    def kill_worker(self, name: str) -> Fault:
        """SIGKILL the worker's process group and every descendant (also the task's
        command, which runs in its own session), as a dead host/container would."""
        dep = self._dep()
        comp = dep.components.pop(name)  # no longer expected to be alive
        self._stopped[name] = comp
        pids = _tree(comp)
        comp.signal_group(signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        fault = Fault(name, "SIGKILL", pids)
        self.faults.append(fault)
        _reap(comp, pids, grace=10)
        return fault

    def stop_component(self, name: str, *, sig: int = signal.SIGTERM, grace: float = 60) -> dict[str, Any]:
        """Send ``sig`` to the component's process group and wait until every process of
        it is gone (SIGKILL after ``grace`` seconds). Returns the exit code, how long
        it took and which pids had to be SIGKILLed."""
        dep = self._dep()
        comp = dep.components.pop(name)  # no longer expected to be alive
        self._stopped[name] = comp
        pids = _tree(comp)
        t0 = time.monotonic()
        comp.signal_group(sig)
        forced = _reap(comp, pids, grace=grace)
        self.faults.append(Fault(name, signal.Signals(sig).name, pids))
        return {"exit_code": comp.poll(), "stopped_after": time.monotonic() - t0, "forced": forced}

    def start_component(self, name: str) -> None:
        """Start a stopped or killed component again (same argv and environment)."""
        dep = self._dep()
        old = self._stopped.pop(name)
        if name in self.workers:
            self.start_worker(name)
            return
        new = Component(name, old.argv, old.log_path)
        new.start(dep.env, dep.home)
        dep.components[name] = new

    def stop(self, *, check_leftovers: bool = True) -> None:
        """Stop every process (harness: SIGTERM, SIGKILL after the grace, leftover
        check), then drop the database and flush the Redis DB, whatever happened."""
        t0 = time.monotonic()
        errors: list[BaseException] = []
        try:
            if self.deployment is not None:
                try:
                    self.deployment.stop(check_leftovers=check_leftovers)
                except BaseException as e:  # noqa: BLE001 - still clean the services
                    errors.append(e)
                self.leftovers = list(self.deployment.leftovers)
        finally:
            for cleanup in (self.drop_database, self.release_redis_db):
                try:
                    cleanup()
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)
            self.timings["stop"] = time.monotonic() - t0
        if errors and check_leftovers:
            raise errors[0]

    def __enter__(self) -> CeleryCluster:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.stop(check_leftovers=exc_type is None)

    def diagnostics(self) -> str:
        return self._dep().diagnostics()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _tree(comp: Component) -> list[int]:
    """The component's leader pid and every descendant (in any session)."""
    if comp.pid is None:
        return []
    try:
        leader = psutil.Process(comp.pid)
        return [leader.pid, *(p.pid for p in leader.children(recursive=True))]
    except psutil.Error:
        return []


def _reap(comp: Component, pids: Iterable[int], grace: float) -> list[int]:
    """Wait until the leader and ``pids`` are gone; after ``grace`` seconds SIGKILL the
    group and whatever is left. Returns the pids that had to be SIGKILLed."""
    pids = set(pids)
    deadline = time.monotonic() + grace
    forced: list[int] = []
    while True:
        comp.poll()  # reap the leader
        alive = [p for p in pids if _alive(p)]
        if not alive:
            break
        if time.monotonic() >= deadline:
            if forced:  # already SIGKILLed: give up waiting
                break
            forced = alive
            comp.signal_group(signal.SIGKILL)
            for pid in alive:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
            deadline = time.monotonic() + 10
        time.sleep(0.2)
    if comp.proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            comp.proc.wait(timeout=10)
    return forced


def iso_to_epoch(value: str | None) -> float | None:
    """An API timestamp (ISO 8601, ``Z`` or offset) as seconds since the epoch."""
    if value is None:
        return None
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
