"""The embedded Airflow's supervisor: one small process that owns every Airflow process of an engine.

    python -m iflow_airflow.client.supervisor SPEC.json     (started by client/embedded.py)

Rule: nothing the engine started outlives the engine's process. The supervisor

* reads its standard input, a pipe whose only writer is the engine: end of file
  (the engine closed it, exited or was SIGKILLed) or ``stop`` means tear down;
  it also polls its parent pid (a fork of the engine could keep the pipe open);
* is a child subreaper (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``), so processes whose
  parent died (task shells started in their own session) become its children
  instead of init's and are found at teardown; every process also carries the
  engine's marker variable, found by a process scan as a fallback;
* starts each component in its own process group with ``PR_SET_PDEATHSIG``
  (SIGTERM), so a component ends even if the supervisor itself is SIGKILLed;
* starts the ``early`` components (the api-server) at once through
  :mod:`iflow_airflow.client.launch` (each imports its modules and builds what
  needs no database, then waits on its stdin pipe), meanwhile runs ``airflow db
  migrate`` (on the default SQLite database it copies instead the template that
  the first migration of this Airflow version kept, see
  :data:`~iflow_airflow.client.embedded.template_path`), then starts the other
  components and writes ``go`` to all, except the ``late`` ones (the triggerer),
  which start once the api-server accepts connections; it writes its phase to
  ``status.json`` (``migrating``, ``running``,
  ``failed`` with the reason, ``stopped``); a component that exits (also while
  the database is migrated) is a failure and tears the whole Airflow down, so
  the engine's waits end at once with the reason.

Teardown: SIGTERM to every group and every found process, SIGKILL after
``grace`` seconds, reap; when the engine died, also remove its temporary home.
Limits: the parent-death signal and the subreaper are Linux-only (elsewhere the
pipe, the parent poll and the marker scan remain); a process that changed its
environment and left the tree is not found.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
POLL = 0.5
MIGRATE_POLL = 0.05  # the components wait for the migration's end: notice it at once


def _prctl(option: int, value: int) -> bool:
    """``prctl(option, value)`` through libc; False where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def redact(url: str | None) -> str:
    """A database URL with its password replaced by ``***`` (it goes into error messages)."""
    if not url:
        return "(default)"
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def write_status(home: Path, phase: str, **extra: Any) -> None:
    """Atomically replace ``home/status.json`` (the engine polls it)."""
    tmp = home / "status.json.tmp"
    tmp.write_text(json.dumps({"phase": phase, "pid": os.getpid(), "time": time.time(), **extra}))
    os.replace(tmp, home / "status.json")


