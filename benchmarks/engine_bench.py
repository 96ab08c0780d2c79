"""The engine API's figures: the embedded Airflow (default) beside dag.test() (``mode="test"``).

    .venv/bin/python benchmarks/engine_bench.py [--warm 5] [--cold 3] [--first-only]

For each mode, one engine runs, in order:

* ``first call``: a one-task ``echo`` workflow on a new engine (embedded: starts the
  private Airflow). Embedded: ``cold`` (``--cold`` times, median and min-max) with an
  empty template cache each (the very first engine of this Airflow version on a
  machine migrates SQLite), then with the migrated template a cold start left;
  each cold call's timeline is printed too (seconds after the call began: api-server
  answers, that definition parsed, run finished, and the load average before it);
  ``--first-only`` stops after these;
* ``warm call``: the same workflow again (``--warm`` times; median, min-max);
* ``warm, changed definition``: a new one-task workflow each time (the write ->
  parse wait is in it);
* ``seed example``: dags/full_stack_development.yaml (six checkpoints in four levels);
* ``3 x sleep 3``: three independent tasks (wall time; parallel when embedded);
* ``priority order``: four tasks under ``max_concurrent_tasks: 1`` (start order).

Figures are seconds of wall time around ``run_workflow``, on this machine as it is
(load average printed). Nothing is asserted: the tests check behaviour, this prints.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import load_avg, machine_facts, print_machine_table  # noqa: E402

from iflow_airflow import WorkflowEngine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ECHO = {"orchestration": {"retry_attempts": 0}, "tasks": [{"id": "a", "command": "echo hi"}]}
SLEEPS = {"orchestration": {"retry_attempts": 0}, "tasks": [{"id": f"s{i}", "command": "sleep 3"} for i in range(3)]}
PRIORITIES = {"orchestration": {"retry_attempts": 0, "max_concurrent_tasks": 1},
              "tasks": [{"id": p, "priority": p, "command": "sleep 1"} for p in ("critical", "low", "high", "medium")]}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.monotonic()
    out = fn()
    return time.monotonic() - t0, out


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def measure(engine: WorkflowEngine, warm: int) -> dict[str, str]:
    """Every figure of one mode, with this engine (its first call is the first figure)."""
    out: dict[str, str] = {}
    first, result = timed(lambda: engine.run_workflow("bench_echo", ECHO))
    assert result.ok, result.log
    out["first call"] = f"{first:.1f}"
    out["warm call"] = spread([timed(lambda: engine.run_workflow("bench_echo", ECHO))[0] for _ in range(warm)])
    out["warm, changed definition"] = spread(
        [timed(lambda i=i: engine.run_workflow(f"bench_new_{i}", ECHO))[0] for i in range(warm)])
    seed = yaml.safe_load((REPO / "dags" / "full_stack_development.yaml").read_text(encoding="utf-8"))
    seconds, result = timed(lambda: engine.run_workflow("full_stack_development", seed))
    out["seed example (6 checkpoints, 4 levels)"] = f"{seconds:.2f} ({result.state})"
    seconds, result = timed(lambda: engine.run_workflow("bench_sleeps", SLEEPS))
    out["3 x `sleep 3`, independent"] = f"{seconds:.2f} (concurrency {result.figures.get('concurrency')})"
    _, result = timed(lambda: engine.run_workflow("bench_priorities", PRIORITIES))
    order = [t for t, r in sorted(result.tasks.items(), key=lambda kv: kv[1].start_date)]
    out["start order, priorities under max_concurrent_tasks 1"] = ", ".join(order)
    return out


def embedded_first(cache: Path) -> tuple[float, str]:
    """(seconds, timeline) of the first call of a new embedded engine with ``cache`` as template cache."""
    os.environ["IFLOW_ENGINE_CACHE"] = str(cache)
    load = load_avg().split()[0]
    with WorkflowEngine(timeout=600, startup_timeout=600) as engine:
        began = time.monotonic()
        seconds, result = timed(lambda: engine.run_workflow("bench_echo", ECHO))
        timings = engine.embedded().timings
        offset = timings["start"] - began  # the timings count from the supervisor's start
        steps = ", ".join(f"{key} {value + offset:.1f}" for key, value in timings.items() if key != "start")
    assert result.ok, result.log
    return seconds, f"{seconds:.1f} s (load {load}): {steps}"


def cold_firsts(times: int) -> tuple[list[float], list[str], Path]:
    """``times`` cold first calls (a new empty template cache each); the last cache is kept."""
    seconds, lines, caches = [], [], []
    for _ in range(times):
        caches.append(Path(tempfile.mkdtemp(prefix="iflow-bench-cache-")))
        value, line = embedded_first(caches[-1])
        seconds.append(value)
        lines.append(line)
    for old in caches[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    return seconds, lines, caches[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm", type=int, default=5, help="warm calls per figure")
    parser.add_argument("--cold", type=int, default=1, help="cold first calls (each with an empty cache)")
    parser.add_argument("--first-only", action="store_true", help="only the cold first calls")
    args = parser.parse_args()
    facts, load_start = machine_facts(), load_avg()
    cold, timelines, cache = cold_firsts(max(1, args.cold))
    try:
        embedded, test, load_mid = {}, {}, load_avg()
        if not args.first_only:
            with WorkflowEngine(timeout=600, startup_timeout=600) as engine:
                embedded = measure(engine, args.warm)
            load_mid = load_avg()
            os.environ.pop("IFLOW_ENGINE_CACHE")
            with WorkflowEngine(mode="test", timeout=600) as engine:
                test = measure(engine, args.warm)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    command = f"python benchmarks/engine_bench.py --warm {args.warm} --cold {args.cold}"
    print_machine_table(facts, "start / between modes / end", f"{load_start} / {load_mid} / {load_avg()}",
                        command + (" --first-only" if args.first_only else ""))
    print()
    print("cold first calls, timeline in seconds after the call began:")
    print("\n".join(f"* {line}" for line in timelines))
    print()
    print('| seconds (median, min-max) | embedded (default) | dag.test() (`mode="test"`) |')
    print("|---|---|---|")
    print(f"| first call, cold (migrates SQLite) | {spread(cold)} | - |")
    for key in embedded:
        print(f"| {key} | {embedded[key]} | {test[key]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
