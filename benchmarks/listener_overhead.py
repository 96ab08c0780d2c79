#!/usr/bin/env python
"""Listener overhead: one iflow workflow on a real Airflow, monitoring on vs off.

The workflow is ``CHAINS`` parallel chains of ``LENGTH`` tasks (default 10 x 10 =
100 tasks, ``command: "true"``, ``max_concurrent_tasks: 16``, no retries). It runs on
a real dag-processor + scheduler + api-server (LocalExecutor, SQLite: the settings of
``make run``, through ``tests/e2e/harness.py``) in two modes:

* ``on``:  the default plugin (lifecycle + task_events + dagrun_events listeners);
* ``off``: ``AIRFLOW__IFLOW__MONITORING=false`` (only the lifecycle listener, i.e. the
  resource keeper; no events, metrics or alerts).

One deployment per mode and round (fresh AIRFLOW_HOME): start, wait for the DAG,
``--runs`` runs one after the other, stop; modes alternate in an ABBA order (on, off,
off, on, on, off, ...) for ``--rounds`` rounds, so a machine that warms up or gets
busier over the benchmark does not favour one mode. Per run: the DagRun's ``end_date - start_date`` (REST API)
and the sum of its task instances' durations. Reported: medians per mode and the
ratio on/off (goal: at most 1.05). Each deployment's scheduler log is checked:
``on`` must log ``iflow event=run_success`` lines, ``off`` none.

A run of 100 tasks on a 1 s scheduler loop varies by a second or more from run to
run, more than the hooks can cost; so each ``on`` deployment also times the hooks
themselves on its own rows (``_hook_cost_child.py``: the task hooks' first call in a
fresh process, as in a task process, and the run hooks with their database read),
and the report gives their share of a run: (tasks x task hooks + run hooks) / run time.

Examples::

    python benchmarks/listener_overhead.py                  # 10x10 tasks, 1 warm-up + 3 runs, 2 rounds
    python benchmarks/listener_overhead.py --quick          # 4x5 tasks, 2 runs, 1 round
    python benchmarks/listener_overhead.py --runs 5 --rounds 3 --chains 10 --length 10
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from machine import load_avg, machine_facts, print_machine_table  # noqa: E402  (benchmarks/ is on sys.path)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from harness import AirflowDeployment  # noqa: E402

DAG_ID = "listener_bench"
MODES = {"on": "true", "off": "false"}


def workflow_yaml(chains: int, length: int, concurrency: int) -> str:
    lines = [
        f"orchestration: {{max_concurrent_tasks: {concurrency}, retry_attempts: 0, task_timeout: 120}}",
        "workflow:",
        f"  name: {DAG_ID}",
        "  tasks:",
    ]
    for c in range(chains):
        for i in range(length):
            lines.append(f"    - id: c{c:02d}_t{i:02d}")
            lines.append('      command: "true"')
            if i:
                lines.append(f"      dependencies: [c{c:02d}_t{i - 1:02d}]")
    return "\n".join(lines) + "\n"


def _ts(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None


def run_mode(mode: str, rnd: int, work: Path, dags: Path, runs: int, timeout: float, warmup: int) -> list[dict]:
    home = work / f"home_{mode}_{rnd}"
    out = []
    env = {"AIRFLOW__IFLOW__MONITORING": MODES[mode]}
    with AirflowDeployment(home, dags, components=("dag-processor", "scheduler", "api-server"),
                           extra_env=env) as af:
        c = af.client
        c.wait_for_dag(DAG_ID, timeout=180)
        for i in range(-warmup, runs):  # negative: warm-up runs, not counted
            la = load_avg()
            t0 = time.monotonic()
            run_id = c.trigger(DAG_ID)
            state = c.wait_for_run(DAG_ID, run_id, timeout=timeout)
            wall = time.monotonic() - t0
            run = c.dag_run(DAG_ID, run_id)
            tis = c.task_instances(DAG_ID, run_id)
            dur = (_ts(run["end_date"]) - _ts(run["start_date"])).total_seconds()
            task_sum = sum(t.get("duration") or 0.0 for t in tis)
            ok = sum(1 for t in tis if t["state"] == "success")
            rec = {"mode": mode, "round": rnd, "run": i, "state": state, "run_s": dur, "wall_s": wall,
                   "task_sum_s": task_sum, "tasks_ok": ok, "tasks": len(tis), "load": la}
            if i >= 0:
                out.append(rec)
            print(f"  [{mode} r{rnd} {'warm-up' if i < 0 else f'#{i}'}] {state} run={dur:.1f}s wall={wall:.1f}s "
                  f"task_sum={task_sum:.1f}s ok={ok}/{len(tis)} load={la}", flush=True)
        if mode == "on":
            child = subprocess.run([sys.executable, str(HERE / "_hook_cost_child.py"), DAG_ID],
                                   env=af.env, capture_output=True, text=True, timeout=300)
            if child.returncode != 0:
                raise SystemExit(f"hook cost child failed:\n{child.stderr[-3000:]}")
            cost = json.loads(child.stdout.strip().splitlines()[-1])
            hook_costs.append(cost)
            print(f"  [on r{rnd}] hook cost: {cost}", flush=True)
        log = (home / "logs" / "scheduler.log").read_text(errors="replace")
    events = log.count("iflow event=run_success")
    expect_events = mode == "on"
    if (events > 0) != expect_events:
        raise SystemExit(f"mode {mode}: {events} 'iflow event=run_success' lines in the scheduler log "
                         f"(expected {'some' if expect_events else 'none'}): the switch did not work")
    print(f"  [{mode} r{rnd}] scheduler log: {events} run_success event line(s) (as expected)", flush=True)
    if not keep_homes:
        shutil.rmtree(home, ignore_errors=True)
    return out


keep_homes = False
hook_costs: list[dict] = []


def main(argv: list[str] | None = None) -> int:
    global keep_homes
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chains", type=int, default=10)
    p.add_argument("--length", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=16, help="max_concurrent_tasks")
    p.add_argument("--runs", type=int, default=3, help="runs per deployment")
    p.add_argument("--rounds", type=int, default=2, help="deployments per mode (alternating on/off)")
    p.add_argument("--warmup", type=int, default=1, help="uncounted runs at the start of each deployment")
    p.add_argument("--timeout", type=float, default=900, help="seconds per run")
    p.add_argument("--quick", action="store_true", help="4 chains x 5 tasks, 2 runs, 1 round")
    p.add_argument("--keep", action="store_true", help="keep the AIRFLOW_HOMEs (logs)")
    a = p.parse_args(argv)
    if a.quick:
        a.chains, a.length, a.runs, a.rounds = 4, 5, 2, 1
    keep_homes = a.keep
    cmd = "python " + " ".join(shlex.quote(x) for x in [os.path.relpath(__file__, REPO), *sys.argv[1:]])

    work = Path(tempfile.mkdtemp(prefix="iflow_listener_bench_"))
    dags = work / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "iflow_dags.py", dags / "iflow_dags.py")
    (dags / f"{DAG_ID}.yaml").write_text(workflow_yaml(a.chains, a.length, a.concurrency))
    facts = machine_facts()
    load_start = load_avg()
    print(f"workdir {work}; {a.chains}x{a.length} tasks; load average at start: {load_start}", flush=True)

    results: list[dict] = []
    try:
        for rnd in range(a.rounds):
            for mode in (("on", "off") if rnd % 2 == 0 else ("off", "on")):  # ABBA
                results += run_mode(mode, rnd, work, dags, a.runs, a.timeout, a.warmup)
    finally:
        if not keep_homes:
            shutil.rmtree(work, ignore_errors=True)
    load_end = load_avg()

    bad = [r for r in results if r["state"] != "success" or r["tasks_ok"] != a.chains * a.length]
    if bad:
        print(f"WARNING: runs not fully successful: {bad}", file=sys.stderr)

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results if r["mode"] == mode)

    n_tasks = a.chains * a.length
    print_machine_table(facts, "start / end", f"{load_start} / {load_end}", cmd)
    print()
    print(f"Workflow: {a.chains} chains x {a.length} tasks = {n_tasks} `command: \"true\"` tasks, "
          f"max_concurrent_tasks {a.concurrency}; LocalExecutor, SQLite; {a.runs} runs per deployment, "
          f"{a.rounds} deployment(s) per mode in ABBA order; {a.warmup} uncounted warm-up run(s) per deployment.")
    print()
    print("| median over runs | monitoring on | monitoring off | on / off |")
    print("|---|---|---|---|")
    for key, label in (("run_s", "run time (DagRun end - start), s"),
                       ("task_sum_s", "sum of task durations, s"),
                       ("wall_s", "trigger -> seen finished (client), s")):
        on, off = med("on", key), med("off", key)
        print(f"| {label} | {on:.1f} | {off:.1f} | {on / off:.3f} |")
    n_on = sum(1 for r in results if r["mode"] == "on")
    n_off = len(results) - n_on
    print(f"| runs measured | {n_on} | {n_off} | |")
    print()
    ratio = med("on", "run_s") / med("off", "run_s")
    mean_ratio = (statistics.mean(r["run_s"] for r in results if r["mode"] == "on")
                  / statistics.mean(r["run_s"] for r in results if r["mode"] == "off"))
    spread = statistics.stdev(r["run_s"] for r in results if r["mode"] == "off") if n_off > 1 else 0.0
    print(f"run-time ratio on/off = {ratio:.3f} (median), {mean_ratio:.3f} (mean); run-to-run standard "
          f"deviation with monitoring off: {spread:.1f} s (goal <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'})")
    if hook_costs:
        task_ms = statistics.median(c["task_first_ms"] for c in hook_costs)
        task_us = statistics.median(c["task_steady_us"] for c in hook_costs)
        run_ms = statistics.median(c["run_first_ms"] for c in hook_costs)
        run_steady = statistics.median(c["run_steady_ms"] for c in hook_costs)
        per_run_s = (n_tasks * task_ms + run_ms) / 1000
        print()
        print("| the hooks themselves, on the deployment's own rows (median of the `on` deployments) | |")
        print("|---|---|")
        print(f"| task hooks (running + success), first call in a fresh process = per task | {task_ms:.2f} ms |")
        print(f"| task hooks, steady state | {task_us:.0f} us |")
        print(f"| run hooks (running + success, reads {hook_costs[0]['tasks_in_run']} task instances), "
              f"first / steady | {run_ms:.1f} / {run_steady:.1f} ms |")
        print(f"| per run: {n_tasks} x task hooks + run hooks | {per_run_s * 1000:.0f} ms |")
        print(f"| share of the median run time with monitoring off | {per_run_s / med('off', 'run_s'):.2%} |")
        print()
        print(f"hook share = {1 + per_run_s / med('off', 'run_s'):.4f} of a run "
              f"(task hooks run in parallel task processes; summed here as if they ran one after another)")
    print("per-run run times, s: " + "; ".join(
        f"{m}: " + ", ".join(f"{r['run_s']:.1f}" for r in results if r["mode"] == m) for m in ("on", "off")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
