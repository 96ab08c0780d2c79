"""What the page and the CLI say: plurals, empty values, rates only where they mean something."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from iflow_airflow.errors import plural
from iflow_airflow.runtime.figures import RunRow, TaskRow, timeline, workflow_figures
from iflow_airflow.runtime.plugin import render

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(s):
    return None if s is None else T0 + timedelta(seconds=s)


def row(task, state, queued, start, end):
    return TaskRow("wf", "r1", task, state, at(queued), at(start), at(end), 1, "default_pool", 1, 1)


@pytest.mark.parametrize("n, text", [(0, "0 tasks"), (1, "1 task"), (2, "2 tasks")])
def test_plural(n, text):
    assert plural(n, "task") == text


def figures(*rows, end=10.0):
    run = RunRow("wf", "r1", "success", at(0), at(end))
    return workflow_figures("wf", [run], list(rows), now=at(end + 1))


def test_a_short_run_gets_no_per_minute_rate_but_says_what_happened():
    f = figures(row("a", "success", 0, 0.1, 0.4))
    assert f["throughput_per_min"] is None  # one 0.3 s task is not "200 tasks/min"
    assert (f["finished_tasks"], f["finished_span"]) == (1, 0.3)
    assert render._throughput(f) == "1 task in 0.30 s"


def test_a_minute_or_more_gets_tasks_per_minute():
    f = figures(row("a", "success", 0, 0, 30), row("b", "success", 30, 30, 60), end=60)
    assert f["throughput_per_min"] == 2.0
    assert render._throughput(f) == "2.0 tasks/min"


def test_no_finished_task_is_a_dash():
    assert render._throughput({"throughput_per_min": None, "finished_tasks": 0}) == "–"


def card(**over):
    base = figures(row("a", "success", 0, 0.1, 0.4))
    base.update(description=None, planned_tasks=1, resources=[], timeline=None, paused=False, stale=False)
    base.update(over)
    return render.workflow_card(base)


def test_card_says_one_task_and_hides_an_unknown_count():
    assert "1 task · resources: none" in card()
    assert ">resources: none<" in card(planned_tasks=None)  # no "? tasks"
    assert "<th>Runs</th><td>0</td>" in card(runs={"total": 0, "by_state": {}})


def test_the_timeline_axis_covers_the_last_bar():
    """A span of 23 s with 5 s ticks: the axis runs to 25 s, so the last bar ends before the last tick."""
    run = RunRow("wf", "r1", "success", at(0), at(23))
    tl = timeline(run, [row("a", "success", 0, 0, 11), row("b", "success", 11, 11, 23)], now=at(30),
                  order=["a", "b"])
    svg = render.timeline_svg("wf", tl, width=920)
    ticks = re.findall(r'<text x="([\d.]+)" y="[\d.]+" class="tick" text-anchor="middle">([^<]+)<', svg)
    assert [label for _, label in ticks][-1] == "25 s"
    last_tick = float(ticks[-1][0])
    ends = [float(x) + float(w) for x, w in re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" '
                                                          r'height="14"', svg)]
    assert max(ends) <= last_tick <= 910.0


def test_the_dag_docs_plan_table_fits_a_narrow_modal():
    """Four columns whose cells wrap at spaces (Airflow's docs modal does not scroll sideways)."""
    from pathlib import Path

    from iflow_airflow.build.dag import _plan_rows
    from iflow_airflow.compiler import compile_file
    from iflow_airflow.settings import IflowSettings

    dags = Path(__file__).resolve().parents[3] / "dags"
    plan = compile_file(dags / "release_pipeline.yaml", root=dags,
                        settings=IflowSettings(allowed_modules=("iflow_airflow.examples",))).plan
    lines = _plan_rows(plan).splitlines()
    assert lines[0] == "| task | priority | runs on | action |"
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert all(len(row) == 4 for row in cells)
    assert cells[2] == ["migrate_database", "critical(5) · weight 5000300",
                        "pool iflow_database x1 · queue default", "command · 2 retries · timeout 120s"]
    assert max(len(word) for row in cells for cell in row[1:] for word in cell.split()) <= 20
