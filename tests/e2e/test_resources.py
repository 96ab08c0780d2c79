"""Resources, pools and priorities under a real scheduler (issue 3, item 6).

``dag.test()`` ignores pools, so only a running scheduler shows these: pools made
with no manual step, no overlap on a 1-slot resource, and no priority inversion
across workflows.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LEVEL = {"critical": 5, "high": 4, "medium": 3, "low": 2, "lowest": 1}


def _workflow(name: str, priorities: list[str]) -> str:
    tasks = "\n".join(f"    - {{id: {name}_{p}, priority: {p}, resource: lock, command: 'sleep 2'}}"
                      for p in priorities)
    return f"workflow:\n  name: {name}\n  tasks:\n{tasks}\n"


def _t(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def inversions(tis: list[dict]) -> list[tuple[str, str]]:
    """(started, overtaken) pairs: a task was queued for the resource while a task of a strictly
    higher level was already waiting for it (scheduled earlier) and that task started later.
    The first task to start is exempt: nothing was waiting yet when the scheduler picked it."""
    ordered = sorted(tis, key=lambda ti: _t(ti["start_date"]))
    found = []
    for t in ordered[1:]:
        for o in ordered:
            higher = o["priority_weight"] // 1_000_000 > t["priority_weight"] // 1_000_000
            if higher and _t(o["scheduled_when"]) <= _t(t["queued_when"]) and _t(o["start_date"]) > _t(t["start_date"]):
                found.append((t["task_id"], o["task_id"]))
    return found


def overlaps(tis: list[dict]) -> list[tuple[str, str]]:
    spans = sorted((_t(ti["start_date"]), _t(ti["end_date"]), ti["task_id"]) for ti in tis)
    return [(a[2], b[2]) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]


def test_inversion_and_overlap_checks_can_fail():
    """The checks above find what they look for (so a green run means something)."""
    def ti(task, level, scheduled, queued, start, end):
        day = "2026-01-01T00:00:{:02d}+00:00"
        return {"task_id": task, "priority_weight": level * 1_000_000, "scheduled_when": day.format(scheduled),
                "queued_when": day.format(queued), "start_date": day.format(start), "end_date": day.format(end)}
    low_first = [ti("first", 1, 0, 1, 2, 5), ti("low", 1, 0, 6, 7, 9), ti("high", 5, 3, 10, 11, 12)]
    assert inversions(low_first) == [("low", "high")]
    assert overlaps([ti("a", 1, 0, 0, 1, 5), ti("b", 1, 0, 0, 4, 6)]) == [("a", "b")]
    assert inversions([ti("a", 1, 0, 1, 2, 5), ti("b", 5, 0, 6, 7, 9)]) == []


@pytest.mark.e2e
def test_pools_priorities_new_files_and_resizes(airflow_deployment, tmp_path: Path):
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "iflow_dags.py", dags / "iflow_dags.py")
    (dags / "iflow.defaults.yaml").write_text("resources:\n  lock: {slots: 1, description: one at a time}\n"
                                              "orchestration: {retry_attempts: 0}\n")
    (dags / "alpha.yaml").write_text(_workflow("alpha", ["low", "critical", "medium", "lowest"]))
    (dags / "beta.yaml").write_text(_workflow("beta", ["lowest", "high", "low", "critical"]))
    af = airflow_deployment(dags)
    client = af.client
    client.wait_for_dag("alpha", timeout=180)
    client.wait_for_dag("beta", timeout=60)

    # The pool exists with the declared slots before anything runs: nobody made it by hand.
    client.wait_until(lambda: client.pools().get("iflow_lock") == 1, timeout=60, what="pool iflow_lock (1 slot)")
    client.set_pool("people_made_this", 7, "made by a person")

    runs = {"alpha": client.trigger("alpha"), "beta": client.trigger("beta")}
    for dag_id, run in runs.items():
        assert client.wait_for_run(dag_id, run, timeout=300) == "success"
    tis = [ti for dag_id, run in runs.items() for ti in client.task_instances(dag_id, run)]
    assert len(tis) == 8 and {ti["pool"] for ti in tis} == {"iflow_lock"}
    assert {ti["state"] for ti in tis} == {"success"}
    order = [ti["task_id"] for ti in sorted(tis, key=lambda ti: _t(ti["start_date"]))]
    print("\n[resources] start order:", order)
    assert overlaps(tis) == []
    assert inversions(tis) == []

    # A new file with a new resource, while Airflow runs: no manual step.
    (dags / "gamma.yaml").write_text(
        "resources: {gpu: 2}\nworkflow:\n  name: gamma\n  tasks:\n"
        "    - {id: train, resource: {name: gpu, slots: 2}, command: 'echo trained'}\n")
    client.wait_for_dag("gamma", timeout=120)
    client.wait_until(lambda: client.pools().get("iflow_gpu") == 2, timeout=60, what="pool iflow_gpu (2 slots)")
    run = client.trigger("gamma")
    assert client.wait_for_run("gamma", run, timeout=240) == "success"

    # A resize: change the slots in the file, the pool follows; a person's pool is left alone.
    (dags / "iflow.defaults.yaml").write_text("resources:\n  lock: {slots: 3, description: three now}\n"
                                              "orchestration: {retry_attempts: 0}\n")
    client.wait_until(lambda: client.pools().get("iflow_lock") == 3, timeout=60, what="pool iflow_lock resized to 3")
    assert client.pools()["people_made_this"] == 7
