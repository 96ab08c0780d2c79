"""The workflow file format as pydantic models: the single source of truth.

Validation, defaults, the JSON Schema (``iflow-airflow schema``) and the README's
key table all come from these classes. Unknown keys are errors (``extra=forbid``)
so that a typo never silently does nothing. Shorthand forms (``database: 1``,
``resource: gpu``) are normalised before validation, so each value has one
canonical shape downstream.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from iflow_airflow import entry_points
from iflow_airflow.constants import (  # noqa: F401  (PRIORITY_NAMES etc. are part of the schema's vocabulary)
    ALERT_EVENTS,
    BUILTIN_RESOLVERS,
    BUILTIN_STRATEGIES,
    DEFAULT_ALERT_EVENTS,
    DEFAULT_LOAD_THRESHOLD,
    MONITORS_GROUP,
    PRIORITY_NAMES,
    RESOLVERS_GROUP,
    STRATEGIES_GROUP,
)
from iflow_airflow.errors import closest

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
TRIGGER_RULES = (
    "all_success", "all_failed", "all_done", "all_done_min_one_success", "all_skipped", "one_success",
    "one_done", "one_failed", "none_failed", "none_failed_min_one_success", "none_skipped", "always",
)

NAME_MAX = 200  # ids and names: within dag_id/task_id (250) and, with [iflow] pool_prefix, pool (256)
Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=NAME_MAX)]
# Column sizes of Airflow 3.3's metadata database (airflow/models/dag.py: DagModel.owners String(2000),
# DagTag.name String(TAG_MAX_LEN=100)); tests/unit/test_db_limits.py checks them against the installed
# Airflow. A longer value passes the SDK but fails the dag-processor's write, at every parse.
OWNERS_MAX = 2000
TAG_MAX = 100
URL_MAX = 2000
TEXT_NAME_MAX = 200  # free names (task types, params, time zones): as long as an id


def _one_line(value: str) -> str:
    """Single-line text: a line break or tab in a name, owner, tag, path or URL is a mistake
    (and breaks the UI, logs and HTTP); the YAML loader already refused other control characters."""
    if re.search(r"[\t\n\r]", value):
        raise PydanticCustomError("one_line", "text must be on one line (found a tab or line break)")
    return value


def OneLine(max_length: int) -> Any:  # noqa: N802 - a type factory, used like a type
    """A single-line text of at most ``max_length`` characters."""
    return Annotated[str, Field(min_length=1, max_length=max_length), AfterValidator(_one_line)]


def _http_url(value: str) -> str:
    """An http(s) URL that Python's and httpx's clients will accept as given, checked now rather
    than failing as ``InvalidURL`` when the task runs or the alert is sent."""
    if not re.match(r"^https?://", value, re.IGNORECASE):
        raise ValueError("expected an http:// or https:// URL")
    if re.search(r"[\x00-\x20\x7f]", value) or not value.isascii():
        raise ValueError("a URL cannot contain spaces, control characters or non-ASCII text "
                         "(write them %-encoded, and a host name in punycode)")
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a port that is not a number in 0..65535
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if not parts.hostname:
        raise ValueError("the URL has no host")
    return value


HttpUrl = Annotated[str, Field(max_length=URL_MAX, json_schema_extra={"pattern": "^https?://"}),
                    AfterValidator(_http_url)]
Seconds = Annotated[float, Field(gt=0, le=30 * 24 * 3600)]
# A custom extension's name (registered under an entry point group, see extensions.py);
# registration is checked here, the module allow-list and loading by the plan.
ExtensionName = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=200,
                                     title="registered name")]
EXTENSION_GROUPS = {"strategy": STRATEGIES_GROUP, "resolver": RESOLVERS_GROUP, "monitor": MONITORS_GROUP}


def _registered(kind: str, builtins: tuple[str, ...] = ()) -> Any:
    """An after-validator: a built-in name, or one registered under the kind's entry point group."""
    def check(value: str) -> str:
        if value in builtins:
            return value
        names = sorted(entry_points.registered(EXTENSION_GROUPS[kind], builtins))
        if value in names:
            return value
        near = closest(value, [*builtins, *names])
        quoted = [repr(n) for n in builtins]
        builtin_text = f"{', '.join(quoted[:-1])} or {quoted[-1]}, or " if len(quoted) > 1 else ""
        raise PydanticCustomError("literal_error", "unknown {kind} name", {"kind": kind, "expected": (
            (f"did you mean {near!r}? " if near else "")
            + f"{builtin_text}a {kind} registered under the entry point group {EXTENSION_GROUPS[kind]!r} "
            + f"(registered: {', '.join(names) or 'none'})")})
    return AfterValidator(check)


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Orchestration(_Block):
    """How the workflow runs as a whole."""

    enabled: bool = Field(True, description="false: the DAG is registered but paused")
    mode: Literal["basic", "intelligent", "advanced"] = Field(
        "intelligent", description="intelligent/advanced: the longer critical path wins ties within a level")
    max_concurrent_tasks: int = Field(10, ge=1, le=10_000, description="tasks of one run at once")
    task_timeout: Seconds | None = Field(300, description="seconds per task attempt; null: no limit")
    retry_attempts: int = Field(3, ge=0, le=100, description="retries after the first attempt")
    retry_delay: float = Field(30, ge=0, le=7 * 24 * 3600, description="seconds before the first retry")
    retry_backoff: Literal["fixed", "exponential"] = Field("exponential")
    max_retry_delay: Seconds | None = Field(None, description="cap on the exponential retry delay, seconds")


