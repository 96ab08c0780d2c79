"""The planner's working state: one typed draft that every pass reads and fills in.

``make_plan`` (planner.py) runs named passes (passes.py) over one :class:`Draft`,
like sqlglot's optimizer runs rules over one expression: each pass reads what
earlier passes wrote and writes its own fields, nothing else. Problems go to
``draft.problems`` (located through the file's locator) and are raised together
after the checking passes, so one run reports every mistake of the file.

A draft is plain Python (no Airflow) and lives for one ``make_plan`` call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Sequence

from iflow_airflow.errors import PathPart, Problem
from iflow_airflow.plan.ir import Action, Conflict, ItemSource, PlannedResource, Schedule
from iflow_airflow.schema.models import Task, TaskFields, WorkflowFile
from iflow_airflow.settings import IflowSettings

Locator = Callable[[Sequence[PathPart]], "tuple[str, int | None, int | None]"]


def given(model: TaskFields) -> dict[str, Any]:
    """The fields a person wrote (nested values complete with their defaults)."""
    return {k: v.model_dump() if hasattr(v, "model_dump") else v
            for k, v in ((k, getattr(model, k)) for k in model.model_fields_set)}


class Problems:
    """Located problems of one file, collected by every pass and raised together."""

    def __init__(self, file: str, locate: Locator):
        self.file = file
        self.locate = locate
        self.items: list[Problem] = []

    def add(self, path: Sequence[PathPart], message: str, expected: str | None = None,
            code: str = "invalid") -> None:
        where, line, col = self.locate(path)
        self.items.append(Problem(where, message, tuple(path), line, col, expected, code))


@dataclass
class TaskDraft:
    """One task while it is being planned; ``path`` is its key path in the file."""

    task_id: str
    model: Task
    path: tuple[PathPart, ...]
    index: int  # position in workflow.tasks (the key of the file's task lines)
    upstream: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)  # own fields over the type template
    level: tuple[int, str] = (1, "1")  # (level, as written)
    use: dict[str, Any] | None = None  # {"name": resource, "slots": n}
    pool: str | None = None
    action: Action | None = None
    critical_path: int = 1
    cost: float = 1.0
    queue: str | None = None
    weight: int = 0
    group: tuple[str, ...] = ()  # enclosing groups' full ids, outermost first
    line: int | None = None
    items: ItemSource | None = None  # for_each

    @property
    def resource(self) -> str | None:
        return (self.use or {}).get("name")

    @property
    def slots(self) -> int:
        return (self.use or {}).get("slots", 1)


@dataclass
class GroupDraft:
    """A task with ``tasks:`` (an Airflow TaskGroup): its keys are defaults for its tasks."""

    group_id: str  # full, dotted id
    model: Task
    path: tuple[PathPart, ...]
    parent: GroupDraft | None = None
    members: list[str] = field(default_factory=list)  # every task inside, nested ones too, in file order
    defaults: dict[str, Any] = field(default_factory=dict)  # its keys over its parent's

    def scope(self) -> tuple[str, ...]:
        """This group's id and its ancestors', outermost first."""
        return (*(self.parent.scope() if self.parent else ()), self.group_id)


@dataclass
class Draft:
    """Everything the passes decide about one workflow file, before it becomes a ``WorkflowPlan``."""

    wf: WorkflowFile
    file: str
    source_text: str
    settings: IflowSettings
    problems: Problems
    task_lines: dict[int, int] = field(default_factory=dict)
    tasks: dict[str, TaskDraft] = field(default_factory=dict)  # unique full ids, in file order
    groups: dict[str, GroupDraft] = field(default_factory=dict)  # full ids, outer before inner
    order: list[str] = field(default_factory=list)  # topological (file order if there is a cycle)
    has_cycle: bool = False
    schedule: Schedule | None = None
    start_date: datetime | None = None
    resources: dict[str, PlannedResource] = field(default_factory=dict)
    monitors: list[str] = field(default_factory=list)
    custom_ties: dict[str, int] | None = None  # tie-breaks from a custom strategy or resolver
    conflicts: list[Conflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extensions: Any = None  # the loaded custom strategy/resolver (plan.custom.Extensions)
    alerts: Any = None  # AlertSettings: channels, events and the deadline (plan.alerting)

    def ordered(self) -> list[TaskDraft]:
        """The planned tasks in topological order."""
        return [self.tasks[t] for t in self.order if t in self.tasks]
