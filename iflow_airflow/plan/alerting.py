"""``workflow.alerts`` and ``workflow.deadline`` -> the plan's AlertSettings.

Two checks the schema cannot make (SPEC §7): the deadline is a duration
(``"45m"``, ``"1h30m"`` or seconds), and a channel that needs a provider
package (``email``: apache-airflow-providers-smtp, ``slack``:
apache-airflow-providers-slack, both in the ``notify`` extra) has it installed
where the file is compiled. Only package metadata is read, never the provider
itself, so validation stays as fast and Airflow-free as before. The limit: the
check sees the environment that compiles the file (the dag-processor, or
``validate`` on a laptop); a worker without the provider still logs and counts
the alert as undelivered at run time.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from iflow_airflow.constants import CHANNEL_PROVIDERS
from iflow_airflow.plan.ir import AlertSettings
from iflow_airflow.plan.schedules import parse_duration


def provider_installed(distribution: str) -> bool:
    """True when the distribution's metadata is installed (nothing is imported)."""
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def plan_alerts(flow: Any, problems: Any) -> AlertSettings:
    """The AlertSettings of ``flow`` (a schema Workflow); problems go to ``problems.add(path, msg, expected)``."""
    cfg = flow.alerts
    deadline = None
    if flow.deadline is not None:
        parsed = parse_duration(flow.deadline)
        if isinstance(parsed, str):
            problems.add(("workflow", "deadline"), parsed, '"45m", "2h", "1h30m" or seconds', code="deadline")
        else:
            deadline = parsed
    for channel in ("email", "slack"):
        if getattr(cfg, channel) is not None and not provider_installed(CHANNEL_PROVIDERS[channel]):
            problems.add(("workflow", "alerts", channel),
                         f"the {channel} channel needs {CHANNEL_PROVIDERS[channel]}, which is not installed here",
                         f"pip install 'iflow-airflow[notify]' (or {CHANNEL_PROVIDERS[channel]}), "
                         f"or remove `{channel}`", code="channel_provider")
    return AlertSettings(cfg.webhook, tuple(cfg.events), email=tuple(cfg.email or ()), slack=cfg.slack is not None,
                         slack_channel=cfg.slack.channel if cfg.slack is not None else None, deadline=deadline)
