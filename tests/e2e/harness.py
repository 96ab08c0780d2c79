"""A real Airflow for end-to-end tests: one subprocess per component, REST client.

    with AirflowDeployment(tmp_path / "home", dags_folder) as af:
        af.client.wait_for_dag("smoke", timeout=120)
        run_id = af.client.trigger("smoke")
        assert af.client.wait_for_run("smoke", run_id, timeout=120) == "success"

* Settings come from :func:`scripts/compose_settings.py: standalone_env`, i.e. from
  docker-compose.yaml: the tests run with what users run.
* Nothing is written into the repository: the database, airflow.cfg, the admin
  password file and all logs live under ``home`` (component output in
  ``home/logs/<component>.log``).
* Each component is its own process group (``start_new_session=True``); on exit
  every group gets SIGTERM, then SIGKILL after a grace period, and the harness
  checks that no process of the deployment is left.
* Every wait polls for readiness (no fixed sleeps) and, on timeout or when a
  component dies, raises :class:`DeploymentError` with the tail of every
  component log, so a failing test explains itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]

# The settings of docker-compose.yaml, as scripts/run-standalone uses them (dev tooling, not the package).
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from compose_settings import standalone_env  # noqa: E402

from iflow_airflow.client.rest import TERMINAL_RUN_STATES, AirflowApiError, AirflowRestClient  # noqa: E402

T = TypeVar("T")
DEFAULT_COMPONENTS = ("dag-processor", "scheduler", "api-server")
KNOWN_COMPONENTS = ("dag-processor", "scheduler", "api-server", "triggerer")
# Inherited variables that would make the deployment depend on the caller's shell.
_SCRUBBED_PREFIXES = ("AIRFLOW__", "AIRFLOW_", "_AIRFLOW")
_MARKER = "IFLOW_E2E_DEPLOYMENT"


class DeploymentError(AssertionError):
    """A wait timed out, a request failed or a component died (message has the logs)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _airflow_bin_dir() -> Path:
    """Folder of the ``airflow`` executable of this interpreter's environment."""
    here = Path(sys.executable).parent
    if (here / "airflow").exists():
        return here
    found = shutil.which("airflow")
    if not found:
        raise DeploymentError(f"no `airflow` executable next to {sys.executable} or on PATH")
    return Path(found).parent


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 200 * lines))
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:])


