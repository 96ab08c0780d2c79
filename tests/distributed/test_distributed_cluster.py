"""The docker-compose deployment (CeleryExecutor, PostgreSQL, Redis, two workers) runs
iflow workflows correctly, survives a killed worker and a restarted scheduler, and
keeps a 1-slot resource exclusive and in priority order under load.

One cluster for the whole module (conftest.py); the checks run in file order.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from cluster import (
    CORE_SERVICES,
    TEST_ONLY_SETTINGS,
    WORKER_SERVICES,
    CeleryCluster,
    compose_commands,
    iso_to_epoch,
    queues_of,
)
from compose_settings import compose_settings, is_deployment_specific  # scripts/ (tests/conftest.py)
from dist_workflows import LOAD_LEVELS, LOAD_POOL, LOAD_QUEUES, SHARED_QUEUE

pytestmark = pytest.mark.distributed

#: Which worker consumes which compose queue (docker-compose.yaml: worker-a -q default,
#: worker-b -q queue_b); the TI hostname is the worker's name (worker_identity.py).
WORKER_OF_QUEUE = {"default": "worker-a", "queue_b": "worker-b"}
RUN_TIMEOUT = 420  # generous: other Airflows may share this machine's two cores


def _tis(cluster: CeleryCluster, dag_id: str, run_id: str) -> dict[str, dict]:
    return {t["task_id"]: t for t in cluster.client.task_instances(dag_id, run_id)}


def _tries(cluster: CeleryCluster, dag_id: str, run_id: str, task_id: str) -> list[dict]:
    page = cluster.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
    return sorted(page["task_instances"], key=lambda t: t["try_number"])


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_run(cluster: CeleryCluster, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
    return cluster.client.wait_for_run(dag_id, run_id, timeout=timeout)


# --- settings and topology ------------------------------------------------------------


def test_components_run_with_the_compose_settings(cluster: CeleryCluster) -> None:
    """Every component process (read from its real environment) runs with every
    non-deployment-specific setting of docker-compose.yaml, value for value, and with
    this cluster's CeleryExecutor / PostgreSQL / Redis; the test-only settings never
    shadow a compose setting."""
    compose = compose_settings()
    kept = {k: v for k, v in compose.items() if not is_deployment_specific(k)}
    iflow_relevant = {
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "30",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
    }
    assert {k: kept.get(k) for k in iflow_relevant} == iflow_relevant
    assert compose["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # Test-only settings add to the compose settings, they never replace one.
    assert not {k for k in cluster.test_only if k in compose and not is_deployment_specific(k)}
    assert set(TEST_ONLY_SETTINGS) <= set(cluster.test_only)

    components = ["scheduler", "dag-processor", "api-server", "triggerer", *WORKER_SERVICES.values()]
    db = f"postgres@127.0.0.1:5432/{cluster.dbname}"
    for name in components:
        env = cluster.component_environ(name)
        assert {k: env.get(k) for k in kept} == kept, name
        # config/iflow.cfg, the project's [iflow] settings (compose mounts it beside the dags)
        assert env["AIRFLOW__IFLOW__ALLOWED_MODULES"] == "iflow_airflow.examples", name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"postgresql+psycopg2://{db}", name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://127.0.0.1:6379/{cluster.redis_db}", name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+postgresql+psycopg2://{db}", name
        assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "2", name
        assert {k: env.get(k) for k in TEST_ONLY_SETTINGS} == TEST_ONLY_SETTINGS, name

    # The cluster really uses its fresh database: the parsed DAGs are in it.
    with contextlib.closing(
        psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=cluster.dbname)
    ) as conn, conn.cursor() as cur:
        cur.execute("SELECT dag_id FROM dag WHERE dag_id = 'full_stack_development'")
        assert cur.fetchall() == [("full_stack_development",)]


def test_workers_consume_the_compose_queues(cluster: CeleryCluster) -> None:
    """The cluster runs the compose services' commands: the core components as their
    services say, worker-a ``-q default``, worker-b ``-q queue_b`` (plus the test-only
    shared queue), under distinct names."""
    core = compose_commands(CORE_SERVICES)
    assert core == {service: [name] for service, name in CORE_SERVICES.items()}
    assert {name: cluster.deployment.components[name].argv[:2] for name in CORE_SERVICES.values()} == {
        name: ["airflow", name] for name in CORE_SERVICES.values()
    }
    commands = compose_commands(WORKER_SERVICES)
    assert {s: queues_of(argv) for s, argv in commands.items()} == {
        "airflow-worker-a": ["default"],
        "airflow-worker-b": ["queue_b"],
    }
    assert cluster.celery_inspect() == {
        "worker-a@iflow-dist": sorted(["default", SHARED_QUEUE]),
        "worker-b@iflow-dist": sorted(["queue_b", SHARED_QUEUE]),
    }
    health = cluster.client.health()
    assert {k: health[k]["status"] for k in ("metadatabase", "scheduler", "dag_processor", "triggerer")} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "dag_processor": "healthy",
        "triggerer": "healthy",
    }


# --- (a) the examples run, on the workers their queues name ----------------------------


def test_workflows_run_on_the_workers_their_queues_name(cluster: CeleryCluster, figures: dict) -> None:
    client = cluster.client
    for dag_id in ("full_stack_development", "dist_balanced"):
        client.wait_for_dag(dag_id, timeout=240)
    t0 = time.monotonic()
    runs = {dag_id: client.trigger(dag_id) for dag_id in ("full_stack_development", "dist_balanced")}
    states = {dag_id: _wait_run(cluster, dag_id, run_id) for dag_id, run_id in runs.items()}
    elapsed = time.monotonic() - t0
    assert states == {"full_stack_development": "success", "dist_balanced": "success"}

    full = _tis(cluster, "full_stack_development", runs["full_stack_development"])
    assert {t: (ti["state"], ti["queue"], ti["hostname"], ti["try_number"]) for t, ti in full.items()} == {
        task: ("success", "default", "worker-a", 1)
        for task in (
            "analyze_requirements",
            "design_architecture",
            "implement_frontend",
            "implement_backend",
            "integrate_systems",
            "test_system",
        )
    }
    balanced = _tis(cluster, "dist_balanced", runs["dist_balanced"])
    expected_queue = {"fetch_orders": "default", "fetch_users": "queue_b", "fetch_stock": "queue_b", "merge": "default"}
    assert {t: (ti["state"], ti["queue"], ti["hostname"], ti["try_number"]) for t, ti in balanced.items()} == {
        task: ("success", queue, WORKER_OF_QUEUE[queue], 1) for task, queue in expected_queue.items()
    }
    figures["examples_two_runs_seconds"] = round(elapsed, 1)


# --- (b) a worker killed in the middle of a task ---------------------------------------


def test_worker_killed_mid_task_is_retried_on_the_other_worker(
    cluster: CeleryCluster, figures: dict, tmp_path: Path
) -> None:
    """SIGKILL of the worker (whole process group and every descendant) running
    ``long_task`` while it sleeps: its task instance stops heartbeating, Airflow's
    scheduler fails it after ``task_instance_heartbeat_timeout`` (test-only 30 s) and
    retries it; the retry runs on the OTHER worker (both consume ``shared``) and the
    run succeeds. The marks file shows exactly one killed attempt and one full one."""
    client = cluster.client
    client.wait_for_dag("dist_failover", timeout=240)
    marks = tmp_path / "long_task.marks"
    run_id = client.trigger("dist_failover", conf={"mark_dir": str(tmp_path)})

    def running_on() -> str | None:
        ti = _tis(cluster, "dist_failover", run_id)["long_task"]
        if ti["state"] == "running" and ti["hostname"] in cluster.workers and "start 1" in _lines(marks):
            return ti["hostname"]
        return None

    victim = client.wait_until(running_on, RUN_TIMEOUT, "long_task running (attempt 1 started)")
    survivor = next(w for w in cluster.workers if w != victim)
    fault = cluster.kill_worker(victim)
    killed_at = fault.at
    assert fault.pids, "the worker had processes to kill"
    try:
        state = _wait_run(cluster, "dist_failover", run_id)
        done_at = time.time()
    finally:
        cluster.start_component(victim)  # back to two workers for the next checks
    assert state == "success"

    tries = _tries(cluster, "dist_failover", run_id, "long_task")
    assert [(t["try_number"], t["hostname"]) for t in tries] == [(1, victim), (2, survivor)]
    # The killed attempt is recorded as failed (heartbeat timeout), the retry succeeded.
    assert [t["state"] for t in tries] == ["failed", "success"]
    assert _lines(marks) == ["start 1", "start 2", "end 2"]
    after = _tis(cluster, "dist_failover", run_id)["after"]
    assert (after["state"], after["try_number"], after["queue"]) == ("success", 1, SHARED_QUEUE)
    assert _lines(tmp_path / "after.marks") == ["after 1"]
    assert cluster.celery_inspect()[cluster.workers[victim].node] == sorted(cluster.workers[victim].queues)

    retry_start = iso_to_epoch(tries[1]["start_date"])
    figures["worker_kill"] = {
        "killed_worker": victim,
        "retried_on": survivor,
        "first_try_state": tries[0]["state"],
        "kill_to_retry_start_seconds": round(retry_start - killed_at, 1),
        "kill_to_run_success_seconds": round(done_at - killed_at, 1),
        "task_instance_heartbeat_timeout": int(TEST_ONLY_SETTINGS["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"]),
    }


# --- (c) the scheduler stopped and started again in the middle of a run -----------------


def test_scheduler_restart_mid_run(cluster: CeleryCluster, figures: dict, tmp_path: Path) -> None:
    """SIGTERM to the scheduler while ``step_2`` runs: the task finishes on its worker
    without a scheduler (it reports to the api-server) and nothing else is scheduled;
    a new scheduler then finishes the run. Every task ran exactly once."""
    client = cluster.client
    client.wait_for_dag("dist_restart", timeout=240)
    marks = tmp_path / "restart.marks"
    run_id = client.trigger("dist_restart", conf={"mark_dir": str(tmp_path)})
    client.wait_until(
        lambda: _tis(cluster, "dist_restart", run_id)["step_2"]["state"] == "running",
        RUN_TIMEOUT,
        "step_2 running",
    )
    stop = cluster.stop_component("scheduler", sig=signal.SIGTERM, grace=90)
    stopped_at = time.time()
    assert stop["forced"] == [], "the scheduler needed SIGKILL after SIGTERM"
    try:
        # No scheduler: step_2 still completes (worker -> api-server) ...
        client.wait_until(
            lambda: _tis(cluster, "dist_restart", run_id)["step_2"]["state"] == "success",
            RUN_TIMEOUT,
            "step_2 to finish while the scheduler is down",
        )
        # ... and nothing schedules step_3.
        down = _tis(cluster, "dist_restart", run_id)
        assert (down["step_3"]["state"], down["step_4"]["state"]) == (None, None)
        assert client.dag_run("dist_restart", run_id)["state"] == "running"
    finally:
        cluster.start_component("scheduler")
    restarted_at = time.time()
    assert _wait_run(cluster, "dist_restart", run_id) == "success"
    done_at = time.time()

    tis = _tis(cluster, "dist_restart", run_id)
    queues = {"step_1": "default", "step_2": "queue_b", "step_3": "default", "step_4": "queue_b"}
    assert {t: (ti["state"], ti["try_number"], ti["queue"], ti["hostname"]) for t, ti in tis.items()} == {
        t: ("success", 1, q, WORKER_OF_QUEUE[q]) for t, q in queues.items()
    }
    assert _lines(marks) == ["step_1 1", "step_2 1", "step_3 1", "step_4 1"]
    assert stop["exit_code"] == 0
    figures["scheduler_restart"] = {
        "sigterm_to_exit_seconds": round(stop["stopped_after"], 1),
        "scheduler_down_seconds": round(restarted_at - stopped_at, 1),
        "restart_to_run_success_seconds": round(done_at - restarted_at, 1),
    }


# --- (d) load: 20 runs contend for a 1-slot resource with mixed priorities ---------------


def overlaps(intervals: Iterable[tuple[float, float, str]]) -> list[tuple[str, str]]:
    """Every pair of (start, end, name) intervals that share a moment (touching ends
    do not: one holder may start at the very instant the previous one ended)."""
    items = list(intervals)
    return [
        (n1, n2)
        for i, (s1, e1, n1) in enumerate(items)
        for s2, e2, n2 in items[i + 1 :]
        if max(s1, s2) < min(e1, e2)
    ]


def priority_inversions(holders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Priority inversions on a resource, from the task instances that held it.

    A task instance *acquires* the resource when the scheduler queues it: Airflow
    counts a pool slot as taken from ``queued`` on (``queued_when``), not from the
    moment the process starts (``start_date``), so ``queued_when`` is the moment the
    scheduler chose it. A task instance U is *waiting* for the resource at time t
    when its upstream tasks were done and it was in ``scheduled`` state before t
    (``scheduled_when < t``) and it had not acquired the resource yet
    (``queued_when > t``).

    An inversion is a holder T such that, at T's acquisition, some U of a strictly
    HIGHER level was waiting. Equal levels in any order are not inversions (ties
    are resolved by weight inside the level and then first come, first served).
    Every holder is checked, the first one too (it can only be an inversion if a
    higher level was already waiting when it was chosen).
    """
    found = []
    for t in holders:
        for u in holders:
            if u is t or u["level"] <= t["level"]:
                continue
            if u["scheduled"] < t["queued"] < u["queued"]:
                found.append({"chosen": t["name"], "chosen_level": t["level"], "waiting": u["name"],
                              "waiting_level": u["level"]})
    return found


