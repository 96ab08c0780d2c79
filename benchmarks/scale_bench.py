#!/usr/bin/env python
"""Many workflows on one real dag-processor: cold start, steady CPU, memory, parse-unit time, edit -> DAG.

For each size in ``--sizes`` (default 200,1000,5000,10000) a fresh AIRFLOW_HOME and dags
folder with that many 6-task workflow files, laid out as parse units: ``--unit-size``
files per sub-folder, each sub-folder with its own loader (``iflow_dags.py``); 0 puts
every file in one folder under one loader (the layout before parse units). A real
``airflow dag-processor`` (and ``api-server``, LocalExecutor, SQLite, the settings of
``make run`` through ``tests/e2e/harness.py``) then gives, per size:

* **cold start**: seconds from starting the components (database migrated, plan cache
  empty) until every workflow is an active ``dag`` row;
* **steady CPU**: after the start has settled, the dag-processor's CPU time (manager,
  live and reaped parse processes, ``psutil``) over ``--steady`` seconds without edits,
  as CPU-seconds per minute; **RSS**: the largest resident memory of the manager plus
  its parse processes, sampled every second over that time;
* **largest parse unit**: the longest "Last Duration" of a loader file in the
  dag-processor's own statistics table (``print_stats_interval = 5``), against a third
  of ``dagbag_import_timeout``;
* **keeper scan**: the resource keeper's (and the iflow page's) folder scan in this
  process (``runtime.pools.FolderScanner``, warm plan cache): after one edit, and with
  nothing changed (the stat walk only);
* **edit -> DAG**: ``--edits`` times a random workflow file gets a new description,
  from the write to the ``dag`` row carrying it (polled every 50 ms from the SQLite
  file, read-only), edits 3-6 s apart (seeded).

Examples::

    python benchmarks/scale_bench.py                         # 200 .. 10,000, units of 100
    python benchmarks/scale_bench.py --sizes 200 --unit-size 0 --unit-size 50   # layouts side by side
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from edit_latency import descriptions, p95, processor_cpu, wait_for, workflow  # noqa: E402
from machine import load_avg, machine_facts, print_machine_table  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from harness import AirflowDeployment  # noqa: E402

ENV = {"AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "5"}
LOADER_ROW = re.compile(r"iflow_dags\.py\b(.*)$")
SECONDS = re.compile(r"\b(\d+\.\d+)s\b")


def lay_out(dags: Path, n: int, unit_size: int) -> dict[int, Path]:
    """Write ``n`` workflow files (``unit_size`` per sub-folder with its own loader; 0: one folder)."""
    loader = (REPO / "dags" / "iflow_dags.py").read_text()
    (dags / "iflow_dags.py").write_text(loader)
    paths = {}
    for i in range(n):
        folder = dags / f"unit_{i // unit_size:04d}" if unit_size else dags
        if folder != dags and not folder.exists():
            folder.mkdir()
            (folder / "iflow_dags.py").write_text(loader)
        paths[i] = folder / f"wf_{i:05d}.yaml"
        paths[i].write_text(workflow(i, "v0").replace(f"wf_{i:03d}", f"wf_{i:05d}"))
    return paths


def largest_unit_seconds(log: Path) -> float:
    """The longest duration the dag-processor's stats table shows for a loader file."""
    best = 0.0
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return best
    for line in text.splitlines():
        m = LOADER_ROW.search(line)
        if m:
            best = max([best, *(float(x) for x in SECONDS.findall(m.group(1)))])
    return best