class Component:
    """One Airflow component process (its own session / process group)."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, env: Mapping[str, str], cwd: Path) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


class AirflowClient(AirflowRestClient):
    """The product's REST client (``iflow_airflow.client.rest``) with what tests need on top.

    The admin password comes from the SimpleAuthManager's generated file; an
    unexpected answer raises :class:`DeploymentError` with every component's log
    tail; ``wait_until`` polls while checking that the components are alive.
    """

    def __init__(
        self,
        base_url: str,
        password_file: Path,
        *,
        username: str = "admin",
        diagnostics: Callable[[], str] = lambda: "",
        check_alive: Callable[[], None] = lambda: None,
        poll_interval: float = 0.5,
    ) -> None:
        super().__init__(base_url, username)
        self.base_url = base_url
        self.password_file = password_file
        self.diagnostics = diagnostics
        self.check_alive = check_alive
        self.poll_interval = poll_interval

    def fail(self, message: str) -> DeploymentError:
        return DeploymentError(f"{message}\n{self.diagnostics()}")

    def login(self) -> str:
        """Token for the admin user, password from the generated password file."""
        self.password = json.loads(self.password_file.read_text())[self.username]
        return super().login()

    def request(self, method: str, path: str, *, ok: Iterable[int] = (200,), **kw: Any) -> httpx.Response:
        """The product's request; a wrong answer raises with the logs, a connection error as itself."""
        try:
            return super().request(method, path, ok=ok, **kw)
        except AirflowApiError as exc:
            if isinstance(exc.__cause__, httpx.HTTPError):  # not up (yet): wait_until polls on
                raise exc.__cause__ from None
            raise self.fail(str(exc)) from None

    def wait_until(
        self,
        predicate: Callable[[], T],
        timeout: float,
        what: str,
        *,
        interval: float | None = None,
        details: Callable[[], str] | None = None,
    ) -> T:
        """Poll ``predicate`` until it returns something truthy and return that.

        Raises :class:`DeploymentError` (with ``details()``, then every component's
        log tail) on timeout or as soon as a component process has died.
        """
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            self.check_alive()
            try:
                value = predicate()
                last_error = None
            except DeploymentError:
                raise
            except (httpx.HTTPError, OSError, ValueError, KeyError) as e:  # not up yet
                value, last_error = None, e  # type: ignore[assignment]
            if value:
                return value
            if time.monotonic() >= deadline:
                extra = f" (last error: {last_error!r})" if last_error else ""
                message = f"timed out after {timeout:.0f}s waiting for {what}{extra}"
                if details is not None:
                    try:
                        message += "\n" + details()
                    except Exception as e:  # noqa: BLE001 - diagnostics only
                        message += f"\n(details unavailable: {e!r})"
                raise self.fail(message)
            time.sleep(self.poll_interval if interval is None else interval)

    # --- helpers --------------------------------------------------------------

    def version(self) -> dict:
        return self.http.get("/api/v2/version").raise_for_status().json()

    def health(self) -> dict:
        return self.get("/api/v2/monitor/health")

    def dags(self) -> list[dict]:
        return self._paged("/api/v2/dags", "dags")

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict:
        """Wait until ``dag_id`` is known to the API (parsed and serialized); return it."""

        # 404 until the DAG is serialized (the endpoint loads the serialized DAG).
        def details() -> str:
            known = sorted(d["dag_id"] for d in self.dags())
            errors = json.dumps(self.import_errors(), indent=1)[:6000]
            return f"known DAGs: {known}\nimport errors: {errors}"

        return self.wait_until(lambda: self.dag(dag_id), timeout, f"DAG {dag_id!r}", details=details)

    def pause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True})

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:  # type: ignore[override]
        """Wait until the run is ``success`` or ``failed``; return that state (the product's returns the run).

        Unlike the product's, it stops as soon as a component died, and a timeout
        raises with the task states and every component's log tail.
        """

        def done() -> str | None:
            state = self.dag_run(dag_id, run_id)["state"]
            return state if state in TERMINAL_RUN_STATES else None

        def details() -> str:
            run = self.dag_run(dag_id, run_id)
            tis = [(t["task_id"], t["state"]) for t in self.task_instances(dag_id, run_id)]
            return f"run state: {run['state']}\ntask instances: {tis}"

        return self.wait_until(done, timeout, f"run {dag_id}/{run_id} to finish", details=details)

    def import_errors(self) -> list[dict]:
        return self._paged("/api/v2/importErrors", "import_errors")

    def errors_by_file(self) -> dict[str, str]:
        """The UI's import errors as {file relative to the bundle: message}."""
        return {e["filename"]: e["stack_trace"] for e in self.import_errors()}

    def pools(self) -> dict[str, int]:
        return {p["name"]: p["slots"] for p in self._paged("/api/v2/pools", "pools")}