class Scheduling(_Block):
    """How tasks are ordered and spread."""

    strategy: Annotated[Literal[BUILTIN_STRATEGIES] | ExtensionName,
                        _registered("strategy", BUILTIN_STRATEGIES)] = Field(
        "priority_based", description="a built-in strategy, or one registered under the entry point group "
                                      "iflow_airflow.strategies")
    priority_levels: int = Field(5, ge=1, le=100)
    load_threshold: float = Field(DEFAULT_LOAD_THRESHOLD, gt=0, le=1, description="busy share above which a resource is saturated")
    auto_scaling: bool = Field(True, description="grow a saturated resource's pool toward max_slots")
    queues: list[Name] = Field(default_factory=lambda: ["default"], min_length=1,
                               description="executor queues tasks may be spread over")


class Coordination(_Block):
    """How tasks wait for each other and what is kept between them."""

    sync_mode: Literal["synchronous", "asynchronous", "event_driven"] = "event_driven"
    conflict_resolution: Annotated[Literal[BUILTIN_RESOLVERS] | ExtensionName,
                                   _registered("resolver", BUILTIN_RESOLVERS)] = Field(
        "priority", description="a built-in rule, or a resolver registered under the entry point group "
                                "iflow_airflow.resolvers")
    state_persistence: bool = Field(True, description="keep task results (XCom) for dependants")
    communication_timeout: Seconds = Field(60, description="bound of every wait, seconds")


def _resource_shorthand(value: Any) -> Any:
    return {"slots": value} if isinstance(value, int) and not isinstance(value, bool) else value


class Resource(_Block):
    """A named resource shared by every workflow: one Airflow pool."""

    slots: int = Field(ge=1, le=100_000)
    max_slots: int | None = Field(None, ge=1, le=100_000, description="auto_scaling ceiling")
    description: str | None = None


ResourceDecl = Annotated[Resource, BeforeValidator(_resource_shorthand, json_schema_input_type=int | Resource)]


def _task_resource_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class ResourceUse(_Block):
    name: Name
    slots: int = Field(1, ge=1, le=100_000)


ResourceRef = Annotated[ResourceUse, BeforeValidator(_task_resource_shorthand, json_schema_input_type=str | ResourceUse)]


def _priority_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected a level name ({', '.join(PRIORITY_NAMES)}) or an integer level")
    if isinstance(value, str) and value not in PRIORITY_NAMES:
        if value.strip().isdigit():
            return int(value)
        raise ValueError(f"unknown priority {value!r}; expected one of {', '.join(PRIORITY_NAMES)} or an integer")
    return value


Priority = Annotated[Any, BeforeValidator(_priority_value, json_schema_input_type=Literal[PRIORITY_NAMES] | int)]