def test_load_resource_exclusive_and_in_priority_order(cluster: CeleryCluster, figures: dict) -> None:
    """20 runs at once (4 runs of each of the 5 level workflows, the LOWEST levels
    triggered first, so plain first-come-first-served would invert priorities):
    every run succeeds with every task on its first try, the 1-slot resource
    ``dist_lock`` is never held by two task instances at once (neither the running
    intervals ``start_date..end_date`` nor the pool-holding intervals
    ``queued_when..end_date`` overlap) and there is no priority inversion (see
    :func:`priority_inversions`)."""
    client = cluster.client
    dag_ids = {level: f"dist_load_{level}" for level in LOAD_LEVELS}
    for dag_id in dag_ids.values():
        client.wait_for_dag(dag_id, timeout=240)
        client.unpause(dag_id)
    # The resource keeper (a thread of the scheduler) creates the pool from the files.
    client.wait_until(lambda: client.pools().get(LOAD_POOL) == 1, 120, f"pool {LOAD_POOL} with 1 slot")

    order = ["lowest", "low", "medium", "high", "critical"]
    runs_per_workflow = 4
    t0_wall, t0 = time.time(), time.monotonic()
    runs: list[tuple[str, str, str]] = []  # (level, dag_id, run_id)
    for _ in range(runs_per_workflow):
        for level in order:
            runs.append((level, dag_ids[level], client.trigger(dag_ids[level], unpause=False)))
    states = [_wait_run(cluster, dag_id, run_id, timeout=900) for _, dag_id, run_id in runs]
    total = time.monotonic() - t0
    assert states == ["success"] * len(runs)
    assert len(runs) == 20

    holders: list[dict[str, Any]] = []
    last_end = 0.0
    for level, dag_id, run_id in runs:
        tis = _tis(cluster, dag_id, run_id)
        assert {t: (ti["state"], ti["try_number"], ti["queue"]) for t, ti in tis.items()} == {
            "prepare": ("success", 1, LOAD_QUEUES[level]),
            "write": ("success", 1, LOAD_QUEUES[level]),
        }
        write = tis["write"]
        assert (write["pool"], write["pool_slots"]) == (LOAD_POOL, 1)
        assert write["priority_weight"] // 1_000_000 == LOAD_LEVELS[level]
        assert write["hostname"] == WORKER_OF_QUEUE[LOAD_QUEUES[level]]
        holders.append(
            {
                "name": f"{dag_id}/{run_id}",
                "level": write["priority_weight"] // 1_000_000,
                "scheduled": iso_to_epoch(write["scheduled_when"]),
                "queued": iso_to_epoch(write["queued_when"]),
                "start": iso_to_epoch(write["start_date"]),
                "end": iso_to_epoch(write["end_date"]),
            }
        )
        last_end = max(last_end, iso_to_epoch(client.dag_run(dag_id, run_id)["end_date"]))

    running = [(h["start"], h["end"], h["name"]) for h in holders]
    holding = [(h["queued"], h["end"], h["name"]) for h in holders]
    assert overlaps(running) == []
    assert overlaps(holding) == []
    inversions = priority_inversions(holders)
    assert inversions == []
    assert client.pools()[LOAD_POOL] == 1

    # How much the priority order mattered: holders that were chosen while a LOWER
    # level was waiting (i.e. overtakes); zero would mean the check proved nothing.
    overtakes = sum(
        1 for t in holders for u in holders if u["level"] < t["level"] and u["scheduled"] < t["queued"] < u["queued"]
    )
    assert overtakes > 0, "no task ever waited behind a higher level: the load did not contend"

    waits = [h["start"] - h["scheduled"] for h in holders]
    busy = sum(h["end"] - h["start"] for h in holders)
    span = max(h["end"] for h in holders) - min(h["start"] for h in holders)
    by_level = {
        name: round(max(h["start"] - h["scheduled"] for h in holders if h["level"] == lvl), 1)
        for name, lvl in LOAD_LEVELS.items()
    }
    figures["load"] = {
        "runs": len(runs),
        "workflows": len(dag_ids),
        "resource_slots": 1,
        "total_seconds": round(total, 1),
        "trigger_to_last_run_end_seconds": round(last_end - t0_wall, 1),
        "runs_per_minute": round(len(runs) / (last_end - t0_wall) * 60, 1),
        "longest_wait_for_resource_seconds": round(max(waits), 1),
        "mean_wait_for_resource_seconds": round(sum(waits) / len(waits), 1),
        "longest_wait_by_level_seconds": by_level,
        "resource_busy_share": round(busy / span, 2),
        "overlapping_intervals": 0,
        "priority_inversions": 0,
        "overtakes_of_lower_levels": overtakes,
    }
    print(f"\n[distributed] load: {figures['load']}")


