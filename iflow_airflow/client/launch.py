"""Start one component of the embedded Airflow early: import it while the database is migrated.

    python -m iflow_airflow.client.launch COMPONENT [ARGS...]      (started by client/supervisor.py)

The same as ``python -m airflow COMPONENT ARGS...``, in two steps:

1. **preload**: import the modules the component needs (:data:`PRELOAD`); the
   api-server also builds its app, including the execution API's versioned
   routers that Cadwyn would otherwise build on the first request (about 4 s of
   CPU), so that work runs beside the migration instead of after it. Nothing
   here opens the database. A failure is only printed: the command proper fails
   the same way a moment later, with Airflow's own message;
2. **gate**: read standard input (a pipe from the supervisor) until ``go``, which
   the supervisor writes once the database is migrated, then run Airflow's command
   line as ``python -m airflow`` would. End of file without ``go`` (the start was
   abandoned) exits quietly.

Importing a module early changes no behaviour: the command imports the same ones.
One addition: on Python < 3.12, the locks of ``functools.cached_property`` are reset in
every forked child (:func:`_fork_safe_cached_properties`).
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import time
import traceback

#: The modules each component's command imports anyway (its command module first).
PRELOAD: dict[str, tuple[str, ...]] = {
    "api-server": ("airflow.cli.commands.api_server_command", "uvicorn"),
    # the scheduler forks its LocalExecutor workers right after it starts the iflow resource keeper's
    # thread: what that thread and the workers would import lazily is imported before (no import is
    # then in progress in another thread at a fork, see _fork_safe_cached_properties)
    "scheduler": ("airflow.cli.commands.scheduler_command", "airflow.executors.local_executor",
                  "airflow.utils.serve_logs", "airflow.sdk.execution_time.supervisor",
                  "iflow_airflow.runtime.keeper", "iflow_airflow.runtime.alerts", "iflow_airflow.runtime.monitor"),
    "dag-processor": ("airflow.cli.commands.dag_processor_command",),
    "triggerer": ("airflow.cli.commands.triggerer_command", "airflow.utils.serve_logs"),
}
GO = b"go"


def _build_api_app() -> None:
    """Build the api-server's app as its uvicorn will import it (``airflow.api_fastapi.main``), and the
    execution API's versioned routers in it (Cadwyn builds them on the first request otherwise)."""
    os.environ.setdefault("AIRFLOW_API_APPS", "all")  # what `airflow api-server` sets (its --apps default)
    main = importlib.import_module("airflow.api_fastapi.main")
    for route in main.app.routes:
        sub = getattr(route, "app", None)
        if getattr(sub, "_cadwyn_initialized", True) is False and callable(getattr(sub, "_cadwyn_initialize", None)):
            sub._cadwyn_initialize()


def _fork_safe_cached_properties() -> None:
    """Python < 3.12: a ``functools.cached_property`` computes under one lock per attribute, shared by
    every instance (pydantic's namespaces use one while a model class is built). A process forked
    while another of its threads holds it gives the child a lock held by a thread that does not exist
    there: the child hangs at its first use. Seen: a LocalExecutor worker, forked while the resource
    keeper's thread built models, hung on its first task. So every such lock is reset in each child."""
    if sys.version_info >= (3, 12) or not hasattr(os, "register_at_fork"):
        return
    import functools
    import weakref

    made: weakref.WeakSet[functools.cached_property] = weakref.WeakSet()
    original = functools.cached_property.__init__

    def init(self: functools.cached_property, func: object) -> None:
        original(self, func)
        made.add(self)

    def reset() -> None:
        for prop in list(made):
            lock = getattr(prop, "lock", None)
            if lock is not None and hasattr(lock, "_at_fork_reinit"):
                lock._at_fork_reinit()

    functools.cached_property.__init__ = init  # type: ignore[method-assign]
    os.register_at_fork(after_in_child=reset)


def preload(component: str) -> float:
    """Import what ``component`` needs (best effort); returns the seconds it took."""
    started = time.monotonic()
    try:
        importlib.import_module("airflow.cli.cli_parser")
        for module in PRELOAD.get(component, ()):
            importlib.import_module(module)
        if component == "api-server":
            _build_api_app()
    except Exception:  # the command proper reports it with Airflow's message
        print(f"iflow engine: preloading {component} failed (the command will say why):\n"
              f"{traceback.format_exc()}", file=sys.stderr, flush=True)
    return time.monotonic() - started


def wait_for_go() -> bool:
    """Block until the supervisor writes ``go`` (True) or closes the pipe (False); then stdin is /dev/null."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(0, 64)
        if not chunk:
            break
        data += chunk
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return data.strip() == GO


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m iflow_airflow.client.launch COMPONENT [ARGS...]", file=sys.stderr)
        return 2
    _fork_safe_cached_properties()  # before the imports that define the properties
    seconds = preload(argv[0])
    waited = time.monotonic()
    if not wait_for_go():
        return 0
    print(f"iflow engine: {argv[0]} preloaded in {seconds:.1f} s, waited {time.monotonic() - waited:.1f} s "
          "for the database", file=sys.stderr, flush=True)
    sys.argv = [sys.argv[0], *argv]
    runpy.run_module("airflow", run_name="__main__", alter_sys=True)  # exits through SystemExit as usual
    return 0


if __name__ == "__main__":  # pragma: no cover - runs as a component process
    sys.exit(main(sys.argv[1:]))
