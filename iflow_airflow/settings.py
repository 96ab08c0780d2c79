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
    # Airflow connections of the alert channels (SPEC §7): secrets live there, never in YAML.
    "smtp_conn_id": "smtp_default",
    "slack_conn_id": "slack_default",
    # Sender of alert mails; empty: the SMTP connection's `from_email` extra.
    "email_from": "",
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


@dataclass(frozen=True)
class IflowSettings:
    allowed_modules: tuple[str, ...] = ()
    agent_command: str = DEFAULTS["agent_command"]
    max_file_bytes: int = int(DEFAULTS["max_file_bytes"])
    pool_prefix: str = DEFAULTS["pool_prefix"]

    @classmethod
    def from_config(cls) -> IflowSettings:
        return cls(
            allowed_modules=_split(get("allowed_modules")),
            agent_command=get("agent_command"),
            max_file_bytes=int(get("max_file_bytes")),
            pool_prefix=get("pool_prefix"),
        )

    def module_allowed(self, module: str) -> bool:
        """True when ``module`` is one of the allowed prefixes or inside one (dot boundary)."""
        return any(module == p or module.startswith(p.rstrip(".") + ".") for p in self.allowed_modules)
