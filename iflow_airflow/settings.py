"""Deployment settings of iflow-airflow: the ``[iflow]`` section of airflow.cfg.

Read like any Airflow option: ``AIRFLOW__IFLOW__<KEY>`` in the environment wins,
then ``[iflow] <key>`` in airflow.cfg, then the default. Airflow's configuration
is imported lazily so the plan layer stays importable (and fast) without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
}


def get(key: str) -> str:
    env = os.environ.get(f"AIRFLOW__IFLOW__{key.upper()}")
    if env is not None:
        return env
    try:
        from airflow.configuration import conf
    except Exception:  # Airflow not importable: plain defaults (CLI on a laptop)
        return DEFAULTS[key]
    return conf.get("iflow", key, fallback=DEFAULTS[key])


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
