"""``airflow standalone`` for one machine, with every server on loopback (used by ``make run``).

``python -m iflow_airflow.runtime.standalone`` runs Airflow's own standalone command (the
scheduler, dag-processor, api-server and triggerer, their output prefixed by name), with one
difference: the task-log servers that the scheduler (LocalExecutor) and the triggerer start
listen on 127.0.0.1 instead of every interface, as the api-server already does. Task
processes record ``127.0.0.1`` as their host (``[core] hostname_callable`` =
``iflow_airflow.runtime.standalone.loopback_hostname``, set by scripts/run-standalone), so
the api-server reads a running task's log from the loopback server.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

LOOPBACK = "127.0.0.1"


def loopback_hostname() -> str:
    """``[core] hostname_callable`` for a single-machine deployment: every component is local."""
    return LOOPBACK


def component_argv(command: Sequence[str]) -> list[str]:
    """How standalone starts one component: through :func:`main` so its log server is on loopback."""
    # -P: never the working directory on sys.path (a checkout's egg-info would register the plugin twice)
    return [sys.executable, "-P", "-m", "iflow_airflow.runtime.standalone", "component", *command]


def main(argv: Sequence[str] | None = None) -> None:
    """``standalone`` (default): Airflow standalone; ``component CMD...``: one component (``airflow CMD...``)."""
    from iflow_airflow import version_compat

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["component"]:
        version_compat.serve_logs_on(LOOPBACK)
        version_compat.run_airflow_cli(args[1:])
        return
    version_compat.standalone_components_via(component_argv)
    version_compat.run_airflow_cli(["standalone"])


if __name__ == "__main__":
    main()