class RssSampler(threading.Thread):
    """The largest RSS of a process and its children, sampled every second until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            try:
                proc = psutil.Process(self.pid)
                rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
                self.peak = max(self.peak, rss)
            except psutil.Error:
                continue


def edits_latency(af: AirflowDeployment, db: Path, paths: dict[int, Path], edits: int, seed: int) -> list[float]:
    rng, out = random.Random(seed), []
    for k in range(edits):
        i = rng.randrange(len(paths))
        name, text = f"wf_{i:05d}", f"edit {k}"
        start = time.monotonic()
        paths[i].write_text(workflow(i, text).replace(f"wf_{i:03d}", name))
        wait_for(af, lambda name=name, text=text: descriptions(db).get(name) == text, 300,
                 f"edit {k} of {name} (seen: {descriptions(db).get(name)!r})")
        out.append(time.monotonic() - start)
        time.sleep(rng.uniform(3, 6))
    return out


def keeper_scan(dags: Path, paths: dict[int, Path], cache_folder: Path) -> tuple[float, float]:
    """(seconds of a scan after one edit, of a scan with nothing changed), the keeper's scanner, warm cache."""
    from iflow_airflow.plan.cache import PlanCache
    from iflow_airflow.runtime.pools import FolderScanner
    from iflow_airflow.settings import IflowSettings

    cache_folder.mkdir(mode=0o700)
    scanner = FolderScanner(dags, IflowSettings(), cache=PlanCache(cache_folder))
    scanner.scan()
    paths[0].write_text(workflow(0, "scanned").replace("wf_000", "wf_00000"))
    t0 = time.perf_counter()
    scanner.scan()
    t1 = time.perf_counter()
    scanner.scan()
    t2 = time.perf_counter()
    paths[0].write_text(workflow(0, "v0").replace("wf_000", "wf_00000"))
    return t1 - t0, t2 - t1


def measure(n: int, unit_size: int, edits: int, steady: float, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="iflow-scale-bench-") as tmp:
        dags = Path(tmp) / "dags"
        dags.mkdir()
        paths = lay_out(dags, n, unit_size)
        scan_edit, scan_idle = keeper_scan(dags, paths, Path(tmp) / "scan-cache")
        af = AirflowDeployment(Path(tmp) / "home", dags, components=("dag-processor", "api-server"),
                               extra_env=ENV, startup_timeout=600)
        with af:
            t0 = time.monotonic()  # the components are up (migrated, api-server answering)
            db = af.home / "airflow.db"
            wait_for(af, lambda: len(descriptions(db)) >= n, 1800, f"{n} DAGs", poll=1)
            cold = time.monotonic() - t0 + af.timings["startup"] - af.timings["db_migrate"]
            time.sleep(15)  # the first parses settle
            sampler = RssSampler(af.components["dag-processor"].pid)
            sampler.start()
            c0, s0 = processor_cpu(af), time.monotonic()
            time.sleep(steady)
            cpu = (processor_cpu(af) - c0) / (time.monotonic() - s0) * 60
            lat = edits_latency(af, db, paths, edits, seed)
            sampler.done.set()
            unit = largest_unit_seconds(af.components["dag-processor"].log_path)
            timeout = float(af.env.get("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "30"))
    return {"cold": cold, "cpu": cpu, "rss": sampler.peak / 2**20, "unit": unit, "timeout": timeout, "lat": lat,
            "scan": (scan_edit, scan_idle)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200,1000,5000,10000")
    ap.add_argument("--unit-size", type=int, action="append", help="files per unit (0: one folder); repeatable")
    ap.add_argument("--edits", type=int, default=12)
    ap.add_argument("--steady", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args()
    facts, loads = machine_facts(), load_avg()
    rows = []
    for unit_size in args.unit_size or [100]:
        for n in (int(s) for s in args.sizes.split(",")):
            print(f"... {n} workflows, units of {unit_size or 'all'}", file=sys.stderr, flush=True)
            rows.append((n, unit_size, measure(n, unit_size, args.edits, args.steady, args.seed), load_avg()))
    print_machine_table(facts, "start", loads, " ".join(["python", *sys.argv]))
    print("\n| workflows | files per unit | cold start | steady CPU (CPU-s/min) | processor RSS | largest unit "
          "parse (limit: 1/3 of timeout) | edit -> DAG median | p95 | max | keeper scan: after an edit, idle "
          "| load average after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n, unit_size, r, la in rows:
        lat = r["lat"]
        print(f"| {n:,} | {unit_size or 'all (one loader)'} | {r['cold']:.0f} s | {r['cpu']:.1f} | "
              f"{r['rss']:.0f} MiB | {r['unit']:.1f} s ({r['timeout'] / 3:.0f} s) | {statistics.median(lat):.1f} s | "
              f"{p95(lat):.1f} s | {max(lat):.1f} s | {r['scan'][0]:.2f} s, {r['scan'][1]:.2f} s | {la} |")


if __name__ == "__main__":
    main()
