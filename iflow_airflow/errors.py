"""Errors that point at the place in a workflow file a person has to fix.

Every problem names the file, the line and column (where YAML gives one), the
key path (``workflow.tasks[3].dependencies[0]``), what was wrong and what would
be right. A file's problems are collected and raised together, never one by one.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

PathPart = str | int


def format_path(path: Sequence[PathPart]) -> str:
    """``("workflow", "tasks", 3, "id")`` -> ``workflow.tasks[3].id``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one choice that looks most like ``word`` (difflib ratio >= 0.6), or None.

    The single "did you mean" rule of every error message: a typo of a key, an
    id, a resource, a time zone or an extension name is answered the same way.
    """
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def did_you_mean(word: str, choices: Iterable[str], otherwise: str) -> str:
    """``"did you mean 'x'?"`` for the closest choice, else ``otherwise`` (what would be right)."""
    near = closest(word, choices)
    return f"did you mean {near!r}?" if near else otherwise


@dataclass(frozen=True)
class Problem:
    file: str
    message: str
    path: tuple[PathPart, ...] = ()
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    expected: str | None = None
    code: str = "invalid"

    @property
    def key_path(self) -> str:
        return format_path(self.path)

    def location(self) -> str:
        loc = self.file
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return loc

    def __str__(self) -> str:
        text = f"{self.location()}: {self.key_path}: {self.message}"
        if self.expected:
            text += f" (expected: {self.expected})"
        return text


class WorkflowFileError(Exception):
    """All problems of one workflow file."""

    def __init__(self, file: str, problems: Iterable[Problem]):
        self.file = file
        self.problems: list[Problem] = sorted(
            problems, key=lambda p: (p.line if p.line is not None else 10**9, p.column or 0, p.key_path)
        )
        super().__init__(self.render())

    @property
    def first_line(self) -> int | None:
        return next((p.line for p in self.problems if p.line is not None), None)

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.file}: {n} problem{'s' if n != 1 else ''} in iflow workflow file"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


@dataclass
class ProblemList:
    """Collects problems of one file; raise them all at once with ``raise_if_any``."""

    file: str
    items: list[Problem] = field(default_factory=list)

    def add(self, message: str, path: Sequence[PathPart] = (), *, expected: str | None = None,
            code: str = "invalid", line: int | None = None, column: int | None = None) -> None:
        self.items.append(Problem(self.file, message, tuple(path), line, column, expected, code))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise WorkflowFileError(self.file, self.items)
