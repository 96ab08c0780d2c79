"""`make run` as people start and stop it: scripts/run-standalone on a free port, stopped by a signal.

Each case starts the real script (``SKIP_INSTALL=1``, a temporary ``AIRFLOW_HOME``, free
ports for the api-server and both task-log servers), waits for ``Airflow is ready``, checks
what a running deployment must show (log servers on loopback only, no insecure-key warning,
the token secret kept in AIRFLOW_HOME), sends the signal, and checks that every process of
the deployment is gone within 15 s (``STOP_GRACE`` 10 s, then SIGKILL).

* ``sigint-group``: SIGINT to the script's process group;
* ``make-ctrl-c``: ``make run``, then SIGINT to its process group, what Ctrl-C in a terminal sends;
* ``background-make-sigint``: ``make run`` started in the background of a non-interactive
  shell (SIGINT inherited as ignored, as ``sh -c 'make run &'`` does), then SIGINT to its group;
* ``sigterm``: SIGTERM to the script alone (what a service manager or ``kill`` sends).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from harness import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
READY = "Airflow is ready"
STOP_WITHIN = 15.0


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def plain_env(home: Path) -> dict[str, str]:
    """The caller's environment without Airflow settings, plus this deployment's home and ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "_IFLOW"))}
    env.update(AIRFLOW_HOME=str(home), PORT=str(free_port()), SKIP_INSTALL="1",
               AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
               AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()))
    return env


def deployment_processes(home: Path, session: int) -> list[psutil.Process]:
    """Every live process of the deployment: in the session the test started it in, or (task
    commands run in sessions of their own) with this AIRFLOW_HOME in its environment. The log
    servers rename themselves with setproctitle, which wipes what /proc shows of their
    environment, so the session is what finds them."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if os.getsid(proc.pid) == session or proc.environ().get("AIRFLOW_HOME") == str(home):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def wait_ready(proc: subprocess.Popen, log: Path, timeout: float = 420) -> None:
    deadline = time.monotonic() + timeout
    while READY not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"run-standalone not ready (exit {proc.poll()}):\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(1)


def listening(procs: list[psutil.Process], ports: set[int]) -> set[tuple[str, int]]:
    out = set()
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except (psutil.Error, OSError):
            continue
        out |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port in ports}
    return out


def start(case: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    out = log.open("wb")
    if case in ("background-make-sigint", "make-ctrl-c"):
        return subprocess.Popen(["make", "-s", "run"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_ignore_sigint if case == "background-make-sigint" else None)
    return subprocess.Popen([str(REPO / "scripts" / "run-standalone")], cwd=REPO, env=env, stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def check_running(proc: subprocess.Popen, home: Path, log: Path, env: dict[str, str]) -> None:
    procs = deployment_processes(home, proc.pid)
    ports = {int(env[f"AIRFLOW__LOGGING__{w}_LOG_SERVER_PORT"]) for w in ("WORKER", "TRIGGER")}
    deadline = time.monotonic() + 60
    while len(listening(procs, ports)) < 2 and time.monotonic() < deadline:
        time.sleep(1)
        procs = deployment_processes(home, proc.pid)
    bound = listening(procs, ports)
    assert {ip for ip, _ in bound} == {"127.0.0.1"}, bound
    assert {port for _, port in bound} == ports, bound
    secrets = home / "secrets.env"
    assert oct(secrets.stat().st_mode & 0o777) == "0o600"
    jwt = [line.split("=", 1)[1] for line in secrets.read_text().splitlines() if "JWT_SECRET" in line]
    assert len(jwt[0]) >= 64
    text = log.read_text(errors="replace")
    assert "InsecureKeyLengthWarning" not in text
    if shutil.which("iflow", path=env["PATH"]) is None:  # no iFlow CLI: prompt tasks get the demo agent
        assert "prompt: tasks:    the offline DEMO agent (no iflow CLI on PATH)" in text


class Case:
    """One deployment started as ``case`` says, in its own folder."""

    def __init__(self, case: str, folder: Path) -> None:
        folder.mkdir()
        self.case, self.home, self.log = case, folder / "home", folder / "run.log"
        self.env = plain_env(self.home)
        self.proc = start(case, self.env, self.log)

    def check(self) -> None:
        wait_ready(self.proc, self.log)
        check_running(self.proc, self.home, self.log, self.env)
        before = deployment_processes(self.home, self.proc.pid)
        assert len(before) >= 5, [p.cmdline() for p in before]

    def signal(self) -> float:
        if self.case == "sigterm":
            os.kill(self.proc.pid, signal.SIGTERM)
        else:
            os.killpg(self.proc.pid, signal.SIGINT)
        return time.monotonic()

    def check_gone(self, t0: float) -> None:
        while deployment_processes(self.home, self.proc.pid) and time.monotonic() - t0 < STOP_WITHIN:
            time.sleep(0.25)
        left = [(p.pid, p.cmdline()) for p in deployment_processes(self.home, self.proc.pid)]
        took = time.monotonic() - t0
        assert left == [], f"still running {took:.1f} s after {self.case}: {left}\n{self.log.read_text()[-3000:]}"
        assert self.proc.wait(timeout=5) != 0
        assert "stopping Airflow" in self.log.read_text(errors="replace")
        print(f"[{self.case}] everything gone {took:.1f} s after the signal")

    def kill(self) -> None:
        for p in deployment_processes(self.home, self.proc.pid):
            p.kill()
        if self.proc.poll() is None:
            self.proc.kill()


# Two deployments at a time (one per core): the cases differ only in how they are started and
# stopped, and four start-ups one after another were the slowest part of CI.
@pytest.mark.parametrize("cases", [("sigint-group", "sigterm"), ("make-ctrl-c", "background-make-sigint")])
def test_make_run_stops_on_the_usual_signals(cases: tuple[str, str], tmp_path: Path) -> None:
    running = []
    try:
        for case in cases:
            running.append(Case(case, tmp_path / case))
        for c in running:
            c.check()
        stops = [(c, c.signal()) for c in running]
        for c, t0 in stops:
            c.check_gone(t0)
    finally:
        for c in running:
            c.kill()
