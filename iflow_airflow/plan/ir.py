"""The plan: what a workflow file means, resolved, in plain Python.

The plan is the single hand-over point between the compiler's front end
(load -> validate -> plan) and its back end (plan -> ``airflow.sdk`` DAG). It
imports nothing from Airflow, so most tests run on it fast and exactly, and the
CLI's ``explain`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True)
class CommandAction:
    """Run ``command`` with ``bash -c``; run values reach it only through the environment."""

    command: str
    kind: Literal["command"] = "command"


@dataclass(frozen=True)
class CallableAction:
    """Call ``module:function`` (an allowed module) with ``args``/``kwargs``."""

    target: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    kind: Literal["callable"] = "callable"


@dataclass(frozen=True)
class PromptAction:
    """Run the configured agent command non-interactively with ``prompt`` as its last argument."""

    prompt: str
    kind: Literal["prompt"] = "prompt"


@dataclass(frozen=True)
class WaitAction:
    """Wait for one condition: a file, an HTTP 2xx, a point in time, or another workflow's task."""

    file: str | None = None
    url: str | None = None
    until: datetime | None = None
    workflow: str | None = None
    task: str | None = None
    poke_interval: float = 5.0
    kind: Literal["wait"] = "wait"


@dataclass(frozen=True)
class OperatorAction:
    """A custom operator kind registered under the ``iflow_airflow.operators`` entry point group."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    kind: Literal["operator"] = "operator"


@dataclass(frozen=True)
class CheckpointAction:
    """No action: the task logs that the checkpoint was reached and succeeds."""

    kind: Literal["checkpoint"] = "checkpoint"


@dataclass(frozen=True)
class RunRef:
    """A value known at run time: this run's parameter ``name``, or upstream task ``name``'s result."""

    source: Literal["param", "result"]
    name: str


@dataclass(frozen=True)
class RunWorkflowAction:
    """Trigger iflow workflow ``workflow`` with ``params`` (literals or ``RunRef``) and wait for it."""

    workflow: str
    params: dict[str, Any] = field(default_factory=dict)
    poke_interval: float = 5.0
    kind: Literal["run_workflow"] = "run_workflow"


@dataclass(frozen=True)
class ItemSource:
    """``for_each``: a literal list (``items``), or a ``RunRef`` read when the run gets there."""

    items: tuple[Any, ...] | None = None
    ref: RunRef | None = None


Action = (CommandAction | CallableAction | PromptAction | WaitAction | OperatorAction | CheckpointAction
          | RunWorkflowAction)


@dataclass(frozen=True)
class PlannedTask:
    task_id: str
    description: str | None
    upstream: tuple[str, ...]
    level: int  # 1..priority_levels, higher is more urgent
    level_name: str  # e.g. "high" or "3"
    priority_weight: int  # absolute weight given to Airflow
    critical_path: int  # tasks on the longest path from this task to an end (itself included)
    resource: str | None
    pool: str | None
    pool_slots: int
    queue: str | None
    cost: float
    retries: int
    retry_delay: float  # seconds
    exponential_backoff: bool
    max_retry_delay: float | None  # seconds
    timeout: float | None  # seconds, per attempt
    trigger_rule: str
    env: dict[str, str]
    emits: tuple[str, ...]
    action: Action
    persist_result: bool
    deferrable: bool
    wait_timeout: float  # communication_timeout, seconds
    line: int | None = None  # line of the task in the source file
    group: tuple[str, ...] = ()  # full ids of the enclosing groups, outermost first ("build", "build.unit")
    for_each: ItemSource | None = None  # mapped: one task instance per item
    max_parallel: int | None = None  # items of one run at once (max_active_tis_per_dagrun)
    path: tuple[str | int, ...] = ()  # key path of the task in the file (workflow.tasks[3].tasks[0])

    @property
    def local_id(self) -> str:
        """The id inside its group (``compile`` of ``build.compile``): Airflow adds the group prefix."""
        return self.task_id[len(self.group[-1]) + 1:] if self.group else self.task_id


@dataclass(frozen=True)
class PlannedGroup:
    """A task with ``tasks:``: an Airflow TaskGroup (``group_id`` is the full, dotted id)."""

    group_id: str
    description: str | None = None
    parent: str | None = None

    @property
    def local_id(self) -> str:
        return self.group_id[len(self.parent) + 1:] if self.parent else self.group_id


@dataclass(frozen=True)
class PlannedResource:
    name: str
    pool: str
    slots: int
    max_slots: int | None
    description: str | None
    source: str  # file that declared it


@dataclass(frozen=True)
class Conflict:
    """Two tasks of one workflow that may run at once and contend for a resource."""

    resource: str
    first: str  # the task the resolution rule lets through first
    second: str
    reason: str


@dataclass(frozen=True)
class ParamSpec:
    default: Any
    type: str | None = None
    description: str | None = None
    enum: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Schedule:
    """``kind``: none | cron | preset | interval | events_all | events_any."""

    kind: Literal["none", "cron", "preset", "interval", "events_all", "events_any"]
    value: str | float | tuple[str, ...] | None = None


@dataclass(frozen=True)
class WorkflowSettings:
    mode: str
    strategy: str
    sync_mode: str
    conflict_resolution: str
    priority_levels: int
    load_threshold: float
    auto_scaling: bool
    queues: tuple[str, ...]
    state_persistence: bool
    communication_timeout: float


@dataclass(frozen=True)
class AlertSettings:
    """``workflow.alerts`` and ``workflow.deadline``: who hears of which event (runtime/notify)."""

    webhook: str | None
    events: tuple[str, ...]
    email: tuple[str, ...] = ()  # addresses for the SMTP notifier
    slack: bool = False  # the Slack webhook notifier is a channel
    slack_channel: str | None = None
    deadline: float | None = None  # seconds after a run's start; then run_late

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels beyond the log line, in a fixed order."""
        return tuple(c for c, on in (("webhook", bool(self.webhook)), ("email", bool(self.email)),
                                     ("slack", self.slack)) if on)


@dataclass(frozen=True)
class WorkflowPlan:
    dag_id: str
    description: str | None
    source_path: str
    source_text: str
    schedule: Schedule
    start_date: datetime
    timezone: str
    catchup: bool
    tags: tuple[str, ...]
    owner: str
    params: dict[str, ParamSpec]
    enabled: bool
    max_active_tasks: int
    settings: WorkflowSettings
    alerts: AlertSettings
    resources: dict[str, PlannedResource]
    tasks: tuple[PlannedTask, ...]  # topological order
    conflicts: tuple[Conflict, ...]
    notes: tuple[str, ...] = ()  # informational findings, e.g. checkpoints
    monitors: tuple[str, ...] = ()  # workflow.monitors: registered monitor names (extensions.py)
    groups: tuple[PlannedGroup, ...] = ()  # outer groups before inner ones

    def task(self, task_id: str) -> PlannedTask:
        for t in self.tasks:
            if t.task_id == task_id:
                return t
        raise KeyError(task_id)
