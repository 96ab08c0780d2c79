"""The page's HTML and SVG from fixed figures (render.py is pure)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from iflow_airflow.runtime.figures import RunRow, TaskRow, timeline, workflow_figures
from iflow_airflow.runtime.plugin import render

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(s):
    return None if s is None else T0 + timedelta(seconds=s)


def row(task, state, queued, start, end, tries=1):
    return TaskRow("wf", "r1", task, state, at(queued), at(start), at(end), tries, "default_pool", 1, 1)


def test_timeline_svg_bars_and_scale():
    run = RunRow("wf", "r1", "running", at(0), None)
    tl = timeline(run, [row("a", "success", 0, 2, 10), row("b", "running", 10, 12, None), row("c", None, None,
                                                                                             None, None)],
                  now=at(20), order=["a", "b", "c"])
    svg = render.timeline_svg("wf", tl, width=920)
    # label column 190 px, plot 720 px for a 20 s span: 36 px per second
    bars = re.findall(r'<g class="bar" data-task="(\w+)" data-state="(\w+)">.*?<rect x="([\d.]+)" y="[\d.]+" '
                      r'width="([\d.]+)"', svg)
    assert bars[0] == ("a", "success", "190.0", "72.0")  # queued 0 -> start 2: the pale wait bar first
    assert re.search(r'data-task="a".*?<rect x="262.0" y="27" width="288.0" height="14" rx="2" fill="#2e9e44">',
                     svg)  # start 2 s, 8 s long
    assert re.search(r'data-task="b".*?<rect x="622.0" y="47" width="288.0" height="14" rx="2" fill="#1f8fe0">',
                     svg)  # running: until now (20 s)
    assert 'data-task="c" data-state="none"' in svg
    assert [m for m in re.findall(r'class="tick" text-anchor="middle">([^<]+)<', svg)] == [
        "0 s", "5 s", "10 s", "15 s", "20 s"]
    assert 'data-run-id="r1" data-run-state="running"' in svg


def test_no_run_and_escaping():
    assert "no run yet" in render.timeline_svg("wf", None)
    run = RunRow("wf", "<r>", "success", at(0), at(5))
    svg = render.timeline_svg('w"f', timeline(run, [row("t&1", "success", 0, 1, 2)], now=at(9)))
    assert 'data-workflow="w&quot;f"' in svg and 'data-run-id="&lt;r&gt;"' in svg and "t&amp;1" in svg
    assert "<r>" not in svg


def test_card_and_page():
    runs = [RunRow("wf", "r1", "running", at(0), None)]
    tis = [row("a", "success", 0, 1, 3), row("b", "running", 3, 4, None), row("c", None, None, None, None)]
    w = workflow_figures("wf", runs, tis, now=at(10), upstream={"b": ("a",)}, total_tasks=3)
    w["timeline"] = timeline(runs[0], tis, now=at(10))
    w.update(description="desc <b>", paused=True, stale=False, planned_tasks=3, resources=["iflow_db"])
    html = render.workflow_card(w)
    assert '<div class="run" data-run-id="r1" data-done="1" data-total="3" data-late="false">' in html
    assert "1/3 tasks done (33%), 1 running" in html
    assert 'aria-valuenow="33"' in html and "width:33%" in html
    assert "desc &lt;b&gt;" in html and '<span class="badge paused">paused</span>' in html
    assert "<h3>Runs in progress</h3>" in html
    assert "p50 1.00 s · p95 1.00 s" in html  # both latencies are 1 s
    summary = {"generated_at": "2026-01-01T00:00:00+00:00", "runs_per_workflow": 20, "workflows": [w],
               "resources": [{"pool": "iflow_db", "resource": "db", "slots": 2, "declared_slots": 1, "max_slots": 3,
                              "busy": 2, "busy_share": 1.0, "running": 2, "queued": 0, "waiting": 1,
                              "threshold": 0.8, "saturated": True, "workflows": ["wf"], "exists": True}]}
    page = render.page(summary)
    assert page.startswith("<!doctype html>") and 'src="static/iflow.js"' in page
    assert '<tr data-pool="iflow_db">' in page and '<span class="badge s-failed">saturated</span>' in page
    assert "2 <span class=\"muted\">(declared 1, max 3)</span>" in page


def test_formatting():
    assert [render.fmt_s(v) for v in (None, 0.4, 12.34, 245, 7380)] == ["–", "0.40 s", "12.3 s", "4m 05s", "2h 03m"]
    assert render.fmt_pct(0.756) == "76%"
    assert render.fmt_tick(120, 60) == "2m" and render.fmt_tick(2.5, 0.5) == "2.5 s"


def test_late_runs_and_waiting_reasons_are_shown():
    from iflow_airflow.runtime import deadlines

    runs = [RunRow("wf", "r1", "running", at(0), None)]
    w = workflow_figures("wf", runs, [row("a", "scheduled", None, None, None)], now=at(3000), total_tasks=1)
    w["in_progress"][0]["deadline"] = deadlines.lateness(at(0), None, 2700, at(3000))
    w.update(timeline=None, late_runs=1, deadline="45m", waiting=[
        {"task_id": "a", "run_id": "r1", "state": "scheduled", "priority": "high (4)", "kind": "resource",
         "reason": "waiting for resource iflow_db: 1 of 1 slot taken (needs 1), held by x of <y>"}])
    html = render.workflow_card(w)
    assert 'data-late="true"' in html and "late by 5m 00s" in html and "1 late</span>" in html
    assert "deadline 45m" in html
    assert ('<tr class="waiting" data-task="a" data-run-id="r1" data-kind="resource">' in html
            and "held by x of &lt;y&gt;</td>" in html)


def test_lateness_rule():
    from iflow_airflow.runtime import deadlines

    assert deadlines.lateness(at(0), None, 60, at(60)) == {
        "deadline_at": "2026-01-01T00:01:00+00:00", "deadline": "1m", "late": False, "late_by_s": None}
    assert deadlines.lateness(at(0), at(90), 60, at(500))["late_by_s"] == 30.0  # finished 30 s late
    assert deadlines.lateness(None, None, 60, at(9)) is None and deadlines.lateness(at(0), None, None, at(9)) is None
    assert [x.run_id for x in deadlines.late_runs(
        [("wf", "a", at(0)), ("wf", "b", at(100)), ("other", "c", at(0)), ("wf", "d", None)],
        {"wf": 60.0}, at(120))] == ["a"]
    assert deadlines.format_duration(5400) == "1h30m" and deadlines.format_duration(90061) == "1d1h1m1s"
