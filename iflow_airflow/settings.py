"""Deployment settings of iflow-airflow: the ``[iflow]`` section, read the way Airflow reads options.

Order (first found wins): ``AIRFLOW__IFLOW__<KEY>`` in the environment, ``[iflow] <key>``
in the deployment's airflow.cfg (``AIRFLOW_CONFIG`` or ``$AIRFLOW_HOME/airflow.cfg``), the
``[iflow]`` section of the project's ``config/iflow.cfg`` (see :func:`project_file`), then
the default. Airflow's configuration is imported lazily so the plan layer stays
importable (and fast) without it.

The project file sits in ``config/`` beside the dags folder (docker compose mounts
``./config`` at ``/opt/airflow/config`` beside ``/opt/airflow/dags``), never inside it:
whoever may write workflow files cannot grant themselves deployment settings.
"""

from __future__ import annotations

import configparser
import os
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULTS: dict[str, str] = {
    # Module prefixes whose callables and operator classes YAML files may use.
    # Empty: none. "iflow_airflow.examples" ships harmless demo callables.
    "allowed_modules": "",
    # The agent run by ``prompt:`` tasks; the prompt is appended as one argument.
    "agent_command": "iflow -p",
    # Largest workflow file accepted, in bytes.
    "max_file_bytes": str(2 * 1024 * 1024),
    # Prefix of the Airflow pools that iflow resources become.
    "pool_prefix": "iflow_",
    # Seconds between the scheduler-side resource keeper's checks (pools, saturation).
    "keeper_interval": "5",
    # false: no task/run listeners (events, metrics, alerts); pools are still kept.
    "monitoring": "true",
    # Folder of the compiled-plan cache of the DAG loader, the resource keeper and the
    # iflow page: empty = $AIRFLOW_HOME/iflow-cache; "off" = always compile (plan_cache.py).
    "plan_cache": "",
    # What a workflow whose file was valid and became invalid does: keep_last_good (its
    # last good DAG stays, runs and is scheduled), pause (kept, but paused) or hide
    # (gone, like a broken .py file). SPEC §5; last_good.py.
    "on_invalid": "keep_last_good",
    # Folder of the last good version of every workflow file; every component that loads
    # DAGs (dag-processor, workers, triggerer) must see the same folder. Empty =
    # $AIRFLOW_HOME/iflow-last-good; "off" = keep nothing (a broken file is only an error).
    "last_good_store": "",
    # Seconds one file may take to compile, and to build, inside the loader's shared parse;
    # a file over it becomes its own error (keeping its last good version). 0 = no limit.
    "file_parse_budget": "5",
    # Seconds between the dag-processor's looks at the YAML files' size and mtime; a change
    # queues the loader for parsing at once (edit -> DAG in seconds). 0 = off: only
    # [dag_processor] min_file_process_interval re-parses the loader.
    "watch_interval": "1",
    # Seconds after which a loader whose YAML files did not change is parsed again anyway
    # (with the watch on, a change is parsed at once). 0: Airflow's min_file_process_interval.
    "reparse_interval": "600",
    # Airflow connections of the alert channels (SPEC §7): secrets live there, never in YAML.
    "smtp_conn_id": "smtp_default",
    "slack_conn_id": "slack_default",
    # Sender of alert mails; empty: the SMTP connection's `from_email` extra.
    "email_from": "",
}

#: The project's settings file, relative to the parent of the dags folder.
PROJECT_FILE = Path("config") / "iflow.cfg"

_dags_folder: Path | None = None  # set by the CLI for the folder it checks
_project_cache: dict[Path, tuple[float, dict[str, str]]] = {}


def use_dags_folder(folder: Path | None) -> None:
    """Read the project file beside ``folder`` (the CLI calls this for the dags folder it checks).

    ``None`` goes back to Airflow's ``[core] dags_folder``.
    """
    global _dags_folder
    _dags_folder = Path(folder).resolve() if folder is not None else None


def _airflow_conf(load: bool = True):
    """Airflow's ``conf``; with ``load`` false only if Airflow's configuration is imported already."""
    if not load:
        module = sys.modules.get("airflow.configuration")
        return getattr(module, "conf", None)
    try:
        from airflow.configuration import conf
    except Exception:  # Airflow not importable: no airflow.cfg (CLI on a laptop)
        return None
    return conf


