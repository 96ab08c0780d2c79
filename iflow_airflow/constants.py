"""Names and numbers that more than one stage must agree on, written down once.

Each is part of a contract with something outside a single module: the file
format (SPEC §2-3), Airflow (tags, pools), installed packages (entry point
groups) or people (alert event names). Pure data: importing this costs nothing.
"""

from __future__ import annotations

import re

#: Every iflow DAG carries this tag; the listeners and the /iflow page select DAGs by it.
IFLOW_TAG = "iflow"

#: Workflow files are YAML files with these suffixes (compared lower-cased).
YAML_SUFFIXES = (".yaml", ".yml")
#: A file of this name gives defaults to every workflow file in its folder and below.
DEFAULTS_FILE_NAME = "iflow.defaults.yaml"

#: ``scheduling.load_threshold``'s default: busy share above which a resource is saturated.
DEFAULT_LOAD_THRESHOLD = 0.8

#: Priority names, most urgent first (SPEC §3); spread evenly over ``priority_levels``.
PRIORITY_NAMES = ("critical", "high", "medium", "low", "lowest")
DEFAULT_PRIORITY = "medium"
#: Weights of level L lie in [L * LEVEL_SPAN, (L + 1) * LEVEL_SPAN): a higher level always wins.
LEVEL_SPAN = 1_000_000
#: Critical-path lengths beyond this tie (they must stay below LEVEL_SPAN with the resolver's vote).
CRITICAL_PATH_CAP = 9_999
#: A resolver's vote (``random`` or a custom one) lies in 0..RANDOM_BUCKETS-1.
RANDOM_BUCKETS = 100

BUILTIN_STRATEGIES = ("round_robin", "priority_based", "load_balanced")
BUILTIN_RESOLVERS = ("priority", "timestamp", "random")

#: Alert events a workflow may subscribe to (``workflow.alerts.events``).
ALERT_EVENTS = ("task_failed", "run_failed", "resource_saturated", "task_retry", "run_late")
#: ``workflow.alerts.events`` when a file does not say (``run_late`` only fires with a ``workflow.deadline``).
DEFAULT_ALERT_EVENTS = ("task_failed", "run_failed", "resource_saturated", "run_late")
#: Alert channels -> the provider distribution whose notifier delivers them (``[notify]`` extra).
CHANNEL_PROVIDERS = {"email": "apache-airflow-providers-smtp", "slack": "apache-airflow-providers-slack"}

#: Entry point groups through which installed packages extend iflow-airflow.
OPERATORS_GROUP = "iflow_airflow.operators"
STRATEGIES_GROUP = "iflow_airflow.strategies"
RESOLVERS_GROUP = "iflow_airflow.resolvers"
MONITORS_GROUP = "iflow_airflow.monitors"

#: Operator kinds as written in a workflow (``operator:``) -> the canonical built-in kind.
OPERATOR_KINDS: dict[str, str] = {
    "command": "command",
    "bash": "command",
    "callable": "callable",
    "python": "callable",
    "prompt": "prompt",
    "agent": "prompt",
    "wait": "wait",
    "checkpoint": "checkpoint",
}

#: What reaches a task's environment (SPEC §3): ``IFLOW_PARAM_<p>``, ``IFLOW_RESULT_<task>``.
PARAM_PREFIX = "IFLOW_PARAM_"
RESULT_PREFIX = "IFLOW_RESULT_"
_ENV_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def env_name(prefix: str, name: str) -> str:
    """``prefix + name`` with every character other than letters, digits and ``_`` made ``_``.

    The planner uses it to reject ids and params that would share a variable; the
    operators use it to name the variables. One rule, so the two can never disagree.
    """
    return prefix + _ENV_UNSAFE.sub("_", str(name))

#: A ``for_each`` over ``{param}``/``{result}`` gets a task ``<id>__items`` that reads the list at run time
#: (the planner reserves the id, the builder makes the task).
ITEMS_SUFFIX = "__items"
