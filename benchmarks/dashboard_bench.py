#!/usr/bin/env python
"""Dashboard speed: ``GET /iflow/api/workflows`` with 10,000 task instances in the database.

Set-up (fresh AIRFLOW_HOME in a temp folder, SQLite, the settings of ``make run``
via ``standalone_env`` of ``scripts/compose_settings.py``):

1. a dags folder with the loader (``dags/iflow_dags.py``) and ``--workflows`` iflow
   files of ``--tasks`` tasks each (5 parallel chains; every 5th task on a resource);
2. ``airflow db migrate`` and ``airflow dags reserialize``: real DagModel rows (tag
   ``iflow``), serialized DAGs and DAG versions;
3. a child process (environment set before Airflow is imported) inserts ``--runs``
   DagRuns per workflow and one task instance per task and run through the ORM
   (default 10 x 20 x 50 = 10,000 task instances; runs mostly successful, some
   failed tasks and retries, the newest run of every third workflow still running),
   plus the iflow pools.

Measured (``--repeat`` times each, after one uncounted call):

a. ``iflow_airflow.runtime.summary.workflows_summary(session, plans=...)`` called directly in
   a child process (collector paused, as in the endpoint), with the plans of the dags folder compiled once beforehand
   (what the api-server holds after its first request);
b. the real endpoint on a real ``airflow api-server`` (tests/e2e/harness.py, only the
   api-server component) with a Bearer token of the admin user.

Goal: median response time under 300 ms.

``--db postgresql`` runs the same on a fresh database of the local PostgreSQL
(``CREATE DATABASE iflow_dash_<random>`` on ``--pg-host``/``--pg-port`` as ``--pg-user``,
trust auth, dropped at the end; needs the ``distributed`` extra for psycopg2), the
metadata database of a production deployment.

Examples::

    python benchmarks/dashboard_bench.py                 # 10 x 20 x 50, 20 requests
    python benchmarks/dashboard_bench.py --quick         # 10 x 20 x 50, 5 requests
    python benchmarks/dashboard_bench.py --workflows 20 --runs 20 --tasks 50 --repeat 50
    python benchmarks/dashboard_bench.py --db postgresql  # the local PostgreSQL, fresh database
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from machine import load_avg, machine_facts, print_machine_table  # noqa: E402  (benchmarks/ is on sys.path)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

RESOURCE = "bench_db"
CHAINS = 5


def wf_name(w: int) -> str:
    return f"dash_wf_{w:02d}"


def task_ids(tasks: int) -> list[tuple[str, str | None, bool]]:
    """(task_id, upstream or None, uses the resource) for 5 parallel chains."""
    out = []
    for i in range(tasks):
        c, k = i % CHAINS, i // CHAINS
        up = f"c{c}_t{k - 1:03d}" if k else None
        out.append((f"c{c}_t{k:03d}", up, i % 5 == 4))
    return out


def workflow_yaml(w: int, tasks: int) -> str:
    lines = ["orchestration: {max_concurrent_tasks: 8, retry_attempts: 1}",
             f"resources: {{{RESOURCE}: {{slots: 2, max_slots: 4}}}}",
             "workflow:", f"  name: {wf_name(w)}", "  tasks:"]
    for tid, up, res in task_ids(tasks):
        lines.append(f"    - id: {tid}")
        lines.append('      command: "true"')
        if up:
            lines.append(f"      dependencies: [{up}]")
        if res:
            lines.append(f"      resource: {RESOURCE}")
    return "\n".join(lines) + "\n"


def percentile(xs: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


# --- child: fill the database ---------------------------------------------------------


def child_fill(workflows: int, runs: int, tasks: int) -> None:
    import random
    from datetime import datetime, timedelta, timezone

    from airflow.models.dag_version import DagVersion
    from airflow.models.dagrun import DagRun
    from airflow.models.pool import Pool
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import insert, select

    rnd = random.Random(42)
    ids = task_ids(tasks)
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    n_ti = 0
    with create_session() as session:
        for w in range(workflows):
            dag_id = wf_name(w)
            ver = session.scalar(select(DagVersion.id).where(DagVersion.dag_id == dag_id)
                                 .order_by(DagVersion.version_number.desc()).limit(1))
            if ver is None:
                raise SystemExit(f"no DagVersion for {dag_id}: was the DAG serialized?")
            for r in range(runs):
                start = base + timedelta(hours=r, minutes=w)
                running = r == runs - 1 and w % 3 == 0
                failed_run = r % 7 == 3
                run_id = f"manual__{start.isoformat()}"
                rows = []
                ends: dict[str, datetime] = {}
                fail_at = rnd.randrange(tasks) if failed_run else -1
                for i, (tid, up, res) in enumerate(ids):
                    ready = ends.get(up, start) if up else start
                    sched = ready + timedelta(milliseconds=rnd.randint(50, 400))
                    queued = sched + timedelta(milliseconds=rnd.randint(50, 3000 if res else 500))
                    st = queued + timedelta(milliseconds=rnd.randint(200, 2000))
                    en = st + timedelta(milliseconds=rnd.randint(300, 5000))
                    state, tries = "success", 1
                    if rnd.random() < 0.03:
                        tries = 2
                    if i == fail_at:
                        state, tries = "failed", 2
                    if running and i >= tasks // 2:
                        state = "running" if i < tasks // 2 + CHAINS else "scheduled"
                        if state == "scheduled":
                            queued = st = en = None
                        else:
                            en = None
                    ends[tid] = en or st or sched
                    rows.append({"dag_id": dag_id, "run_id": run_id, "task_id": tid, "map_index": -1,
                                 "state": state, "try_number": tries, "max_tries": 1,
                                 "pool": f"iflow_{RESOURCE}" if res else "default_pool", "pool_slots": 1,
                                 "priority_weight": 3_000_000 + tasks - i, "queue": "default",
                                 "operator": "IflowCommandOperator", "dag_version_id": ver,
                                 "scheduled_dttm": sched, "queued_dttm": queued, "start_date": st,
                                 "end_date": en,
                                 "duration": (en - st).total_seconds() if en and st else None})
                run_end = max(e for e in ends.values())
                dr = DagRun(dag_id=dag_id, run_id=run_id, run_type="manual", run_after=start,
                            queued_at=start - timedelta(seconds=1), start_date=start,
                            state="running" if running else ("failed" if failed_run else "success"),
                            triggered_by="rest_api")
                dr.created_dag_version_id = ver
                if not running:
                    dr.end_date = run_end
                session.add(dr)
                session.flush()
                session.execute(insert(TI), rows)
                n_ti += len(rows)
        if not session.scalar(select(Pool).where(Pool.pool == f"iflow_{RESOURCE}")):
            session.add(Pool(pool=f"iflow_{RESOURCE}", slots=2, include_deferred=False,
                             description="[iflow-airflow] bench"))
    print(json.dumps({"task_instances": n_ti}))


def _profile_one(fn) -> str:
    """cProfile of one call of ``fn``: the 25 functions with the most cumulative time."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.runcall(fn)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
    return out.getvalue()


