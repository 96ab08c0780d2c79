"""Extensions for the tests: one strategy, one resolver, one monitor (and two broken strategies)."""

from __future__ import annotations

import json
import os

from iflow_airflow.extensions import ConflictResolver, SchedulingStrategy, WorkflowMonitor

EVENTS: list[tuple[str, dict]] = []


class CostFirst(SchedulingStrategy):
    """Tie-break = cost x 1000 (the costlier first); cost >= 5 goes to the last queue, the rest to the first."""

    def tie_breaks(self, tasks, context):
        return {t.task_id: int(t.cost * 1000) for t in tasks}

    def assign_queues(self, tasks, context):
        return {t.task_id: context.queues[-1] if t.cost >= 5 else context.queues[0] for t in tasks}


class OutOfBand(SchedulingStrategy):
    """Breaks the band rule: must be rejected."""

    def tie_breaks(self, tasks, context):
        return {t.task_id: 1_000_000 for t in tasks}


class NotAStrategy:
    """Not a SchedulingStrategy: must be rejected."""


class ReverseAlphabetical(ConflictResolver):
    """Among tied tasks, the alphabetically last id goes first."""

    def order(self, tasks, context):
        return sorted((t.task_id for t in tasks), reverse=True)


class Recorder(WorkflowMonitor):
    """Keeps every event; also appends it as a JSON line to $IFLOW_TEST_MONITOR_LOG when set."""

    def on_event(self, event, fields):
        EVENTS.append((event, dict(fields)))
        path = os.environ.get("IFLOW_TEST_MONITOR_LOG")
        if path:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"event": event, **fields}, default=str) + "\n")