class AirflowDeployment:
    """Context manager: ``airflow db migrate``, then each component as a subprocess.

    ``home`` becomes AIRFLOW_HOME (created if missing); ``extra_env`` is applied over
    :func:`standalone_env`; ``port`` defaults to a free port on 127.0.0.1.
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        components: Iterable[str] = DEFAULT_COMPONENTS,
        extra_env: Mapping[str, str] | None = None,
        port: int | None = None,
        *,
        plugins_folder: Path | None = None,
        startup_timeout: float = 180,
        stop_grace: float = 20,
        tail_lines: int = 60,
    ) -> None:
        self.home = Path(home).resolve()
        self.dags_folder = Path(dags_folder).resolve()
        self.components_wanted = tuple(components)
        unknown = set(self.components_wanted) - set(KNOWN_COMPONENTS)
        if unknown:
            raise ValueError(f"unknown components {sorted(unknown)}; known: {KNOWN_COMPONENTS}")
        self.extra_env = dict(extra_env or {})
        self.port = port or free_port()
        self.plugins_folder = plugins_folder
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.tail_lines = tail_lines
        self.log_dir = self.home / "logs"
        self.marker = uuid.uuid4().hex
        self.components: dict[str, Component] = {}
        self.env: dict[str, str] = {}
        self._client: AirflowClient | None = None
        self.timings: dict[str, float] = {}
        self._stopped = False
        self.leftovers: list[str] = []

    # --- environment ----------------------------------------------------------

    def _build_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env.update(
            standalone_env(
                self.home, self.dags_folder, port=self.port, plugins_folder=self.plugins_folder
            )
        )
        env.update(self.extra_env)
        bin_dir = str(_airflow_bin_dir())
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
        # No repo root on PYTHONPATH: the package is installed (editable, `make setup`), and the
        # source tree's iflow_airflow.egg-info would register the plugin's entry point twice.
        env["PYTHONUNBUFFERED"] = "1"
        env["NO_COLOR"] = "1"
        env[_MARKER] = self.marker
        return env

    @property
    def client(self) -> AirflowClient:
        """REST client (logged in once the deployment is started)."""
        if self._client is None:
            raise DeploymentError("the deployment is not started")
        return self._client

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def password_file(self) -> Path:
        return Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])

    # --- diagnostics ----------------------------------------------------------

    def log_tails(self, lines: int | None = None) -> str:
        n = lines or self.tail_lines
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            parts.append(f"----- {path} (last {n} lines) -----\n{_tail(path, n)}")
        return "\n".join(parts) or f"(no logs in {self.log_dir})"

    def _status_line(self) -> str:
        return ", ".join(
            f"{name}: pid {c.pid} " + ("running" if c.poll() is None else f"exited {c.poll()}")
            for name, c in self.components.items()
        )

    def diagnostics(self) -> str:
        return f"components: {self._status_line()}\n{self.log_tails()}"

    def check_alive(self) -> None:
        dead = {n: c.poll() for n, c in self.components.items() if c.poll() is not None}
        if dead and not self._stopped:
            raise DeploymentError(f"Airflow component(s) died: {dead}\n{self.diagnostics()}")

    def wait_until(self, predicate: Callable[[], T], timeout: float, what: str, **kw: Any) -> T:
        """:meth:`AirflowClient.wait_until` (raises with every component's log tail)."""
        return self.client.wait_until(predicate, timeout, what, **kw)

    # --- lifecycle ------------------------------------------------------------

    def _run_once(self, name: str, argv: list[str], timeout: float) -> None:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as f:
            try:
                subprocess.run(
                    argv,
                    env=self.env,
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=True,
                    start_new_session=True,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                raise DeploymentError(f"`{' '.join(argv)}` failed: {e}\n{_tail(log, 80)}") from e

    def _argv(self, name: str) -> list[str]:
        if name == "api-server":
            return ["airflow", "api-server", "--port", str(self.port), "--host", "127.0.0.1"]
        return ["airflow", name]

    def start(self) -> AirflowDeployment:
        t0 = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = self._build_env()
        self._run_once("db-migrate", ["airflow", "db", "migrate"], timeout=300)
        self.timings["db_migrate"] = time.monotonic() - t0
        try:
            for name in self.components_wanted:
                comp = Component(name, self._argv(name), self.log_dir / f"{name}.log")
                comp.start(self.env, self.home)
                self.components[name] = comp
            self._client = AirflowClient(
                self.base_url,
                self.password_file,
                diagnostics=self.diagnostics,
                check_alive=self.check_alive,
            )
            self._wait_ready(t0)
        except BaseException:
            self.stop(check_leftovers=False)
            raise
        self.timings["startup"] = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        client = self.client
        remaining = lambda: max(1.0, self.startup_timeout - (time.monotonic() - t0))  # noqa: E731
        if "api-server" not in self.components:
            return
        client.wait_until(client.version, remaining(), f"the api-server on {self.base_url}")
        self.timings["api_ready"] = time.monotonic() - t0
        client.wait_until(self.password_file.exists, remaining(), f"{self.password_file}")
        client.login()
        # The components that heartbeat report healthy through the API.
        wanted = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
        keys = [wanted[c] for c in self.components if c in wanted]

        def healthy() -> bool:
            h = client.health()
            return all((h.get(k) or {}).get("status") == "healthy" for k in keys)

        if keys:
            client.wait_until(healthy, remaining(), f"healthy {', '.join(keys)}")

    def _deployment_pids(self) -> set[int]:
        """Every live process of this deployment: the components' sessions and
        descendants, and anything carrying this deployment's environment marker."""
        pids: set[int] = set()
        sids = {c.pid for c in self.components.values() if c.pid}
        for c in self.components.values():
            if c.pid is None:
                continue
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(c.pid)
                pids.add(parent.pid)
                pids.update(p.pid for p in parent.children(recursive=True))
        me = os.getpid()
        for proc in psutil.process_iter():
            if proc.pid == me:
                continue
            try:
                if os.getsid(proc.pid) in sids:
                    pids.add(proc.pid)
                    continue
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if proc.environ().get(_MARKER) == self.marker:
                    pids.add(proc.pid)
            except (psutil.Error, OSError):
                continue
        return pids

    def _alive(self, pids: Iterable[int]) -> list[psutil.Process]:
        out = []
        for pid in pids:
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.Error:
                continue
        return out

    def stop(self, *, check_leftovers: bool = True) -> None:
        """SIGTERM every component's process group, SIGKILL after ``stop_grace``
        seconds, reap, and check that no process of the deployment is left."""
        if self._stopped:
            return
        self._stopped = True
        t0 = time.monotonic()
        groups = {c.pid for c in self.components.values() if c.pid}
        if self._client is not None:
            self._client.close()  # no keep-alive connection for uvicorn to wait on
        try:
            pids = self._deployment_pids()
            for c in self.components.values():
                c.signal_group(signal.SIGTERM)
            # Processes outside the groups (e.g. the `start_new_session` shells of
            # BashOperator tasks) are signalled one by one.
            for p in self._alive(pids):
                with contextlib.suppress(psutil.Error, OSError):
                    if os.getpgid(p.pid) not in groups:
                        p.terminate()
            deadline = time.monotonic() + self.stop_grace
            while True:
                for c in self.components.values():
                    c.poll()  # reap the leaders
                pids |= self._deployment_pids()
                if not self._alive(pids):
                    break
                if time.monotonic() >= deadline:
                    for c in self.components.values():
                        c.signal_group(signal.SIGKILL)
                    for p in self._alive(pids):
                        with contextlib.suppress(psutil.Error):
                            p.kill()
                    break
                time.sleep(0.2)
            for c in self.components.values():
                if c.proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        c.proc.wait(timeout=10)
            left: list[str] = []
            for _ in range(25):  # SIGKILLed processes need a moment to disappear
                left = [
                    f"{p.pid} {' '.join(p.cmdline())[:160]}"
                    for p in self._alive(pids | self._deployment_pids())
                    if p.is_running()
                ]
                if not left:
                    break
                time.sleep(0.2)
            self.leftovers = left
            if left and check_leftovers:
                raise DeploymentError(f"processes left after stopping Airflow: {left}")
        finally:
            self.timings["stop"] = time.monotonic() - t0

    def __enter__(self) -> AirflowDeployment:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # While a test is already failing, report leftovers without masking its error.
        self.stop(check_leftovers=exc_type is None)
        if exc_type is not None and self.leftovers:
            print(f"WARNING: processes left after stopping Airflow: {self.leftovers}", file=sys.stderr)