def child_direct(repeat: int, profile: bool = False) -> None:
    from airflow.utils.session import create_session

    from iflow_airflow.gc_pause import collector_paused
    from iflow_airflow.runtime import summary

    t0 = time.perf_counter()
    plans = summary.current_plans()
    plan_s = time.perf_counter() - t0
    times, cpu = [], []
    for i in range(repeat + 1):
        with create_session() as session:
            t, c = time.perf_counter(), time.process_time()
            with collector_paused():  # as the endpoint does
                out = summary.workflows_summary(session, plans=plans)
            dt, dc = time.perf_counter() - t, time.process_time() - c
        if i:  # the first call is a warm-up
            times.append(dt)
            cpu.append(dc)
    text = None
    if profile:
        with create_session() as session, collector_paused():
            text = _profile_one(lambda: summary.workflows_summary(session, plans=plans))
    print(json.dumps({"times": times, "cpu": cpu, "plans": len(plans), "plans_s": plan_s, "profile": text,
                      "workflows": len(out["workflows"]), "bytes": len(json.dumps(out, default=str))}))


# --- parent -----------------------------------------------------------------------------


class FreshPostgresDatabase:
    """``CREATE DATABASE`` on enter, ``DROP DATABASE ... WITH (FORCE)`` on exit."""

    def __init__(self, host: str, port: int, user: str):
        self.params = {"host": host, "port": port, "user": user}
        self.name = f"iflow_dash_{uuid.uuid4().hex[:10]}"

    def _admin(self, sql: str) -> None:
        import psycopg2

        with contextlib.closing(psycopg2.connect(dbname="postgres", connect_timeout=10, **self.params)) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)

    @property
    def url(self) -> str:
        p = self.params
        return f"postgresql+psycopg2://{p['user']}@{p['host']}:{p['port']}/{self.name}"

    def __enter__(self) -> FreshPostgresDatabase:
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workflows", type=int, default=10)
    p.add_argument("--runs", type=int, default=20, help="runs per workflow")
    p.add_argument("--tasks", type=int, default=50, help="tasks per workflow")
    p.add_argument("--repeat", type=int, default=20, help="measured calls / requests")
    p.add_argument("--quick", action="store_true", help="5 calls and 5 requests")
    p.add_argument("--keep", action="store_true", help="keep the AIRFLOW_HOME")
    p.add_argument("--profile", action="store_true", help="print a cProfile of one in-process call")
    p.add_argument("--direct-only", action="store_true",
                   help="only the in-process calls (wall and CPU time: CPU time holds up on a busy machine)")
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite",
                   help="metadata database (default: SQLite, as `make run`)")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--_child", choices=("fill", "direct"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick:
        a.repeat = 5
    if a._child == "fill":
        child_fill(a.workflows, a.runs, a.tasks)
        return 0
    if a._child == "direct":
        child_direct(a.repeat, a.profile)
        return 0

    sys.path.insert(0, str(REPO / "tests" / "e2e"))
    from harness import AirflowDeployment, free_port, standalone_env  # the settings of scripts/compose_settings.py

    cmd = "python " + " ".join(shlex.quote(x) for x in [os.path.relpath(__file__, REPO), *sys.argv[1:]])
    facts = machine_facts()
    load_start = load_avg()
    work = Path(tempfile.mkdtemp(prefix="iflow_dashboard_bench_"))
    home, dags = work / "home", work / "dags"
    home.mkdir()
    dags.mkdir()
    shutil.copy(REPO / "dags" / "iflow_dags.py", dags / "iflow_dags.py")
    for w in range(a.workflows):
        (dags / f"{wf_name(w)}.yaml").write_text(workflow_yaml(w, a.tasks))
    port = free_port()
    database = FreshPostgresDatabase(a.pg_host, a.pg_port, a.pg_user) if a.db == "postgresql" else None
    db_env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database.url} if database else {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_", "_AIRFLOW"))}
    env.update(standalone_env(home, dags, port=port))
    env.update(db_env)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    print(f"workdir {work}; load average at start: {load_start}", flush=True)

    def run(argv: list[str]) -> str:
        r = subprocess.run(argv, env=env, cwd=home, capture_output=True, text=True, timeout=900)
        if r.returncode:
            raise SystemExit(f"`{' '.join(argv)}` failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r.stdout

    child = [sys.executable, __file__, "--workflows", str(a.workflows), "--runs", str(a.runs),
             "--tasks", str(a.tasks), "--repeat", str(a.repeat), *(["--profile"] if a.profile else [])]
    cleanup = contextlib.ExitStack()
    if database is not None:
        cleanup.enter_context(database)  # dropped in the finally below
    try:
        t0 = time.monotonic()
        run(["airflow", "db", "migrate"])
        run(["airflow", "dags", "reserialize"])
        filled = json.loads(run([*child, "--_child", "fill"]).strip().splitlines()[-1])
        print(f"database ready in {time.monotonic() - t0:.0f}s: {filled['task_instances']} task instances",
              flush=True)

        direct = json.loads(run([*child, "--_child", "direct"]).strip().splitlines()[-1])
        if direct["workflows"] != a.workflows:
            raise SystemExit(f"workflows_summary returned {direct['workflows']} workflows, expected {a.workflows}")
        d_ms = [t * 1000 for t in direct["times"]]
        c_ms = [t * 1000 for t in direct["cpu"]]
        print(f"direct: median {statistics.median(d_ms):.0f} ms, CPU {statistics.median(c_ms):.0f} ms "
              f"(load {load_avg()})", flush=True)
        if a.direct_only:
            print(f"| in-process, {a.repeat} calls | wall median {statistics.median(d_ms):.0f} ms | "
                  f"CPU median {statistics.median(c_ms):.0f} ms | CPU min {min(c_ms):.0f} ms |")
            return 0
        if direct.get("profile"):
            print(direct["profile"], flush=True)

        with AirflowDeployment(home, dags, components=("api-server",), port=port, extra_env=db_env) as af:
            c = af.client
            r = c.request("GET", "/iflow/api/workflows")  # warm-up: builds the app, compiles the plans
            body = r.json()
            if len(body["workflows"]) != a.workflows:
                raise SystemExit(f"endpoint returned {len(body['workflows'])} workflows, expected {a.workflows}")
            planned = {w.get("planned_tasks") for w in body["workflows"]}
            if planned != {a.tasks}:
                raise SystemExit(f"the api-server did not find the plans: planned_tasks {planned}")
            load_http = load_avg()
            h_ms = []
            for _ in range(a.repeat):
                t = time.perf_counter()
                r = c.request("GET", "/iflow/api/workflows")
                h_ms.append((time.perf_counter() - t) * 1000)
            size = len(r.content)
    finally:
        cleanup.close()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    load_end = load_avg()

    print_machine_table(facts, "start / during HTTP / end", f"{load_start} / {load_http} / {load_end}", cmd)
    print()
    print(f"Database: {'PostgreSQL (fresh database)' if database else 'SQLite'}, {a.workflows} iflow workflows x {a.runs} runs x {a.tasks} tasks = "
          f"{filled['task_instances']:,} task instances; response {size:,} bytes of JSON.")
    print()
    print(f"| `GET /iflow/api/workflows` ({a.repeat} calls, after 1 warm-up) | median | p95 | min | max |")
    print("|---|---|---|---|---|")
    for label, xs in (("`workflows_summary(session, plans=...)` in-process", d_ms),
                      ("HTTP, real api-server, Bearer token", h_ms)):
        print(f"| {label} | {statistics.median(xs):.0f} ms | {percentile(xs, 95):.0f} ms | "
              f"{min(xs):.0f} ms | {max(xs):.0f} ms |")
    print()
    print("HTTP calls in order, ms: " + ", ".join(f"{x:.0f}" for x in h_ms))
    med = statistics.median(h_ms)
    print(f"HTTP median {med:.0f} ms (goal < 300 ms: {'met' if med < 300 else 'NOT met'}); "
          f"compiling the {direct['plans']} plans once took {direct['plans_s'] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
