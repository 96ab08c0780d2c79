"""Server-side HTML and SVG of the iflow page (pure functions over ``summary`` dicts)."""

from __future__ import annotations

import math
from html import escape
from typing import Any
from urllib.parse import quote

from iflow_airflow.errors import plural

STATE_COLORS = {
    "success": "#2e9e44",
    "failed": "#d9363e",
    "running": "#1f8fe0",
    "queued": "#8d8d8d",
    "scheduled": "#b59ad9",
    "up_for_retry": "#f0b400",
    "up_for_reschedule": "#5fc6c6",
    "upstream_failed": "#f08c2e",
    "skipped": "#e08bd0",
    "deferred": "#7b5fc4",
    "removed": "#b0b0b0",
    "restarting": "#8a5a2b",
    "none": "#d5d5d5",
}
LEGEND = ("success", "running", "queued", "failed", "up_for_retry", "upstream_failed", "skipped", "scheduled",
          "deferred", "none")


def e(v: Any) -> str:
    return escape("" if v is None else str(v), quote=True)


def fmt_s(v: float | None) -> str:
    """Seconds for people: 0.42 s, 12.3 s, 4m 05s, 2h 03m."""
    if v is None:
        return "–"
    if v < 10:
        return f"{v:.2f} s"
    if v < 60:
        return f"{v:.1f} s"
    if v < 3600:
        return f"{int(v // 60)}m {int(v % 60):02d}s"
    return f"{int(v // 3600)}h {int(v % 3600 // 60):02d}m"


def fmt_pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.0f}%"


def fmt_tick(t: float, step: float) -> str:
    """An axis label: ``0 s``, ``2.5 s``, ``40 s``, ``2m``, ``1.5h``."""
    if step >= 3600:
        return f"{round(t / 3600, 2):g}h"
    if step >= 60:
        return f"{round(t / 60, 2):g}m"
    return f"{round(t, 3):g} s"


