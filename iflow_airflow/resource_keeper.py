"""The scheduler-side keeper of iflow resources: pools follow the files, live.

It runs as a daemon thread inside ``airflow scheduler`` (started by the
plugin's ``on_starting`` listener), because the scheduler is the component that
both reaches the database and needs the pools: parsing code cannot write to the
database in Airflow 3. Every ``[iflow] keeper_interval`` seconds it re-reads
the dags folder (only when a YAML file changed) and creates or resizes pools.
Its errors are logged and never stop the scheduler.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from iflow_airflow import settings as iflow_settings
from iflow_airflow.pools import FolderScanner, desired_pools, sync_pools

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0


class ResourceKeeper:
    def __init__(self, dags_folder: Path, interval: float = DEFAULT_INTERVAL):
        self.scanner = FolderScanner(dags_folder)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.floor: dict[str, int] = {}  # pools grown by auto-scaling stay at least this big

    def tick(self) -> list[str]:
        results, changed = self.scanner.scan()
        desired = desired_pools(results)
        if not changed and not self.floor:
            return []
        return sync_pools(desired, floor=self.floor)

    def _run(self) -> None:
        log.info("iflow resource keeper watching %s every %.1fs", self.scanner.root, self.interval)
        while not self._stop.is_set():
            try:
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

        interval = float(iflow_settings.get("keeper_interval"))
        _keeper = ResourceKeeper(Path(conf.get("core", "dags_folder")), interval)
        _keeper.start()

    if type(component).__name__ != "Job":
        return
    threading.Thread(target=_wait_and_start, name="iflow-keeper-starter", daemon=True).start()


def stop() -> None:
    if _keeper is not None:
        _keeper.stop()
