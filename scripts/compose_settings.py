"""Deployment settings: one source for docker compose, the native run and the tests.

``docker-compose.yaml`` (``x-airflow-common.environment``) is THE place where the
Airflow settings of an iflow deployment are written down. This module reads it so
that ``scripts/run-standalone`` and the end-to-end tests run Airflow with the same
settings as users get from ``docker compose up``:

* :func:`compose_settings` returns that mapping as it stands;
* :func:`standalone_env` keeps its settings that are not deployment-specific and adds
  a single-machine deployment (SQLite in ``AIRFLOW_HOME``, LocalExecutor, api-server on
  127.0.0.1);
* :func:`celery_env` does the same for a CeleryExecutor deployment on a local
  PostgreSQL and Redis (needs ``apache-airflow-providers-celery`` and ``psycopg2``).

The functions return only the variables to set; callers merge them over their own
environment (``{**os.environ, **standalone_env(...)}``).  Nothing here imports Airflow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

#: The repository root when the package runs from a checkout (editable install).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Default compose file; relative paths given to :func:`compose_settings` resolve here.
DEFAULT_COMPOSE_FILE = "docker-compose.yaml"

#: Settings of the compose file that describe *that* deployment (containers, database,
#: broker, host names, paths, secrets) and so are never carried over to another one.
DEPLOYMENT_SPECIFIC_KEYS = frozenset(
    {
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__PLUGINS_FOLDER",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "AIRFLOW__IFLOW__LAST_GOOD_STORE",  # a container path; native runs use $AIRFLOW_HOME's
        "AIRFLOW__API__HOST",
        "AIRFLOW__API__PORT",
        "AIRFLOW__API__BASE_URL",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",  # a fixed port (8974) per scheduler
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
    }
)
#: Whole sections that are deployment-specific.
DEPLOYMENT_SPECIFIC_PREFIXES = (
    "AIRFLOW__DATABASE__",
    "AIRFLOW__CELERY__",
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__",
    "AIRFLOW__CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS__",
)


def is_deployment_specific(key: str) -> bool:
    """True for a compose setting that must not be carried over to another deployment.

    Everything that is not an ``AIRFLOW__SECTION__KEY`` option (``AIRFLOW_CONFIG``,
    ``_PIP_ADDITIONAL_REQUIREMENTS``, ``DUMB_INIT_SETSID`` ...) is container plumbing and
    counts as deployment-specific too.
    """
    if not key.startswith("AIRFLOW__"):
        return True
    return key in DEPLOYMENT_SPECIFIC_KEYS or key.startswith(DEPLOYMENT_SPECIFIC_PREFIXES)


# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, $VAR and $$ as in compose.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def _interpolate(value: str, environ: Mapping[str, str], where: str) -> str:
    def replace(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("named")
        op, arg = m.group("op"), m.group("arg") or ""
        current = environ.get(name)
        if op in (":-", ":?"):
            missing = not current
        else:
            missing = current is None
        if op and op.endswith("-"):
            return arg if missing else current  # type: ignore[return-value]
        if op and op.endswith("?") and missing:
            raise ValueError(f"{where}: ${{{name}}} is required: {arg or 'not set'}")
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def _resolve(path: str | os.PathLike[str] | None) -> Path:
    p = Path(path if path is not None else DEFAULT_COMPOSE_FILE)
    return p if p.is_absolute() else REPO_ROOT / p


def compose_settings(
    path: str | os.PathLike[str] | None = DEFAULT_COMPOSE_FILE,
    *,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The ``environment:`` mapping of ``x-airflow-common`` in the compose file.

    ``path`` relative to the repository root (the folder next to this package) unless
    absolute; when the package is installed non-editable, pass the checkout's file.
    Values come back as strings, with compose's ``${VAR:-default}`` interpolation done
    against ``environ`` (default: ``os.environ``), as ``docker compose`` would.
    """
    file = _resolve(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}: compose file not found; pass the path of the repository's "
            "docker-compose.yaml (the package may be installed outside the checkout)"
        )
    with file.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    try:
        env = data["x-airflow-common"]["environment"]
    except (TypeError, KeyError) as e:
        raise ValueError(f"{file}: no `x-airflow-common.environment` mapping") from e
    if isinstance(env, list):  # the ["KEY=value", ...] form is legal compose too
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    if not isinstance(env, dict):
        raise ValueError(f"{file}: `x-airflow-common.environment` must be a mapping")
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for key, value in env.items():
        if value is None:  # `KEY:` alone passes the shell's value through
            if str(key) in environ:
                out[str(key)] = environ[str(key)]
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        out[str(key)] = _interpolate(text, environ, f"{file}: {key}")
    return out