def read_status(home: Path) -> dict[str, Any]:
    """The supervisor's last status (``{}`` before its first write)."""
    try:
        return json.loads((home / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ("(no log)" when missing)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 250 * lines))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def marked_processes(marker_key: str, marker: str, exclude: int | None = None) -> list[psutil.Process]:
    """Live processes (not zombies) whose environment carries ``marker_key=marker``."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid in (exclude, os.getpid()):
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(marker_key) == marker:
                found.append(proc)
    return found


class Supervisor:
    """Start, watch and tear down one embedded Airflow (see the module docstring)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.home = Path(spec["home"])
        self.env: dict[str, str] = spec["env"]
        self.components: dict[str, list[str]] = spec["components"]
        self.early: list[str] = [n for n in spec.get("early", ()) if n in self.components]
        self.late: list[str] = [n for n in spec.get("late", ()) if n in self.components and n not in self.early]
        self.api_port = int(spec.get("api_port") or 0)
        self.migrate: list[str] = spec["migrate"]
        self.grace = float(spec.get("grace", 15))
        self.marker_key, self.marker = spec["marker_key"], spec["marker"]
        self.parent = os.getppid()
        self.sqlite = Path(spec["sqlite"]) if spec.get("sqlite") else None  # the default database's file
        self.template = Path(spec["template"]) if spec.get("template") else None
        self.migrated_mark = self.home / f".migrated-airflow-{spec.get('airflow_version', 'unknown')}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.orphaned = False
        self.remove_home = bool(spec.get("remove_home"))

    def _popen(self, name: str, argv: list[str], gated: bool = False) -> subprocess.Popen[bytes]:
        """Start ``argv`` logging to ``logs/<name>.log``; ``gated``: its stdin is a pipe that
        :meth:`_open_gates` writes ``go`` to (client/launch.py waits for it), else /dev/null."""
        log = self.home / "logs" / f"{name}.log"
        with log.open("ab") as out:
            return subprocess.Popen(argv, env=self.env, cwd=self.home,
                                    stdin=subprocess.PIPE if gated else subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent)

    def _start(self, names: list[str]) -> None:
        for name in names:
            self.procs[name] = self._popen(name, self.components[name], gated=True)

    def _api_answers(self) -> bool:
        """Does the api-server accept connections yet (then the ``late`` components start)?"""
        try:
            socket.create_connection(("127.0.0.1", self.api_port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def _open_gates(self) -> None:
        """The database is ready: let every waiting component run its command."""
        for proc in self.procs.values():
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.write(b"go\n")
                    proc.stdin.close()

    def _component_died(self) -> bool:
        """If a component exited, record the failure (its name, exit code and log tail) and say so."""
        dead = {n: p.returncode for n, p in self.procs.items() if n != "db-migrate" and p.poll() is not None}
        if not dead:
            return False
        name = next(iter(dead))
        log = self.home / "logs" / f"{name}.log"
        write_status(self.home, "failed", reason=f"Airflow component {name} exited with {dead[name]}",
                     log=str(log), tail=tail(log))
        return True

    def _lifeline_cut(self, timeout: float) -> bool:
        """True when the engine is gone or asked to stop (waits up to ``timeout`` for its word)."""
        if self.stopping:
            return True
        if os.getppid() != self.parent:
            self.orphaned = True
            return True
        try:
            ready, _, _ = select.select([sys.stdin], [], [], timeout)
        except (OSError, ValueError):
            return True
        if ready:
            data = os.read(sys.stdin.fileno(), 64)
            self.orphaned = not data  # end of file without "stop": the engine's process is gone
            return not data or b"stop" in data
        return False

    def _from_template(self) -> bool:
        """Skip ``db migrate`` when the SQLite file is already migrated by this Airflow version, or
        copy the migrated template the first engine of this version left (saves 5-15 s per start)."""
        if not self.sqlite:
            return False
        if self.sqlite.exists():
            return self.migrated_mark.exists()
        if self.template and self.template.is_file():
            shutil.copyfile(self.template, self.sqlite)
            self.migrated_mark.touch()
            return True
        return False

    def _keep_template(self) -> None:
        """After a migration of a fresh SQLite file, keep a copy as the template (best effort)."""
        if not (self.sqlite and self.template) or self.template.exists():
            return
        with contextlib.suppress(OSError):
            self.template.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.template.with_name(f".{self.template.name}.{os.getpid()}.tmp")
            shutil.copyfile(self.sqlite, tmp)
            os.replace(tmp, self.template)

    def _wal(self) -> None:
        """Switch the SQLite file to WAL (it stays so): readers never block the one writer."""
        if self.sqlite and self.sqlite.exists():
            with contextlib.closing(sqlite3.connect(self.sqlite, timeout=30)) as db:
                db.execute("PRAGMA journal_mode=WAL")

    def _migrate(self) -> bool:
        write_status(self.home, "migrating")
        if self._from_template():
            self._wal()
            return True
        fresh = self.sqlite is not None and not self.sqlite.exists()
        proc = self._popen("db-migrate", self.migrate)
        self.procs["db-migrate"] = proc
        while proc.poll() is None:  # the components import meanwhile (client/launch.py)
            if self._lifeline_cut(MIGRATE_POLL) or self._component_died():
                return False
        del self.procs["db-migrate"]
        if proc.returncode != 0:
            log = self.home / "logs" / "db-migrate.log"
            write_status(self.home, "failed", reason=f"`airflow db migrate` failed (exit {proc.returncode}) "
                                                     f"with [database] sql_alchemy_conn = "
                                                     f"{redact(self.env.get('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN'))}",
                         log=str(log), tail=tail(log))
            return False
        if fresh:
            self._keep_template()
        if self.sqlite:
            self.migrated_mark.touch()
            self._wal()
        return True

    def run(self) -> int:
        """Migrate, start the components, watch until told to stop or one dies; always tear down."""
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        try:
            self._start(self.early)  # they import, then wait for the database
            if not self._migrate():
                return 1
            self._start([n for n in self.components if n not in self.early and n not in self.late])
            self._open_gates()
            write_status(self.home, "running", components={n: p.pid for n, p in self.procs.items()})
            return self._watch()
        finally:
            self.teardown()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _watch(self) -> int:
        late = self.late
        while not self._lifeline_cut(POLL):
            if self._component_died():
                return 1
            if late and (not self.api_port or self._api_answers()):
                self._start(late)
                self._open_gates()
                late = []
                write_status(self.home, "running", components={n: p.pid for n, p in self.procs.items()})
        return 0

    def _ours(self) -> list[psutil.Process]:
        """Every live process of this Airflow: our descendants and the marked ones."""
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            for proc in psutil.Process().children(recursive=True):
                found[proc.pid] = proc
        for proc in marked_processes(self.marker_key, self.marker):
            found.setdefault(proc.pid, proc)
        return [p for p in found.values() if _alive(p)]

    def teardown(self) -> None:
        """SIGTERM every group and process, SIGKILL what is left after ``grace`` seconds, reap."""
        for proc in self.procs.values():
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._ours():
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and self._ours():
            _reap()
            time.sleep(0.1)
        for proc in self._ours():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        for proc in self.procs.values():
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        end = time.monotonic() + 5
        while time.monotonic() < end and self._ours():
            _reap()
            time.sleep(0.1)
        _reap()
        if self.orphaned and self.remove_home:  # nobody is left to remove the engine's temporary home
            shutil.rmtree(self.home, ignore_errors=True)
        elif read_status(self.home).get("phase") != "failed":
            write_status(self.home, "stopped")


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reap() -> None:
    """Collect every exited child (a subreaper inherits orphans' zombies too)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    return Supervisor(spec).run()


if __name__ == "__main__":  # pragma: no cover - runs as the supervisor process
    sys.exit(main(sys.argv[1:]))
