"""Errors that point at the place in a workflow file a person has to fix.

Every problem names the file, the line and column (where YAML gives one), the
key path (``workflow.tasks[3].dependencies[0]``), what was wrong and what would
be right. A file's problems are collected and raised together, never one by one.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

PathPart = str | int
# Problems kept per file: enough to fix a file in one go; a file with 90,000 unknown keys must not
# cost minutes of locating or a megabyte of import error. The rest are counted ("... and 12,345 more").
MAX_PROBLEMS = 100
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with control characters and lone surrogates written as escapes (``\\x00``).

    Error texts end up in Airflow's import_error table and in logs; a NUL or a
    surrogate taken from a file (or its name) must not make that write fail.
    """
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 task``, ``2 tasks``, ``0 tasks`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def format_path(path: Sequence[PathPart]) -> str:
    """``("workflow", "tasks", 3, "id")`` -> ``workflow.tasks[3].id``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return printable(out) or "(top level)"


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
    hidden: int = 0  # a ``truncated`` problem: how many problems it stands for

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
        return printable(text)


class WorkflowFileError(Exception):
    """All problems of one workflow file: the first ``MAX_PROBLEMS`` (by place in the file),
    then one ``truncated`` problem that counts the rest (``total`` is the real number)."""

    def __init__(self, file: str, problems: Iterable[Problem]):
        self.file = file
        ordered = sorted(problems, key=lambda p: (p.line if p.line is not None else 10**9, p.column or 0,
                                                  p.key_path))
        listed = [p for p in ordered if p.code != "truncated"]
        self.total = len(listed) + sum(p.hidden for p in ordered if p.code == "truncated")
        if len(ordered) > len(listed) or len(listed) > MAX_PROBLEMS:
            listed = listed[:MAX_PROBLEMS]
            ordered = [*listed, more_problems(file, self.total - len(listed))]
        self.problems: list[Problem] = ordered
        super().__init__(self.render())

    @property
    def first_line(self) -> int | None:
        return next((p.line for p in self.problems if p.line is not None), None)

    def render(self) -> str:
        n = self.total
        head = printable(f"{self.file}: {n:,} problem{'s' if n != 1 else ''} in iflow workflow file")
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


def more_problems(file: str, hidden: int) -> Problem:
    """The last problem of a truncated list: how many more there are."""
    return Problem(file, f"... and {hidden:,} more problem{'s' if hidden != 1 else ''} (only the first "
                         f"{MAX_PROBLEMS} are listed)", (), None, None, "fix these, then validate again", "truncated",
                   hidden)
