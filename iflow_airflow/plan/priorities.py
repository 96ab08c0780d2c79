"""Priority levels -> absolute Airflow priority weights.

Airflow's scheduler hands out pool slots ordered by ``-priority_weight`` across
every DAG. With ``weight_rule="absolute"`` the weight is used as given, so a
level that always outweighs the level below it (in any workflow) is a weight
band per level: ``level * LEVEL_SPAN + tie_break`` with ``tie_break <
LEVEL_SPAN``. Levels are compared by number across workflows.
"""

from __future__ import annotations

import hashlib
from typing import Mapping, Sequence

from iflow_airflow.constants import (  # noqa: F401  (re-exported: the planner's vocabulary)
    CRITICAL_PATH_CAP,
    DEFAULT_PRIORITY,
    LEVEL_SPAN,
    PRIORITY_NAMES,
    RANDOM_BUCKETS,
)
from iflow_airflow.extensions import tie_break


def level_of_name(name: str, levels: int) -> int:
    """critical..lowest spread evenly over 1..levels (critical = levels, lowest = 1)."""
    i = PRIORITY_NAMES.index(name)
    return 1 + round((len(PRIORITY_NAMES) - 1 - i) * (levels - 1) / (len(PRIORITY_NAMES) - 1))


def critical_paths(order: Sequence[str], downstream: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Tasks on the longest path from each task to an end of the graph, itself included."""
    length: dict[str, int] = {}
    for task in reversed(order):
        length[task] = 1 + max((length[d] for d in downstream.get(task, ())), default=0)
    return length


def shuffle_rank(dag_id: str, task_id: str) -> int:
    """A fixed, seeded 'random' tie-break: the same on every parse and every machine."""
    digest = hashlib.sha256(f"{dag_id}\x00{task_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % RANDOM_BUCKETS


def builtin_vote(conflict_resolution: str, dag_id: str, task_id: str) -> int:
    """A built-in resolution rule's vote (0..99): the seeded shuffle for ``random``, else 0.

    ``timestamp`` and ``priority`` add nothing: Airflow already hands out slots
    among equal weights in the order tasks were queued.
    """
    return shuffle_rank(dag_id, task_id) if conflict_resolution == "random" else 0


def band(level: int, tie: int) -> int:
    """The absolute weight of a task of ``level`` with tie-break ``tie`` (0..LEVEL_SPAN-1)."""
    assert 0 <= tie < LEVEL_SPAN
    return level * LEVEL_SPAN + tie


def weight(level: int, *, critical_path: int, mode: str, conflict_resolution: str, dag_id: str,
           task_id: str) -> int:
    """The absolute priority weight of one task under the built-in strategies (``extensions.tie_break``)."""
    return band(level, tie_break(critical_path, mode, builtin_vote(conflict_resolution, dag_id, task_id)))
