"""Conflict detection: tasks of one workflow that may run at once and contend for a resource.

Tasks are grouped by resource first, so the cost is the pairs inside each
resource group, never all pairs of the workflow. Two tasks may run at once
when neither is an ancestor of the other; they contend when together they need
more slots than the resource has.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from iflow_airflow.plan.ir import Conflict

MAX_REPORTED_PER_RESOURCE = 200


def ancestors_bits(order: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Ancestor sets as bit masks over topological positions (linear in edges, word-parallel)."""
    index = {t: i for i, t in enumerate(order)}
    bits: dict[str, int] = {}
    for task in order:
        mask = 0
        for up in upstream.get(task, ()):
            mask |= bits[up] | (1 << index[up])
        bits[task] = mask
    return bits


def order_reason(a_weight: int, b_weight: int, rule: str) -> str:
    if a_weight != b_weight:
        return "higher priority weight first"
    if rule == "timestamp":
        return "same weight: whichever is queued first"
    return "same weight: either may go first"


def detect(order: Sequence[str], upstream: Mapping[str, Sequence[str]], resource_of: Mapping[str, str | None],
           slots_of: Mapping[str, int], capacity: Mapping[str, int], weight_of: Mapping[str, int],
           rule: str) -> tuple[list[Conflict], list[str]]:
    """(conflicts, notes); notes say when a resource had more pairs than are listed."""
    groups: dict[str, list[str]] = {}
    for task in order:
        res = resource_of.get(task)
        if res is not None:
            groups.setdefault(res, []).append(task)
    if not groups:
        return [], []
    index = {t: i for i, t in enumerate(order)}
    anc = ancestors_bits(order, upstream)
    conflicts: list[Conflict] = []
    notes: list[str] = []
    for res, tasks in groups.items():
        found = 0
        for i, a in enumerate(tasks):
            for b in tasks[i + 1:]:
                if (anc[b] >> index[a]) & 1 or (anc[a] >> index[b]) & 1:
                    continue  # ordered by dependencies: never at once
                if slots_of[a] + slots_of[b] <= capacity[res]:
                    continue
                found += 1
                if found > MAX_REPORTED_PER_RESOURCE:
                    continue
                first, second = (a, b) if weight_of[a] >= weight_of[b] else (b, a)
                conflicts.append(Conflict(res, first, second, order_reason(weight_of[a], weight_of[b], rule)))
        if found > MAX_REPORTED_PER_RESOURCE:
            notes.append(f"resource {res}: {found} contending pairs, first {MAX_REPORTED_PER_RESOURCE} listed")
    return conflicts, notes