class WaitSpec(_Block):
    """Wait for exactly one condition."""

    file: OneLine(4096) | None = Field(None, description="a path that must exist")
    url: HttpUrl | None = Field(None, description="an http(s) URL that must answer 2xx")
    until: datetime | None = Field(None, description="a point in time")
    workflow: Name | None = Field(None, description="another workflow whose `task` must succeed")
    task: Name | None = None
    poke_interval: Seconds = Field(5, description="seconds between checks")

    def model_post_init(self, __context: Any) -> None:
        given = [k for k in ("file", "url", "until", "workflow") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of file, url, until, workflow (got {', '.join(given) or 'none'})")
        if (self.workflow is None) != (self.task is None):
            raise ValueError("`workflow` and `task` go together")


class TaskFields(_Block):
    """Everything a task may set; ``task_types`` templates use the same fields."""

    type: OneLine(TEXT_NAME_MAX) | None = Field(None, description="free label, looked up in task_types")
    description: str | None = None
    priority: Priority | None = Field(None, description="critical|high|medium|low|lowest or 1..priority_levels")
    resource: ResourceRef | None = Field(None, description="one named resource, optionally with slots")
    command: str | None = Field(None, description="shell command (bash -c); params arrive as $IFLOW_PARAM_*")
    callable: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
                                 description="'pkg.module:function' from an allowed module")
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    prompt: str | None = Field(None, description="prompt for the configured agent (iFlow CLI)")
    wait: WaitSpec | None = None
    operator: Name | None = Field(None, description="operator kind: command|bash, callable|python, "
                                                   "prompt|agent, wait, checkpoint or a registered kind")
    retries: int | None = Field(None, ge=0, le=100)
    retry_delay: float | None = Field(None, ge=0, le=7 * 24 * 3600)
    retry_backoff: Literal["fixed", "exponential"] | None = None
    timeout: Seconds | None = None
    queue: Name | None = None
    cost: float | None = Field(None, gt=0, le=1e9, description="load_balanced weight (default 1)")
    env: dict[str, str] | None = None
    trigger_rule: Literal[TRIGGER_RULES] | None = None
    emits: list[Name] | None = None
    run_workflow: Name | None = Field(None, description="another iflow workflow of the deployment: triggered "
                                                        "with `params` and waited for (SPEC §6)")
    params: dict[Name, Any] | None = Field(None, description="run_workflow's run parameters: literals, "
                                                             "{result: task} or {param: name}")
    max_parallel: int | None = Field(None, ge=1, le=10_000, description="for_each: items of one run at once")

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for k in v or {}:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
                raise ValueError(f"environment variable name {k!r} is not valid; use letters, digits and _")
        return v


class TaskType(TaskFields):
    """Defaults for every task whose ``type`` names this template."""


class Reference(_Block):
    """A value known only at run time: a run parameter of this workflow, or an upstream task's result."""

    param: Name | None = Field(None, description="a workflow.params name")
    result: Name | None = Field(None, description="an upstream task id (`group.task` for a task of a group)")

    def model_post_init(self, __context: Any) -> None:
        if (self.param is None) == (self.result is None):
            raise ValueError("give exactly one of `param` or `result`")


ForEach = Annotated[list[Any], Field(min_length=1, max_length=10_000)] | Reference


class Task(TaskFields):
    id: Name
    dependencies: list[Name] = Field(default_factory=list)
    for_each: ForEach | None = Field(None, description="one mapped task instance per item: a list, "
                                                       "{param: name} or {result: task} (SPEC §6)")
    tasks: list[Task] | None = Field(None, min_length=1, description="a group (TaskGroup): its keys are "
                                                                     "defaults for these tasks")


class EventsSchedule(_Block):
    events: list[Name] | None = Field(None, min_length=1, description="run when all have arrived")
    events_any: list[Name] | None = Field(None, min_length=1, description="run when any has arrived")

    def model_post_init(self, __context: Any) -> None:
        if (self.events is None) == (self.events_any is None):
            raise ValueError("give exactly one of `events` or `events_any`")


class Param(_Block):
    default: Any = None
    type: Literal["string", "integer", "number", "boolean", "array", "object", "null"] | None = None
    description: str | None = None
    enum: list[Any] | None = None


def _param_shorthand(value: Any) -> Any:
    if isinstance(value, dict) and set(value) <= {"default", "type", "description", "enum"} and value:
        return value
    return {"default": value}


