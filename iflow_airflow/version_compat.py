"""Touchpoints with Airflow internals (private modules, hard-coded values), in one file.

Each function names the Airflow version it was checked against and imports lazily, so
importing this module costs nothing. When Airflow moves a name, the function to mend is here.

Checked against apache-airflow 3.3.2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

#: The Airflow versions whose internals this module was read against.
CHECKED_AGAINST = ("3.3",)


def serve_logs_on(host: str) -> None:
    """Make this process's task-log servers listen on ``host`` instead of every interface.

    Airflow 3.3.2: ``airflow.utils.serve_logs.core.serve_logs`` calls
    ``uvicorn.run(..., host="")`` (all interfaces, no setting). The scheduler (LocalExecutor)
    and the triggerer start it with ``multiprocessing.Process`` (fork on Linux), so patching
    the module's ``uvicorn`` reference before the component starts reaches the child.
    Limit: with the ``spawn`` start method the child would not see the patch.
    """
    import types

    from airflow.utils.serve_logs import core

    real_run = core.uvicorn.run

    def run(app: str, **kwargs: object) -> object:
        kwargs["host"] = host
        return real_run(app, **kwargs)

    core.uvicorn = types.SimpleNamespace(run=run)


def standalone_components_via(make_argv: Callable[[Sequence[str]], list[str]]) -> None:
    """Have ``airflow standalone`` start each component as ``make_argv(command)``.

    Airflow 3.3.2: ``standalone_command.SubCommand.run`` starts ``["airflow", *self.command]``
    with stdout piped into the parent's output queue (the lines standalone prints with the
    component's name). This replaces that method with the same loop over another argv.
    """
    import subprocess

    from airflow.cli.commands import standalone_command

    def run(self: standalone_command.SubCommand) -> None:
        self.process = subprocess.Popen(make_argv(self.command), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, env=self.env)
        for line in self.process.stdout:
            self.parent.output_queue.append((self.name, line))

    standalone_command.SubCommand.run = run


def run_airflow_cli(argv: Sequence[str]) -> None:
    """``airflow ARGV...`` in this process (Airflow 3.3.2: ``airflow.__main__.main`` reads ``sys.argv``)."""
    import sys

    from airflow.__main__ import main

    sys.argv = ["airflow", *argv]
    main()


async def request_user(request: object) -> object:
    """The Airflow user of an api-server request, as every REST route resolves it; raises
    ``HTTPException(401)`` without credentials.

    Airflow 3.3.2: ``airflow.api_fastapi.core_api.security.get_user(request, _oauth_token,
    bearer_credentials)`` is a FastAPI dependency (Bearer header first, then the UI's
    ``_token`` cookie); ``bearer_scheme`` is the ``HTTPBearer(auto_error=False)`` it depends on.
    """
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    return await get_user(request, None, await bearer_scheme(request))


def login_url(next_url: str) -> str:
    """The auth manager's login page, coming back to ``next_url`` after login.

    Airflow 3.3.2: ``get_auth_manager().get_url_login(next_url=...)`` (SimpleAuthManager:
    ``/auth/login?next=...``; the login page only follows a ``next`` on the same host).
    """
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)
