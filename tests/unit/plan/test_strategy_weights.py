"""SPEC §3: round_robin deals tasks over queues "with equal weights"; the other strategies keep priorities."""

from __future__ import annotations

import pytest

from iflow_airflow.compiler import compile_file
from iflow_airflow.settings import IflowSettings


def compile_text(folder, text):
    path = folder / "wf.yaml"
    path.write_text(text)
    return compile_file(path, explicit=True, settings=IflowSettings())

WF = """
scheduling: {{strategy: {strategy}, queues: [a, b]}}
workflow:
  name: w
  tasks:
    - {{id: t1, priority: critical, command: "true"}}
    - {{id: t2, priority: lowest, command: "true"}}
    - {{id: t3, priority: high, dependencies: [t1], command: "true"}}
"""


def test_round_robin_gives_every_task_the_same_weight(tmp_path):
    plan = compile_text(tmp_path, WF.format(strategy="round_robin")).plan
    assert {t.priority_weight for t in plan.tasks} == {3_000_000}
    assert [t.queue for t in plan.tasks] == ["a", "b", "a"]


@pytest.mark.parametrize("strategy", ["priority_based", "load_balanced"])
def test_other_strategies_keep_priority_weights(tmp_path, strategy):
    plan = compile_text(tmp_path, WF.format(strategy=strategy)).plan
    weights = {t.task_id: t.priority_weight for t in plan.tasks}
    assert weights["t1"] > weights["t3"] > weights["t2"]
