"""figures.py on fixed rows; every expected value is computed by hand in the comments."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from iflow_airflow.runtime.figures import (
    PoolRow,
    RunRow,
    TaskRow,
    distribution,
    max_concurrency,
    percentile,
    resource_figures,
    run_progress,
    sync_delays,
    timeline,
    workflow_figures,
)

T0 = datetime(2026, 1, 1, 10, 0, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(seconds=320)
UPSTREAM = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
ORDER = ("a", "b", "c", "d")


def at(s: float | None) -> datetime | None:
    return None if s is None else T0 + timedelta(seconds=s)


def ti(run, task, state, sched, queued, start, end, tries=1, pool="default_pool"):
    return TaskRow(dag_id="wf", run_id=run, task_id=task, state=state, queued_dttm=at(queued),
                   start_date=at(start), end_date=at(end), try_number=tries, pool=pool, pool_slots=1,
                   priority_weight=1, scheduled_dttm=at(sched))


RUNS = [
    RunRow("wf", "r1", "success", at(0), at(100)),
    RunRow("wf", "r2", "failed", at(200), at(260)),
    RunRow("wf", "r3", "running", at(300), None),
]
TIS = [
    # run r1: a -> (b, c) -> d, b needed two tries
    ti("r1", "a", "success", 0, 1, 3, 13),
    ti("r1", "b", "success", 13, 14, 15, 45, tries=2, pool="iflow_db"),
    ti("r1", "c", "success", 13, 20, 24, 34, pool="iflow_db"),
    ti("r1", "d", "success", 45, 46, 50, 90),
    # run r2: b fails after three tries, d never runs
    ti("r2", "a", "success", 200, 201, 202, 212),
    ti("r2", "b", "failed", 212, 213, 214, 240, tries=3, pool="iflow_db"),
    ti("r2", "c", "success", 212, 213, 215, 225, pool="iflow_db"),
    ti("r2", "d", "upstream_failed", None, None, None, None, tries=0),
    # run r3: in progress at NOW (T0+320)
    ti("r3", "a", "success", 300, 301, 303, 305),
    ti("r3", "b", "running", 305, 306, 310, None, pool="iflow_db"),
    ti("r3", "c", "scheduled", 305, None, None, None, pool="iflow_db"),
    ti("r3", "d", None, None, None, None, None, tries=0),
]


def test_percentile_nearest_rank():
    assert percentile([4, 1, 3, 2], 50) == 2  # ceil(0.5*4) = 2nd smallest
    assert percentile([4, 1, 3, 2], 95) == 4  # ceil(3.8) = 4th
    assert percentile([1, 1, 1, 2, 2, 2, 4, 4, 4], 50) == 2  # ceil(4.5) = 5th
    assert percentile([7], 95) == 7
    assert percentile([3, 9], 0) == 3
    assert percentile([3, 9], 100) == 9
    assert percentile([], 50) is None
    assert distribution([None, 2.0, 1.0]) == {"count": 2, "p50": 1.0, "p95": 2.0, "max": 2.0}


def test_max_concurrency_edges():
    iv = [(at(0), at(10)), (at(10), at(20)), (at(5), at(15))]
    assert max_concurrency(iv, NOW) == 2  # an end and a start at t=10 do not overlap
    assert max_concurrency([(at(0), None), (at(310), None), (at(315), at(318))], NOW) == 3  # None ends at NOW
    assert max_concurrency([(None, at(5)), (at(3), at(3))], NOW) == 0  # no start / empty interval
    assert max_concurrency([], NOW) == 0


def test_sync_delays():
    # r1: b 15-13=2, c 24-13=11, d 50-max(45,34)=5; r2: b 2, c 3 (d never started); r3: b 310-305=5
    assert sync_delays(TIS, UPSTREAM) == [2.0, 11.0, 5.0, 2.0, 3.0, 5.0]
    assert sync_delays(TIS, {}) == []
    # an upstream without an end date gives no value
    rows = [ti("x", "a", "running", 0, 1, 2, None), ti("x", "b", "running", 0, 1, 9, None)]
    assert sync_delays(rows, {"b": ("a",)}) == []


def test_workflow_figures_on_fixed_rows():
    f = workflow_figures("wf", RUNS, TIS, now=NOW, upstream=UPSTREAM, total_tasks=4)
    assert f["name"] == "wf"
    assert f["runs"] == {"total": 3, "by_state": {"failed": 1, "running": 1, "success": 1}}
    assert f["in_progress"] == [{
        "run_id": "r3", "state": "running", "start_date": "2026-01-01T10:05:00+00:00",
        "done": 1, "total": 4, "progress": 0.25, "running": 1, "failed": 0,
        "states": {"none": 1, "running": 1, "scheduled": 1, "success": 1},
    }]
    assert f["latest_run"] == f["in_progress"][0]  # r3 is the newest run
    assert f["completion_rate"] == 0.5  # r1 success, r2 failed
    # queued->start: r1 2,1,4,4  r2 1,1,2  r3 2,4 -> sorted 1,1,1,2,2,2,4,4,4
    assert f["scheduling_latency"] == {"count": 9, "p50": 2.0, "p95": 4.0, "max": 4.0}
    # 2,11,5,2,3,5 -> sorted 2,2,3,5,5,11: p50 = 3rd, p95 = 6th
    assert f["sync_delay"] == {"count": 6, "p50": 3.0, "p95": 11.0, "max": 11.0}
    # pooled scheduled->queued: r1 b 1, c 7; r2 b 1, c 1; r3 b 1 (c not queued yet)
    assert f["resource_wait"] == {"count": 5, "p50": 1.0, "p95": 7.0, "max": 7.0}
    assert f["retries"] == 3  # r1 b: 1, r2 b: 2
    # 8 finished task instances between the first start (3) and the last end (305): 8 / (302/60)
    assert f["throughput_per_min"] == 1.589
    assert f["total_time"] == {"last": 60.0, "mean": 80.0}  # r2 60 s (latest finished), r1 100 s
    assert f["concurrency"] == 2  # r1 b+c, r2 b+c
    assert f["task_instances"] == 12


def test_workflow_figures_without_runs():
    f = workflow_figures("empty", [], [], now=NOW)
    assert f["completion_rate"] is None
    assert f["in_progress"] == [] and f["latest_run"] is None
    assert f["scheduling_latency"] == {"count": 0, "p50": None, "p95": None, "max": None}
    assert f["throughput_per_min"] is None
    assert f["total_time"] == {"last": None, "mean": None}
    assert f["concurrency"] == 0 and f["retries"] == 0


def test_run_progress_counts_planned_tasks_not_created_yet():
    p = run_progress(RUNS[2], [TIS[8]], total_tasks=4)  # only a exists yet
    assert (p["done"], p["total"], p["progress"]) == (1, 4, 0.25)
    p = run_progress(RUNS[1], TIS[4:8])
    assert (p["done"], p["total"], p["progress"], p["failed"]) == (4, 4, 1.0, 2)


def test_timeline_of_a_finished_and_a_running_run():
    t = timeline(RUNS[0], TIS[0:4], now=NOW, order=ORDER)
    assert t["span"] == 100.0  # the run's own end
    assert [(b["task_id"], b["queued"], b["start"], b["end"], b["state"]) for b in t["bars"]] == [
        ("a", 1.0, 3.0, 13.0, "success"), ("b", 14.0, 15.0, 45.0, "success"),
        ("c", 20.0, 24.0, 34.0, "success"), ("d", 46.0, 50.0, 90.0, "success")]
    t = timeline(RUNS[2], list(reversed(TIS[8:12])), now=NOW, order=ORDER)
    assert t["span"] == 20.0  # b runs until NOW (T0+320 = run start + 20)
    assert [(b["task_id"], b["start"], b["end"]) for b in t["bars"]] == [
        ("a", 3.0, 5.0), ("b", 10.0, 20.0), ("c", None, None), ("d", None, None)]


@pytest.mark.parametrize("row, threshold, share, saturated", [
    (PoolRow("iflow_db", slots=2, busy=2, waiting=1, running=1, queued=1), 0.8, 1.0, True),
    (PoolRow("iflow_db", slots=4, busy=3, waiting=2), 0.8, 0.75, False),  # 0.75 is not above 0.8
    (PoolRow("iflow_db", slots=4, busy=4, waiting=0), 0.8, 1.0, False),  # full, but nobody waits
    (PoolRow("iflow_db", slots=0, busy=0, waiting=0), 0.8, 0.0, False),
])
def test_resource_figures(row, threshold, share, saturated):
    f = resource_figures(row, threshold=threshold, resource="db", declared_slots=2, max_slots=4,
                         workflows=["wf"])
    assert f["busy_share"] == share and f["saturated"] is saturated
    assert (f["pool"], f["resource"], f["slots"], f["waiting"], f["workflows"]) == (
        "iflow_db", "db", row.slots, row.waiting, ["wf"])
