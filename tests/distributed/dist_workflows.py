"""Workflows of the distributed suite that are written at run time, and their constants
(the fixed ones are in ``workflows/``)."""

from __future__ import annotations

#: Test-only queue that BOTH workers consume besides their compose queue, so the
#: fault check's task can be retried on the surviving worker (compose queues stay
#: exactly as they are for the other checks).
SHARED_QUEUE = "shared"

#: The load check's workflows: one per priority level; the queue alternates so
#: both workers take part. Level names -> level numbers with priority_levels 5.
LOAD_LEVELS = {"critical": 5, "high": 4, "medium": 3, "low": 2, "lowest": 1}
LOAD_QUEUES = {"critical": "default", "high": "queue_b", "medium": "default", "low": "queue_b", "lowest": "default"}
LOAD_RESOURCE = "dist_lock"
LOAD_POOL = f"iflow_{LOAD_RESOURCE}"


def load_workflow_yaml(level: str) -> str:
    """``dist_load_<level>``: ``prepare`` (no resource) then ``write`` (the 1-slot
    resource ``dist_lock``, ~1 s), both at ``level`` and on ``LOAD_QUEUES[level]``."""
    queue = LOAD_QUEUES[level]
    return f"""\
# Load check (d): runs of five of these (one per level) contend for one slot.
resources:
  {LOAD_RESOURCE}: {{slots: 1, description: "one holder at a time (distributed load check)"}}
coordination:
  sync_mode: synchronous
workflow:
  name: dist_load_{level}
  description: Contends for {LOAD_RESOURCE} at level {level}
  tags: [distributed, load]
  tasks:
    - id: prepare
      priority: {level}
      queue: {queue}
      command: echo preparing
    - id: write
      dependencies: [prepare]
      priority: {level}
      queue: {queue}
      resource: {LOAD_RESOURCE}
      command: sleep 1; echo written
"""