def project_file(load: bool = True) -> Path | None:
    """``config/iflow.cfg`` beside the dags folder: the one the CLI checks, else ``[core] dags_folder``."""
    folder = _dags_folder
    if folder is None:
        conf = _airflow_conf(load)
        if conf is None:
            return None
        folder = Path(conf.get("core", "dags_folder", fallback=".")).resolve()
    return folder.parent / PROJECT_FILE


def _project_values(path: Path | None) -> dict[str, str]:
    """The ``[iflow]`` options of ``path`` (re-read when its mtime changes; {} when absent)."""
    if path is None:
        return {}
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    cached = _project_cache.get(path)
    if cached is None or cached[0] != mtime:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(path, encoding="utf-8")
        values = dict(parser["iflow"]) if parser.has_section("iflow") else {}
        _project_cache[path] = cached = (mtime, values)
    return cached[1]


def lookup(key: str, load: bool = True) -> tuple[str, str]:
    """(value, where it came from) for ``[iflow] key``, in the order of the module docstring.

    ``load`` false never imports Airflow (error messages of the plan layer, which must stay
    light): airflow.cfg is then consulted only if Airflow's configuration is loaded already.
    """
    env_key = f"AIRFLOW__IFLOW__{key.upper()}"
    if env_key in os.environ:
        return os.environ[env_key], f"the environment variable {env_key}"
    conf = _airflow_conf(load)
    if conf is not None and conf.has_option("iflow", key):
        return conf.get("iflow", key), f"[iflow] {key} in {os.environ.get('AIRFLOW_CONFIG') or 'airflow.cfg'}"
    path = project_file(load)
    values = _project_values(path)
    if key in values:
        return values[key], f"[iflow] {key} in {path}"
    return DEFAULTS[key], "the default: set in no file or environment variable"


def get(key: str) -> str:
    """The value of ``[iflow] key`` (see :func:`lookup`)."""
    return lookup(key)[0]


def how_to_set(key: str, value: str, load: bool = True) -> str:
    """How a person sets ``[iflow] key`` to ``value``: in the place that wins now (see :func:`lookup`)."""
    _, source = lookup(key, load)
    env_key = f"AIRFLOW__IFLOW__{key.upper()}"
    if source.startswith("the environment"):
        return f"set the environment variable {env_key}={value} (it wins over every file)"
    if source.startswith("[iflow]"):
        return f"change {source} to `{key} = {value}` (or set the environment variable {env_key}={value})"
    path = project_file(load)
    where = f" in {path}" if path is not None else " in airflow.cfg"
    return f"add `{key} = {value}` under [iflow]{where}, or set the environment variable {env_key}={value}"


def _split(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.replace("\n", ",").split(",") if p.strip())


ON_INVALID = ("keep_last_good", "pause", "hide")


def on_invalid_policy(value: str) -> str:
    """The ``[iflow] on_invalid`` policy; an unknown value is a deployment error, said at once."""
    policy = value.strip().lower()
    if policy not in ON_INVALID:
        raise ValueError(f"[iflow] on_invalid = {value!r}: expected one of {', '.join(ON_INVALID)}")
    return policy


def _seconds(value: str, key: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"[iflow] {key} = {value!r}: expected a number of seconds (0: no limit)") from None
    return max(seconds, 0.0)


@dataclass(frozen=True)
class IflowSettings:
    allowed_modules: tuple[str, ...] = ()
    agent_command: str = DEFAULTS["agent_command"]
    max_file_bytes: int = int(DEFAULTS["max_file_bytes"])
    pool_prefix: str = DEFAULTS["pool_prefix"]
    on_invalid: str = DEFAULTS["on_invalid"]
    file_parse_budget: float = float(DEFAULTS["file_parse_budget"])

    @classmethod
    def from_config(cls) -> IflowSettings:
        return cls(
            allowed_modules=_split(get("allowed_modules")),
            agent_command=get("agent_command"),
            max_file_bytes=int(get("max_file_bytes")),
            pool_prefix=get("pool_prefix"),
            on_invalid=on_invalid_policy(get("on_invalid")),
            file_parse_budget=_seconds(get("file_parse_budget"), "file_parse_budget"),
        )

    def module_allowed(self, module: str) -> bool:
        """True when ``module`` is one of the allowed prefixes or inside one (dot boundary)."""
        return any(module == p or module.startswith(p.rstrip(".") + ".") for p in self.allowed_modules)