def _nice_step(span: float, ticks: int = 6) -> float:
    raw = max(span, 1e-9) / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def timeline_svg(name: str, tl: dict[str, Any] | None, width: int = 920) -> str:
    """A Gantt-like SVG of one run: a pale bar from queued to start, a coloured bar while it ran."""
    if not tl or not tl.get("bars"):
        return (f'<svg class="iflow-timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="30" '
                f'data-workflow="{e(name)}" data-run-id=""><text x="4" y="20" class="muted">no run yet</text></svg>')
    bars = tl["bars"]
    label_w, row_h, top, pad = 190, 20, 24, 10
    plot_w = width - label_w - pad
    span = max(tl.get("span") or 0.0, 1e-3)
    step = _nice_step(span)
    axis_end = math.ceil(span / step - 1e-9) * step  # the last tick is at or after every bar's end
    scale = plot_w / axis_end
    height = top + row_h * len(bars) + 8
    out = [f'<svg class="iflow-timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" data-workflow="{e(name)}" data-run-id="{e(tl["run_id"])}" '
           f'data-run-state="{e(tl.get("state"))}" aria-label="timeline of run {e(tl["run_id"])}">']
    t = 0.0
    while t <= axis_end + 1e-9:
        x = label_w + t * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 6}" class="grid"/>'
                   f'<text x="{x:.1f}" y="{top - 8}" class="tick" text-anchor="middle">{e(fmt_tick(t, step))}</text>')
        t += step
    for i, b in enumerate(bars):
        y = top + i * row_h
        state = b.get("state") or "none"
        color = STATE_COLORS.get(state, STATE_COLORS["none"])
        out.append(f'<g class="bar" data-task="{e(b["task_id"])}" data-state="{e(state)}">')
        out.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" class="label">{e(b["task_id"])}</text>')
        tip = (f'{b["task_id"]}: {state}, try {b.get("try_number")}, queued {fmt_s(b.get("queued"))}, '
               f'start {fmt_s(b.get("start"))}, end {fmt_s(b.get("end"))}' + (f', pool {b["pool"]}' if b.get("pool")
                                                                               else ""))
        if b.get("queued") is not None and b.get("start") is not None and b["start"] > b["queued"]:
            x0, x1 = label_w + b["queued"] * scale, label_w + b["start"] * scale
            out.append(f'<rect x="{x0:.1f}" y="{y + 6}" width="{max(x1 - x0, 1):.1f}" height="6" class="wait"/>')
        if b.get("start") is not None:
            end = b["end"] if b.get("end") is not None else b["start"]
            x0 = label_w + b["start"] * scale
            w = max((end - b["start"]) * scale, 2.0)
            out.append(f'<rect x="{x0:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" rx="2" fill="{color}">'
                       f'<title>{e(tip)}</title></rect>')
        else:
            out.append(f'<rect x="{label_w}" y="{y + 3}" width="6" height="{row_h - 6}" rx="2" fill="{color}" '
                       f'opacity="0.6"><title>{e(tip)}</title></rect>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _late_badge(p: dict[str, Any]) -> str:
    """``late`` (past ``workflow.deadline``, with by how much) or nothing."""
    d = p.get("deadline") or {}
    if not d.get("late"):
        return ""
    return (f' <span class="badge late s-failed" title="deadline {e(d.get("deadline"))}, at {e(d.get("deadline_at"))}">'
            f'late by {e(fmt_s(d.get("late_by_s")))}</span>')


def _progress(p: dict[str, Any]) -> str:
    pct = round(100 * (p.get("progress") or 0))
    late = bool((p.get("deadline") or {}).get("late"))
    return (f'<div class="run" data-run-id="{e(p["run_id"])}" data-done="{p["done"]}" data-total="{p["total"]}" '
            f'data-late="{"true" if late else "false"}">'
            f'<span class="run-id">{e(p["run_id"])}</span> <span class="badge s-{e(p["state"])}">{e(p["state"])}</span>'
            f'{_late_badge(p)}'
            f'<div class="progress" role="progressbar" aria-valuenow="{pct}" aria-valuemin="0" aria-valuemax="100">'
            f'<div class="fill s-{e(p["state"])}" style="width:{pct}%"></div></div>'
            f'<span class="count">{p["done"]}/{p["total"]} tasks done ({pct}%)'
            + (f', {p["running"]} running' if p.get("running") else "")
            + (f', {p["failed"]} failed' if p.get("failed") else "") + "</span></div>")


def _dist(d: dict[str, Any]) -> str:
    if not d or not d.get("count"):
        return "–"
    return f'p50 {fmt_s(d["p50"])} · p95 {fmt_s(d["p95"])} <span class="muted">(n={d["count"]})</span>'


def _throughput(w: dict[str, Any]) -> str:
    """Tasks per minute over a span of a minute or more; below that, what happened ("2 tasks in 0.61 s")."""
    if w.get("throughput_per_min") is not None:
        return f'{w["throughput_per_min"]:.1f} tasks/min'
    if w.get("finished_tasks"):
        return f'{plural(w["finished_tasks"], "task")} in {fmt_s(w.get("finished_span") or 0.0)}'
    return "–"


def _planned(n: int | None) -> str:
    return f"{plural(n, 'task')} · " if n else ""


MAX_WAITING_ROWS = 50


def waiting_table(waits: list[dict[str, Any]], total: int | None = None) -> str:
    """"Why is it waiting?": one row per task of a run in progress that is not running (the first
    :data:`MAX_WAITING_ROWS`; the rest are counted)."""
    if not waits:
        return ""
    total = max(total or 0, len(waits))
    more = (f'<p class="muted">and {total - MAX_WAITING_ROWS} more (all in the JSON)</p>'
            if total > MAX_WAITING_ROWS else "")
    waits = waits[:MAX_WAITING_ROWS]
    rows = "".join(
        f'<tr class="waiting" data-task="{e(w["task_id"])}" data-run-id="{e(w["run_id"])}" data-kind="{e(w["kind"])}">'
        f'<td><code>{e(w["task_id"])}</code></td><td><span class="badge s-{e(w["state"])}">{e(w["state"])}</span></td>'
        f'<td>{e(w.get("priority"))}</td><td class="reason">{e(w["reason"])}</td></tr>' for w in waits)
    return ('<h3>Why is it waiting?</h3><table class="waiting-reasons"><tr><th>Task</th><th>State</th>'
            f'<th>Priority</th><th>Reason</th></tr>{rows}</table>{more}')


def workflow_card(w: dict[str, Any]) -> str:
    name = w["name"]
    runs = w["runs"]
    by_state = ", ".join(f"{n} {s}" for s, n in runs["by_state"].items())
    rows = [
        ("Runs", f"{runs['total']} ({by_state})" if by_state else str(runs["total"])),
        ("Completion rate", fmt_pct(w["completion_rate"])),
        ("Scheduling latency (queued → start)", _dist(w["scheduling_latency"])),
        ("Sync delay (upstream end → start)", _dist(w["sync_delay"])),
        ("Resource wait (scheduled → queued)", _dist(w["resource_wait"])),
        ("Retries", str(w["retries"])),
        ("Throughput", _throughput(w)),
        ("Total time (last · mean run)", f'{fmt_s(w["total_time"]["last"])} · {fmt_s(w["total_time"]["mean"])}'),
        ("Concurrency (max running at once)", str(w["concurrency"])),
    ]
    table = "".join(f'<tr><th>{e(k)}</th><td>{v}</td></tr>' for k, v in rows)
    progress = "".join(_progress(p) for p in w["in_progress"])
    if progress:
        progress = f"<h3>Runs in progress</h3>{progress}"
    elif w.get("latest_run"):
        progress = f'<h3>Latest run</h3>{_progress(w["latest_run"])}'
    else:
        progress = '<h3>Runs</h3><p class="muted">no run yet</p>'
    tl = w.get("timeline")
    flags = (' <span class="badge paused">paused</span>' if w.get("paused") else "") + (
        f' <span class="badge late s-failed">{w["late_runs"]} late</span>' if w.get("late_runs") else "") + (
        ' <span class="badge stale">stale</span>' if w.get("stale") else "")
    res = ", ".join(e(r) for r in w.get("resources") or []) or "none"
    tl_title = (f'Timeline of run <code>{e(tl["run_id"])}</code> <span class="badge s-{e(tl["state"])}">'
                f'{e(tl["state"])}</span>') if tl else "Timeline"
    return (
        f'<section class="workflow" id="wf-{e(name)}" data-workflow="{e(name)}">'
        f'<h2><a href="../dags/{quote(name)}" target="_top">{e(name)}</a>{flags}</h2>'
        f'<p class="desc">{e(w.get("description") or "")}</p>'
        f'<p class="muted">{_planned(w.get("planned_tasks"))}resources: {res}'
        + (f' · deadline {e(w["deadline"])}' if w.get("deadline") else "") + '</p>'
        f'<div class="cols"><div class="runs">{progress}</div>'
        f'<table class="figures">{table}</table></div>'
        f'{waiting_table(w.get("waiting") or [], w.get("waiting_total"))}'
        f'<h3 class="tl-title">{tl_title}</h3>'
        f'<div class="timeline" data-workflow="{e(name)}">{timeline_svg(name, tl)}</div>'
        f'</section>')


def resources_table(resources: list[dict[str, Any]]) -> str:
    if not resources:
        return '<p class="muted">No iflow resource (pool) yet.</p>'
    head = ("<tr><th>Resource</th><th>Pool</th><th>Slots</th><th>Busy</th><th>Busy share</th><th>Waiting</th>"
            "<th>State</th><th>Priority inversions</th><th>Workflows</th></tr>")
    body = []
    for r in resources:
        share = r["busy_share"] or 0.0
        pct = min(100, round(share * 100))
        slots = f'{r["slots"]}' + (f' <span class="muted">(declared {r["declared_slots"]}'
                                   + (f', max {r["max_slots"]}' if r.get("max_slots") else "") + ")</span>"
                                   if r.get("declared_slots") is not None else "")
        state = ('<span class="badge s-failed">saturated</span>' if r["saturated"]
                 else '<span class="badge s-success">ok</span>')
        if not r.get("exists", True):
            state = '<span class="badge">not created yet</span>'
        body.append(
            f'<tr data-pool="{e(r["pool"])}"><td>{e(r.get("resource") or "–")}</td><td><code>{e(r["pool"])}</code></td>'
            f'<td>{slots}</td><td>{r["busy"]}</td>'
            f'<td><div class="progress small"><div class="fill{" hot" if share > r["threshold"] else ""}" '
            f'style="width:{pct}%"></div></div> {fmt_pct(share)} <span class="muted">/ {fmt_pct(r["threshold"])}'
            f'</span></td><td>{r["waiting"]}</td><td>{state}</td><td class="inversions">{r.get("priority_inversions", 0)}</td>'
            f'<td>{e(", ".join(r["workflows"]))}</td></tr>')
    return f'<table class="resources">{head}{"".join(body)}</table>'


def content(summary: dict[str, Any]) -> str:
    """The part of the page that the script refreshes."""
    wfs = summary["workflows"]
    cards = "".join(workflow_card(w) for w in wfs) or '<p class="muted">No iflow workflow is registered.</p>'
    legend = "".join(f'<span class="key"><i style="background:{STATE_COLORS[s]}"></i>{e(s)}</span>' for s in LEGEND)
    return (f'<p class="muted">Updated {e(summary["generated_at"][:19].replace("T", " "))} UTC · last '
            f'{summary["runs_per_workflow"]} runs per workflow</p>'
            f'<h2>Resources</h2>{resources_table(summary["resources"])}'
            f'<div class="legend">{legend}</div>{cards}')


def page(summary: dict[str, Any], static_prefix: str = "static") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>iflow workflows</title><link rel="stylesheet" href="{static_prefix}/iflow.css"></head>'
        '<body><header><h1>iflow workflows</h1>'
        '<label class="muted"><input type="checkbox" id="autorefresh" checked> refresh every 10 s</label></header>'
        f'<main id="content">{content(summary)}</main>'
        f'<script src="{static_prefix}/iflow.js" defer></script></body></html>')
