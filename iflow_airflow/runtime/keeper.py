"""The scheduler-side keeper of iflow resources: pools follow the files, live.

It runs as a daemon thread inside ``airflow scheduler`` (started by the
plugin's ``on_starting`` listener), because the scheduler is the component that
both reaches the database and needs the pools: parsing code cannot write to the
database in Airflow 3. Every ``[iflow] keeper_interval`` seconds it re-reads
the dags folder (only when a YAML file changed) and creates or resizes pools.
Its errors are logged and never stop the scheduler.

Each tick it also watches every iflow pool (``watch``): busy share, waiting
tasks, saturation (``resource_saturated`` alert, once per episode, to the
workflows whose tasks use the resource) and, with ``auto_scaling`` and a
``max_slots``, grows or shrinks the pool one slot per tick (``scaling.decide``
has every rule). Which settings apply to a pool shared by several workflows:
the lowest ``load_threshold`` of the workflows using it, and auto-scaling when
any of them has ``auto_scaling: true``. Each tick also checks run deadlines
(``deadlines.py``: ``run_late`` once per run). The scan's plans also serve
``plan_for`` (the scheduler-side listeners read alert settings from them).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from iflow_airflow import settings as iflow_settings
from iflow_airflow.constants import DEFAULT_LOAD_THRESHOLD
from iflow_airflow.plan import cache as plan_cache
from iflow_airflow.plan.ir import WorkflowPlan
from iflow_airflow.runtime.deadlines import DeadlineWatch
from iflow_airflow.runtime.pools import (
    MANAGED_MARK,
    POOL_STATES,
    DesiredPool,
    FolderScanner,
    desired_pools,
    pool_usage,
    sync_pools,
)
from iflow_airflow.runtime.scaling import PoolState, decide

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0
DEFAULT_THRESHOLD = DEFAULT_LOAD_THRESHOLD


class ResourceKeeper:
    def __init__(self, dags_folder: Path, interval: float = DEFAULT_INTERVAL):
        self.scanner = FolderScanner(dags_folder, cache=plan_cache.from_config())
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.floor: dict[str, int] = {}  # pools grown by auto-scaling stay at least this big
        self.plans: dict[str, WorkflowPlan] = {}  # dag_id -> plan, from the last scan
        self.pool_states: dict[str, PoolState] = {}
        self.observed: dict[str, dict[str, Any]] = {}  # pool -> what the last watch saw and decided
        self.deadlines = DeadlineWatch()  # workflow.deadline -> run_late, once per run

    def tick(self) -> list[str]:
        results, changed = self.scanner.scan()
        if changed or not self.plans:
            self.plans = {c.plan.dag_id: c.plan for c in results if c.plan is not None}
        desired = desired_pools(results)
        scaled = False
        try:
            scaled = self.watch(desired)
        except Exception:
            log.exception("iflow resource keeper: watching the pools failed (will retry)")
        try:
            self.deadlines.check(self.plans)
        except Exception:
            log.exception("iflow resource keeper: checking run deadlines failed (will retry)")
        if not changed and not self.floor and not scaled:
            return []
        return sync_pools(desired, floor=self.floor)

    # --- saturation and auto-scaling ---------------------------------------------

    def _users(self, pool: str) -> list[WorkflowPlan]:
        return [p for _, p in sorted(self.plans.items()) if any(t.pool == pool for t in p.tasks)]

    def read_pools(self, names: list[str]) -> tuple[dict[str, tuple[int, bool, str]], dict[str, dict[str, int]]]:
        """(pool -> (slots, include_deferred, description), pool -> {busy, waiting, running, queued})."""
        from airflow.models.pool import Pool
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.utils.session import create_session
        from sqlalchemy import func, select

        with create_session() as s:
            pools = {name: (int(slots), bool(deferred), desc or "") for name, slots, deferred, desc in s.execute(
                select(Pool.pool, Pool.slots, Pool.include_deferred, Pool.description).where(Pool.pool.in_(names)))}
            rows = s.execute(
                select(TI.pool, TI.state, func.count(), func.sum(TI.pool_slots))
                .where(TI.pool.in_(names), TI.state.in_(POOL_STATES))
                .group_by(TI.pool, TI.state)).all()
        usage = {n: {"busy": 0, "waiting": 0, "running": 0, "queued": 0} for n in names}
        usage.update(pool_usage(rows, {name: p[1] for name, p in pools.items()}))
        return pools, usage

    def watch(self, desired: dict[str, DesiredPool]) -> bool:
        """One look at every iflow pool; True when a pool size must change (``floor`` updated)."""
        from iflow_airflow.runtime import alerts, monitor

        if not desired:
            return False
        pools, usage = self.read_pools(sorted(desired))
        must_sync = False
        for name, want in sorted(desired.items()):
            if name not in pools:
                continue  # created by sync_pools on this tick
            current, _, description = pools[name]
            u = usage[name]
            users = self._users(name)
            threshold = min((p.settings.load_threshold for p in users), default=DEFAULT_THRESHOLD)
            auto = any(p.settings.auto_scaling for p in users)
            managed = description.startswith(MANAGED_MARK)
            d = decide(declared=want.slots, max_slots=want.max_slots, current=current, busy=u["busy"],
                       waiting=u["waiting"], threshold=threshold, auto_scaling=auto and managed,
                       state=self.pool_states.get(name, PoolState()))
            self.pool_states[name] = d.state
            tags = {"pool": name, "resource": want.resource}
            monitor.gauge("iflow.pool.slots", current, **tags)
            monitor.gauge("iflow.pool.busy", u["busy"], **tags)
            monitor.gauge("iflow.pool.busy_share", round(d.busy_share, 4), **tags)
            monitor.gauge("iflow.pool.waiting", u["waiting"], **tags)
            monitor.gauge("iflow.pool.saturated", 1 if d.saturated else 0, **tags)
            self.observed[name] = {"slots": current, **u, "busy_share": d.busy_share, "threshold": threshold,
                                   "saturated": d.saturated, "action": d.action, "size": d.size,
                                   "reason": d.reason, "at": time.time()}
            if d.alert:
                monitor.incr("iflow.pool.saturation", **tags)
                monitor.log_event("resource_saturated", level=logging.WARNING, resource=want.resource, pool=name,
                                  slots=current, busy=u["busy"], waiting=u["waiting"],
                                  busy_share=round(d.busy_share, 3), threshold=threshold,
                                  workflows=",".join(p.dag_id for p in users) or None)
                for plan in users:
                    alerts.alert_for(plan, "resource_saturated", background=True, resource=want.resource, pool=name,
                                     slots=current, busy=u["busy"], waiting=u["waiting"],
                                     busy_share=round(d.busy_share, 3), threshold=threshold)
            if managed:
                new_floor = d.size if d.size > want.slots else None
                if self.floor.get(name) != new_floor:
                    if new_floor is None:
                        self.floor.pop(name, None)
                    else:
                        self.floor[name] = new_floor
                    must_sync = True
                if d.size != current:
                    must_sync = True
                    monitor.incr("iflow.pool.grow" if d.size > current else "iflow.pool.shrink", **tags)
                    monitor.log_event("pool_scaled", resource=want.resource, pool=name, from_slots=current,
                                      to_slots=d.size, busy=u["busy"], waiting=u["waiting"],
                                      busy_share=round(d.busy_share, 3), declared=want.slots,
                                      max_slots=want.max_slots, reason=d.reason)
            elif self.floor.pop(name, None) is not None:
                must_sync = True
        return must_sync

    def _run(self) -> None:
        log.info("iflow resource keeper watching %s every %.1fs", self.scanner.root, self.interval)
        while not self._stop.is_set():
            try:
                with FORK_GUARD:
                    self.tick()
            except Exception:
                log.exception("iflow resource keeper: tick failed (will retry)")
                self.scanner._stamp = None  # re-apply on the next tick
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="iflow-resource-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


_keeper: ResourceKeeper | None = None

# The scheduler forks (LocalExecutor starts its workers with os.fork, right after it starts).
# A child forked while the keeper's thread holds a lock (a module being imported, pydantic's
# cached_property building a model, SQLAlchemy's pool) inherits it held and hangs at its
# first use: a worker that never runs a task. So a fork waits until the keeper's current
# step is done, and the keeper works only while holding FORK_GUARD. Limit: a fork waits at
# most one tick (one folder scan; a few seconds at 10,000 workflows); the notification
# lanes' threads are not covered.
FORK_GUARD = threading.RLock()
_fork_guard_installed = False


def install_fork_guard() -> bool:
    """Make every ``os.fork`` of this process wait for the keeper's current step (once; False if unsupported)."""
    global _fork_guard_installed
    if _fork_guard_installed or not hasattr(os, "register_at_fork"):
        return _fork_guard_installed
    os.register_at_fork(before=FORK_GUARD.acquire, after_in_parent=FORK_GUARD.release,
                        after_in_child=FORK_GUARD._at_fork_reinit)  # type: ignore[attr-defined]
    _fork_guard_installed = True
    return True


def start_if_scheduler(component: object) -> None:
    """Called from ``on_starting``: the job type is only set after the hook, so check in a moment."""

    def _wait_and_start() -> None:
        global _keeper
        for _ in range(100):
            job_type = getattr(component, "job_type", None)
            if job_type:
                break
            time.sleep(0.1)
        if job_type != "SchedulerJob" or _keeper is not None:
            return
        from airflow.configuration import conf

        install_fork_guard()
        with FORK_GUARD:
            interval = float(iflow_settings.get("keeper_interval"))
            _keeper = ResourceKeeper(Path(conf.get("core", "dags_folder")), interval)
        _keeper.start()

    if type(component).__name__ != "Job":
        return
    threading.Thread(target=_wait_and_start, name="iflow-keeper-starter", daemon=True).start()


def stop() -> None:
    if _keeper is not None:
        _keeper.stop()


def current() -> ResourceKeeper | None:
    """The keeper running in this process (only ever in the scheduler)."""
    return _keeper


def plan_for(dag_id: str) -> WorkflowPlan | None:
    """The plan of ``dag_id`` from the keeper's last scan (None outside the scheduler)."""
    return _keeper.plans.get(dag_id) if _keeper is not None else None
