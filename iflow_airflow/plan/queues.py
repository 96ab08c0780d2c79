"""Scheduling strategies -> executor queues.

``round_robin`` deals tasks to ``scheduling.queues`` in turn (topological
order); ``load_balanced`` gives each task, largest ``cost`` first, to the queue
with the least cost so far (LPT), so queue totals are near equal;
``priority_based`` keeps the queue a task names. A queue a task names itself
always wins.
"""

from __future__ import annotations

from typing import Mapping, Sequence


def assign_queues(strategy: str, order: Sequence[str], queues: Sequence[str], pinned: Mapping[str, str | None],
                  cost: Mapping[str, float]) -> dict[str, str | None]:
    result: dict[str, str | None] = {t: pinned.get(t) for t in order}
    free = [t for t in order if pinned.get(t) is None]
    if strategy == "round_robin":
        for i, task in enumerate(free):
            result[task] = queues[i % len(queues)]
    elif strategy == "load_balanced":
        load = {q: 0.0 for q in queues}
        for task, c in cost.items():  # pinned tasks count toward their queue's load
            if pinned.get(task) in load:
                load[pinned[task]] += c  # type: ignore[index]
        position = {t: i for i, t in enumerate(order)}
        for task in sorted(free, key=lambda t: (-cost[t], position[t])):
            target = min(queues, key=lambda q: (load[q], queues.index(q)))
            result[task] = target
            load[target] += cost[task]
    return result


def queue_loads(assignment: Mapping[str, str | None], cost: Mapping[str, float]) -> dict[str, float]:
    """Total cost per queue: what load_balanced evens out (shown by ``explain``)."""
    loads: dict[str, float] = {}
    for task, queue in assignment.items():
        loads[queue or "(executor default)"] = loads.get(queue or "(executor default)", 0.0) + cost[task]
    return loads