#: The project's ``[iflow]`` settings (see ``iflow_airflow.settings``), shared with compose.
PROJECT_SETTINGS_FILE = "config/iflow.cfg"


def project_settings(path: str | os.PathLike[str] | None = PROJECT_SETTINGS_FILE) -> dict[str, str]:
    """The ``[iflow]`` options of the project file as ``AIRFLOW__IFLOW__*`` variables.

    Compose reads the file itself (``./config`` is mounted beside the dags folder); a
    native deployment with a dags folder elsewhere (the tests' temporary ones) gets the
    same values from here, so one file configures ``make run``, the CLI, compose and tests.
    """
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(_resolve(path), encoding="utf-8")
    if not parser.has_section("iflow"):
        return {}
    return {f"AIRFLOW__IFLOW__{k.upper()}": v for k, v in parser["iflow"].items()}


def standalone_env(
    airflow_home: Path,
    dags_folder: Path,
    *,
    port: int = 8080,
    plugins_folder: Path | None = None,
    compose_file: str | os.PathLike[str] | None = DEFAULT_COMPOSE_FILE,
) -> dict[str, str]:
    """Environment for a native single-machine Airflow (``airflow standalone`` or one
    process per component): the compose settings that are not deployment-specific,
    the project's ``config/iflow.cfg`` (:func:`project_settings`),
    plus SQLite in ``airflow_home``, LocalExecutor and the api-server on
    ``127.0.0.1:port`` (which the task processes also use as execution API).
    """
    home = Path(airflow_home).resolve()
    env = {k: v for k, v in compose_settings(compose_file).items() if not is_deployment_specific(k)}
    env.update(project_settings())
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            # Never pick up a config file from the caller's environment.
            "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(dags_folder).resolve()),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            # The address people (and links in logs/alerts) use ...
            "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
            # ... and the one task processes reach the execution API on (its default is
            # derived from base_url, falling back to localhost:8080; localhost may
            # resolve to ::1 while the server listens on 127.0.0.1 only).
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                home / "simple_auth_manager_passwords.json.generated"
            ),
        }
    )
    if plugins_folder is not None:
        env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(Path(plugins_folder).resolve())
    return env


def celery_env(
    airflow_home: Path,
    dags_folder: Path,
    *,
    port: int = 8080,
    dbname: str = "airflow",
    pg_host: str = "127.0.0.1",
    pg_port: int = 5432,
    pg_user: str = "postgres",
    broker_url: str = "redis://127.0.0.1:6379/0",
    worker_concurrency: int | None = None,
    plugins_folder: Path | None = None,
    compose_file: str | os.PathLike[str] | None = DEFAULT_COMPOSE_FILE,
) -> dict[str, str]:
    """Environment for a CeleryExecutor deployment on one machine: :func:`standalone_env`
    with the PostgreSQL database ``dbname`` (trust auth as ``pg_user``), the Redis
    broker ``broker_url`` and the Celery result backend in the same database.

    Workers are started with ``airflow celery worker -q <queues>`` under the same
    environment. Needs ``apache-airflow-providers-celery`` and ``psycopg2``.
    """
    env = standalone_env(
        airflow_home, dags_folder, port=port, plugins_folder=plugins_folder, compose_file=compose_file
    )
    db = f"{pg_user}@{pg_host}:{pg_port}/{dbname}"
    env.update(
        {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{db}",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{db}",
        }
    )
    if worker_concurrency is not None:
        env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(worker_concurrency)
    return env


def main(argv: list[str] | None = None) -> int:
    """``python scripts/compose_settings.py AIRFLOW_HOME DAGS_FOLDER [PORT] [PLUGINS_FOLDER]``:
    print :func:`standalone_env` as shell ``export`` lines (used by scripts/run-standalone)."""
    import shlex
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not 2 <= len(args) <= 4:
        print(main.__doc__, file=sys.stderr)
        return 2
    env = standalone_env(
        Path(args[0]),
        Path(args[1]),
        port=int(args[2]) if len(args) > 2 and args[2] else 8080,
        plugins_folder=Path(args[3]) if len(args) > 3 and args[3] else None,
    )
    for key, value in env.items():
        if key.startswith("AIRFLOW__IFLOW__") and key in os.environ:
            continue  # the caller's AIRFLOW__IFLOW__* wins over config/iflow.cfg, as everywhere
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
