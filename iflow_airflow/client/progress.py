"""The live progress line of ``iflow-airflow run --wait`` / ``resume --wait``.

``[#####-----]  3/6 done  running: load_orders, load_customers``

On a terminal the line is redrawn in place (carriage return); otherwise (a log,
a pipe, CI) one line is printed per change, so the output stays readable.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from iflow_airflow.runtime.figures import DONE_STATES

BAR_WIDTH = 20


def summarize(task_instances: Sequence[Mapping[str, Any]], total: int | None = None) -> tuple[int, int, list[str]]:
    """(done, total, running task ids) of a run's task instances (``figures.DONE_STATES`` count as done)."""
    done = sum(1 for t in task_instances if t.get("state") in DONE_STATES)
    running = sorted(str(t["task_id"]) for t in task_instances if t.get("state") in ("running", "deferred"))
    return done, max(len(task_instances), total or 0), running


def render(run_state: str | None, task_instances: Sequence[Mapping[str, Any]], width: int = BAR_WIDTH) -> str:
    done, total, running = summarize(task_instances)
    filled = round(width * done / total) if total else 0
    line = f"[{'#' * filled}{'-' * (width - filled)}] {done:>{len(str(total))}}/{total} done"
    deferred = sorted(str(t["task_id"]) for t in task_instances if t.get("state") == "deferred")
    active = [t for t in running if t not in deferred]
    if active:
        line += "  running: " + ", ".join(active)
    if deferred:
        line += "  deferred: " + ", ".join(deferred)
    failed = sorted(str(t["task_id"]) for t in task_instances if t.get("state") in ("failed", "upstream_failed"))
    if failed:
        line += "  failed: " + ", ".join(failed)
    if run_state and run_state not in ("running", "queued"):
        line += f"  (run {run_state})"
    return line


class ProgressLine:
    """Prints :func:`render` of each update: in place on a TTY, one line per change otherwise."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self._last = ""
        self._width = 0

    def update(self, run: Mapping[str, Any], task_instances: Sequence[Mapping[str, Any]]) -> None:
        line = render(run.get("state"), task_instances)
        if line == self._last:
            return
        self._last = line
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()