# --- the load check's detectors catch what they must (no cluster needed) ----------------


def test_detectors_catch_overlaps_and_inversions() -> None:
    assert overlaps([(0, 2, "a"), (2, 3, "b"), (3, 5, "c")]) == []  # touching ends are fine
    assert overlaps([(0, 2, "a"), (1.5, 3, "b"), (4, 5, "c")]) == [("a", "b")]
    assert overlaps([(0, 10, "long"), (3, 4, "x"), (5, 6, "y")]) == [("long", "x"), ("long", "y")]

    def h(name: str, level: int, scheduled: float, queued: float) -> dict:
        return {"name": name, "level": level, "scheduled": scheduled, "queued": queued}

    in_order = [h("low", 1, 0, 1), h("high", 5, 2, 3), h("low2", 1, 0.5, 4)]
    assert priority_inversions(in_order) == []
    # "low2" was chosen at 4 while "high" had been waiting since 3.5: an inversion.
    inverted = [h("low", 1, 0, 1), h("low2", 1, 0.5, 4), h("high", 5, 3.5, 6)]
    assert priority_inversions(inverted) == [
        {"chosen": "low2", "chosen_level": 1, "waiting": "high", "waiting_level": 5}
    ]
    # A higher level that became ready only after the choice is not an inversion.
    assert priority_inversions([h("low", 1, 0, 1), h("high", 5, 1.5, 6)]) == []
