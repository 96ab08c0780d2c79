#!/usr/bin/env python
"""Edit -> new DAG latency, and the dag-processor's steady CPU, on a real dag-processor.

``--workflows`` iflow files (default 200, 6 tasks each) in a dags folder with the
loader; a real ``airflow dag-processor`` and ``api-server`` (LocalExecutor, SQLite,
the settings of ``make run`` through ``tests/e2e/harness.py``). Per configuration
(fresh AIRFLOW_HOME each):

* **steady CPU**: after the first parse has settled, the dag-processor's CPU time
  (the manager and every parse process it reaped, ``psutil``) over ``--steady``
  seconds with no edit, given as CPU-seconds per minute;
* **latency**: ``--edits`` times, one random workflow file gets a new description;
  the latency is from the write to the ``dag`` row carrying it (polled every 50 ms
  straight from the SQLite file, read-only, so the probe costs the processor nothing).
  Edits are 4-8 s apart (random, seeded).

Configurations (side by side in one table):

* ``before``: ``[iflow] watch_interval = 0`` and ``min_file_process_interval = 10``
  (the previously shipped setting): only the loader's own schedule re-parses it;
* ``watch, interval 10``: ``watch_interval = 1``, ``min_file_process_interval = 10``;
* ``shipped``: as shipped (``watch_interval = 1``, ``min_file_process_interval = 30``).

Examples::

    python benchmarks/edit_latency.py                    # 200 workflows, 20 edits, 60 s steady
    python benchmarks/edit_latency.py --quick            # 50 workflows, 8 edits, 30 s steady
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from machine import load_avg, machine_facts, print_machine_table  # noqa: E402  (benchmarks/ is on sys.path)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from harness import AirflowDeployment  # noqa: E402

CONFIGS = {
    "before: no watch, interval 10": {"AIRFLOW__IFLOW__WATCH_INTERVAL": "0",
                                      "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10"},
    "watch, interval 10": {"AIRFLOW__IFLOW__WATCH_INTERVAL": "1",
                           "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10"},
    "shipped: watch, interval 30": {},  # docker-compose.yaml and [iflow] defaults as they are
}


def workflow(i: int, description: str) -> str:
    tasks = "\n".join(f"    - {{id: t{j}, command: 'true'{f', dependencies: [t{j - 1}]' if j else ''}}}"
                      for j in range(6))
    return f"workflow:\n  name: wf_{i:03d}\n  description: {description!r}\n  tasks:\n{tasks}\n"


def descriptions(db: Path) -> dict[str, str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return dict(con.execute("select dag_id, coalesce(description, '') from dag where not is_stale"))
    except sqlite3.OperationalError:  # locked or not migrated yet
        return {}
    finally:
        con.close()


def processor_cpu(af: AirflowDeployment) -> float:
    """CPU seconds of the dag-processor so far: itself, its live children, and the children it reaped."""
    proc = psutil.Process(af.components["dag-processor"].pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + (t.children_user + t.children_system if p is proc else 0.0)
        except psutil.Error:
            continue
    return total


def wait_for(af: AirflowDeployment, predicate, timeout: float, what: str, poll: float = 0.05):
    """Poll ``predicate``; a dead component or a timeout raises with every component's log tail."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        af.check_alive()
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"{what}\n{af.diagnostics()}")


def measure(name: str, env: dict[str, str], n: int, edits: int, steady: float, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="iflow-edit-bench-") as tmp:
        dags = Path(tmp) / "dags"
        dags.mkdir()
        (dags / "iflow_dags.py").write_text((REPO / "dags" / "iflow_dags.py").read_text())
        for i in range(n):
            (dags / f"wf_{i:03d}.yaml").write_text(workflow(i, "v0"))
        with AirflowDeployment(Path(tmp) / "home", dags, components=("dag-processor", "api-server"),
                               extra_env=env) as af:
            db = af.home / "airflow.db"
            wait_for(af, lambda: len(descriptions(db)) >= n, 600, f"{n} DAGs", poll=1)
            time.sleep(15)  # the first parses (and plan cache writes) settle
            c0, t0 = processor_cpu(af), time.monotonic()
            time.sleep(steady)
            cpu_per_min = (processor_cpu(af) - c0) / (time.monotonic() - t0) * 60
            rng = random.Random(seed)
            latencies = []
            for k in range(edits):
                i = rng.randrange(n)
                text = f"edit {k} of {name}"
                start = time.monotonic()
                (dags / f"wf_{i:03d}.yaml").write_text(workflow(i, text))
                wait_for(af, lambda i=i, text=text: descriptions(db).get(f"wf_{i:03d}") == text, 120,
                         f"edit {k} of wf_{i:03d} (seen: {descriptions(db).get(f'wf_{i:03d}')!r})")
                latencies.append(time.monotonic() - start)
                time.sleep(rng.uniform(4, 8))
    return {"latencies": latencies, "cpu_per_min": cpu_per_min}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]  # nearest rank


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workflows", type=int, default=200)
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--steady", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.workflows, args.edits, args.steady = 50, 8, 30.0
    facts, loads = machine_facts(), load_avg()
    results = {}
    for name, env in CONFIGS.items():
        print(f"... {name}", file=sys.stderr, flush=True)
        results[name] = measure(name, env, args.workflows, args.edits, args.steady, args.seed)
    print_machine_table(facts, "start", loads, " ".join(["python", *sys.argv]))
    print(f"\n{args.workflows} workflows x 6 tasks, {args.edits} edits per configuration\n")
    print("| configuration | edit -> DAG median | p95 | max | dag-processor steady CPU (CPU-s/min) |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        lat = r["latencies"]
        print(f"| {name} | {statistics.median(lat):.1f} s | {p95(lat):.1f} s | {max(lat):.1f} s | "
              f"{r['cpu_per_min']:.1f} |")
    print(f"\nload average at the end: {load_avg()}")


if __name__ == "__main__":
    main()
