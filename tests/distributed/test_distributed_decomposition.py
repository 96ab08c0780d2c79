"""for_each on the CeleryExecutor (issue 15): mapped items on two workers, one 1-slot resource.

Its own cluster (the conftest's module-scoped fixture), with the compose
settings. ``dist_fanout`` (workflows/dist_fanout.yaml) fans a run-time list
out twice, once per worker queue, inside a group.
"""

from __future__ import annotations

import json

import pytest
from cluster import CeleryCluster, iso_to_epoch

pytestmark = pytest.mark.distributed

RUN_TIMEOUT = 420


def _overlapping(tis: list[dict]) -> list[tuple[str, str]]:
    spans = sorted((iso_to_epoch(t["start_date"]), iso_to_epoch(t["end_date"]), f"{t['task_id']}[{t['map_index']}]")
                   for t in tis)
    return [(a[2], b[2]) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]


def test_the_overlap_check_can_fail() -> None:
    ti = lambda m, s, e: {"task_id": "t", "map_index": m, "start_date": f"2026-01-01T00:00:0{s}+00:00",  # noqa: E731
                          "end_date": f"2026-01-01T00:00:0{e}+00:00"}
    assert _overlapping([ti(0, 1, 4), ti(1, 3, 5)]) == [("t[0]", "t[1]")]


def test_fan_out_over_two_workers_on_one_slot(cluster: CeleryCluster, figures: dict) -> None:
    client = cluster.client
    client.wait_for_dag("dist_fanout", timeout=240)
    client.wait_until(lambda: client.pools().get("iflow_fanout_lock") == 1, 120, "pool iflow_fanout_lock")
    run = client.trigger("dist_fanout")
    assert client.wait_for_run("dist_fanout", run, timeout=RUN_TIMEOUT) == "success"
    tis = client.task_instances("dist_fanout", run)
    items = [t for t in tis if t["map_index"] >= 0]
    assert sorted((t["task_id"], t["map_index"]) for t in items) == sorted(
        (f"fan.{side}", i) for side in ("east", "west") for i in range(4))
    assert {(t["task_id"], t["queue"], t["hostname"], t["state"]) for t in items} == {
        ("fan.east", "default", "worker-a", "success"), ("fan.west", "queue_b", "worker-b", "success")}
    assert {t["pool"] for t in items} == {"iflow_fanout_lock"}
    assert _overlapping(items) == []
    east, west = (json.dumps([f"{side} r{i}" for i in range(1, 5)]) for side in ("east", "west"))
    assert client.result("dist_fanout", run, "merge") == f"{east} | {west}"
    spans = [iso_to_epoch(t["end_date"]) - iso_to_epoch(t["start_date"]) for t in items]
    figures["fanout_items"] = len(items)
    figures["fanout_item_seconds_max"] = round(max(spans), 2)
