"""Decomposition under a real scheduler (issue 15): what ``dag.test()`` cannot show.

* the mapped items of two workflows on a 1-slot resource never overlap and
  start in priority order across the workflows (every item keeps its band);
* ``max_parallel`` holds: never more items of one run at once;
* ``run_workflow`` triggers the child with the right params, its result is
  the child's run id, and a failing child fails the parent's task; under
  ``asynchronous`` the wait is deferred (the triggerer runs in this deployment).

One deployment serves all three (the machine is shared), under ``nice``.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
from test_resources import inversions, overlaps

REPO = Path(__file__).resolve().parents[2]

DEFAULTS = "resources:\n  lock: {slots: 1}\norchestration: {retry_attempts: 0, max_concurrent_tasks: 16}\n"

FILES = {
    "fan_low.yaml": """\
workflow:
  name: fan_low
  tasks:
    - {id: each, for_each: [1, 2, 3, 4], priority: low, resource: lock, command: 'sleep 1'}
""",
    "fan_high.yaml": """\
workflow:
  name: fan_high
  params: {items: [1, 2, 3]}
  tasks:
    - {id: each, for_each: {param: items}, priority: high, resource: lock, command: 'sleep 1'}
""",
    "capped.yaml": """\
workflow:
  name: capped
  tasks:
    - {id: each, for_each: [1, 2, 3, 4, 5, 6], max_parallel: 2, command: 'sleep 3'}
""",
    "parent.yaml": """\
workflow:
  name: parent
  params: {region: eu}
  tasks:
    - {id: version, command: 'echo 1.2.3'}
    - id: deploy
      dependencies: [version]
      run_workflow: child
      params: {version: {result: version}, region: {param: region}, flag: true}
    - {id: after, dependencies: [deploy], command: 'echo "child run: $IFLOW_RESULT_deploy"'}
""",
    "parent_fail.yaml": """\
workflow:
  name: parent_fail
  tasks:
    - {id: deploy, run_workflow: child, params: {fail: "yes"}}
""",
    "parent_async.yaml": """\
coordination: {sync_mode: asynchronous}
workflow:
  name: parent_async
  tasks:
    - {id: deploy, run_workflow: child_slow, params: {seconds: 20}}
""",
    "child_slow.yaml": """\
workflow:
  name: child_slow
  params: {seconds: 1}
  tasks:
    - {id: work, command: 'sleep "$IFLOW_PARAM_seconds"'}
""",
    "child.yaml": """\
workflow:
  name: child
  params: {version: "0", region: none, flag: false, fail: "no"}
  tasks:
    - id: show
      command: 'echo "$IFLOW_PARAM_version $IFLOW_PARAM_region $IFLOW_PARAM_flag"; test "$IFLOW_PARAM_fail" = no'
""",
}


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def most_at_once(tis: list[dict]) -> int:
    """The largest number of task instances running at the same moment."""
    events = sorted([(_t(ti["start_date"]), 1) for ti in tis] + [(_t(ti["end_date"]), -1) for ti in tis])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def test_most_at_once_can_see_overlap():
    day = "2026-01-01T00:00:{:02d}+00:00"
    tis = [{"start_date": day.format(a), "end_date": day.format(b)} for a, b in ((0, 5), (1, 6), (2, 3), (7, 8))]
    assert most_at_once(tis) == 3


def _mapped(tis: list[dict]) -> list[dict]:
    return [dict(ti, task_id=f"{ti['dag_id']}.{ti['task_id']}[{ti['map_index']}]") for ti in tis
            if ti["map_index"] >= 0]


@pytest.mark.e2e
def test_fan_out_resources_max_parallel_and_sub_workflows(airflow_deployment, tmp_path: Path):
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "iflow_dags.py", dags / "iflow_dags.py")
    (dags / "iflow.defaults.yaml").write_text(DEFAULTS)
    for name, text in FILES.items():
        (dags / name).write_text(text)
    af = airflow_deployment(dags, components=("dag-processor", "scheduler", "api-server", "triggerer"))
    client = af.client
    for dag_id in ("fan_low", "fan_high", "capped", "parent", "parent_fail", "child", "parent_async", "child_slow"):
        client.wait_for_dag(dag_id, timeout=240)
    client.wait_until(lambda: client.pools().get("iflow_lock") == 1, timeout=60, what="pool iflow_lock")

    runs = {d: client.trigger(d) for d in ("fan_low", "fan_high", "capped")}
    parent = client.trigger("parent", conf={"region": "us"})
    parent_fail = client.trigger("parent_fail")
    parent_async = client.trigger("parent_async")
    # while the 20 s child runs, the parent's task waits deferred: no worker slot held
    client.wait_until(lambda: any(t["state"] == "deferred" for t in client.task_instances("parent_async", parent_async)),
                      timeout=300, what="parent_async.deploy deferred")
    for dag_id, run in runs.items():
        assert client.wait_for_run(dag_id, run, timeout=600) == "success"

    # every item on the 1-slot lock: never two at once, and no lower level started before a waiting higher one
    locked = _mapped([ti for d in ("fan_low", "fan_high") for ti in client.task_instances(d, runs[d])])
    assert len(locked) == 7 and {ti["pool"] for ti in locked} == {"iflow_lock"}
    assert {ti["priority_weight"] // 1_000_000 for ti in locked} == {2, 4}
    print("\n[decomposition] lock order:", [ti["task_id"] for ti in sorted(locked, key=lambda x: _t(x["start_date"]))])
    assert overlaps(locked) == []
    assert inversions(locked) == []

    capped = _mapped(client.task_instances("capped", runs["capped"]))
    assert len(capped) == 6 and {ti["state"] for ti in capped} == {"success"}
    assert most_at_once(capped) == 2  # held (and reached: the cap, not a lack of slots, was the limit)

    assert client.wait_for_run("parent", parent, timeout=600) == "success"
    child_run = client.result("parent", parent, "deploy")
    assert child_run.startswith("iflow__parent.deploy__")
    child = client.dag_run("child", child_run)
    assert child["state"] == "success"
    assert child["conf"] == {"version": "1.2.3", "region": "us", "flag": True}
    assert client.result("child", child_run, "show") == "1.2.3 us true"
    assert client.result("parent", parent, "after") == f"child run: {child_run}"

    assert client.wait_for_run("parent_fail", parent_fail, timeout=600) == "failed"
    failed_child = client.result("parent_fail", parent_fail, "deploy")
    assert client.dag_run("child", failed_child)["state"] == "failed"
    [deploy] = client.task_instances("parent_fail", parent_fail)
    assert deploy["state"] == "failed"

    assert client.wait_for_run("parent_async", parent_async, timeout=600) == "success"
    slow = client.result("parent_async", parent_async, "deploy")
    assert client.dag_run("child_slow", slow)["conf"] == {"seconds": 20}
    assert client.dag_run("child_slow", slow)["state"] == "success"