ParamDecl = Annotated[Param, BeforeValidator(_param_shorthand, json_schema_input_type=Any)]


EMAIL_PATTERN = r"^[^@\s,;<>]+@[^@\s,;<>]+$"
SLACK_CHANNEL_PATTERN = r"^[#@]?[A-Za-z0-9_.-]+$"
#: What a pattern means, in the words an error shows (validate.py).
PATTERN_WORDS = {EMAIL_PATTERN: "one email address such as oncall@example.com",
                 SLACK_CHANNEL_PATTERN: "a channel name such as #data-oncall (letters, digits, _ . -)"}
EmailAddress = Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=254, title="email address")]


def _duration_text(value: Any) -> Any:
    """A number of seconds as text (``90`` -> ``"90"``); true/false are no duration. The plan parses it."""
    if isinstance(value, bool):
        raise ValueError('a duration such as "45m", "2h" or a number of seconds, not true/false')
    return str(value) if isinstance(value, int | float) else value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class SlackTarget(_Block):
    """Where Slack alerts go: the webhook of connection ``[iflow] slack_conn_id`` (SPEC §7)."""

    channel: Annotated[str, Field(pattern=SLACK_CHANNEL_PATTERN, max_length=80)] | None = Field(
        None, description="the channel the connection's incoming webhook posts to (named in every message)")


class Alerts(_Block):
    webhook: HttpUrl | None = None
    email: Annotated[list[EmailAddress], Field(min_length=1, max_length=50),
                     BeforeValidator(_one_or_many, json_schema_input_type=Any)] | None = Field(
        None, description="addresses mailed through Airflow's SMTP notifier (connection [iflow] smtp_conn_id)")
    slack: SlackTarget | None = Field(
        None, description="Airflow's Slack webhook notifier (connection [iflow] slack_conn_id)")
    events: list[Literal[ALERT_EVENTS]] = Field(default_factory=lambda: list(DEFAULT_ALERT_EVENTS))


class Workflow(_Block):
    name: Name = Field(description="the DAG id")
    description: str | None = None
    schedule: EventsSchedule | str | None = Field(
        None, description='null/"manual", cron, "@daily", "30m", or {events: [...]} / {events_any: [...]}')
    start_date: date | datetime = Field(date(2026, 1, 1))
    timezone: OneLine(TEXT_NAME_MAX) = "UTC"
    catchup: bool = False
    tags: list[OneLine(TAG_MAX)] = Field(default_factory=list, description=f"each at most {TAG_MAX} characters")
    owner: OneLine(OWNERS_MAX) = Field("iflow", description=f"at most {OWNERS_MAX} characters")
    params: dict[OneLine(TEXT_NAME_MAX), ParamDecl] = Field(default_factory=dict)
    deadline: Annotated[str, Field(max_length=40), BeforeValidator(_duration_text, json_schema_input_type=str | int)
                        ] | None = Field(
        None, description='a run not finished this long after it started raises run_late ("45m", "2h", seconds)')
    alerts: Alerts = Field(default_factory=Alerts)
    monitors: list[Annotated[ExtensionName, _registered("monitor")]] = Field(
        default_factory=list, description="monitors registered under the entry point group iflow_airflow.monitors")
    tasks: list[Task] = Field(min_length=1)


class WorkflowFile(_Block):
    """One iflow workflow file (after ``iflow.defaults.yaml`` files were merged in)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="iflow workflow file",
                              json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"})

    orchestration: Orchestration = Field(default_factory=Orchestration)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    coordination: Coordination = Field(default_factory=Coordination)
    resources: dict[Name, ResourceDecl] = Field(default_factory=dict)
    task_types: dict[OneLine(TEXT_NAME_MAX), TaskType] = Field(default_factory=dict)
    workflow: Workflow


def json_schema() -> dict[str, Any]:
    """JSON Schema of the file format, for editors (yaml-language-server) and docs."""
    schema = WorkflowFile.model_json_schema()
    # An identifier, not an address: the schema is shipped in the package and served by the
    # api-server at /iflow/schema/workflow.json (see iflow_airflow/schema/published.py).
    schema["$id"] = "urn:iflow-airflow:schema:workflow"
    return schema
