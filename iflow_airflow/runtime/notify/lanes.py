"""One lane per receiver: a slow or dead receiver only ever delays itself.

A lane is a daemon thread with a bounded queue, keyed by the receiver
(``webhook:<url>``, ``email:<connection>``, ``slack:<connection>``). Work for
one receiver is delivered in order; lanes of different receivers run side by
side, so one workflow's hanging webhook never holds up another workflow's
alert, nor the same alert's mail. Rules and limits:

* each delivery is bounded (``channels.deliver``: ``BUDGET`` seconds), so a lane
  drains at no less than one alert per ``BUDGET`` seconds;
* at most :data:`MAX_PENDING` deliveries wait per lane; beyond that an alert is
  dropped for that receiver, logged (``alert_dropped``) and counted
  (``iflow.alert.undelivered`` with ``reason=dropped``), never waited for;
* a lane idle for :data:`IDLE_EXIT` seconds ends its thread (a deployment with
  many webhooks does not keep a thread per webhook forever);
* a process that exits waits at most :data:`EXIT_FLUSH` seconds for queued work.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iflow_airflow.runtime.notify.channels import BUDGET

log = logging.getLogger("iflow.alerts")

MAX_PENDING = 100
IDLE_EXIT = 60.0
EXIT_FLUSH = BUDGET + 2.0


@dataclass
class Job:
    """One delivery handed to a lane; ``done`` is set when it finished (or was dropped)."""

    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    dropped: bool = False


class _Lane:
    def __init__(self, key: str) -> None:
        self.key = key
        self.q: queue.Queue[Job] = queue.Queue(maxsize=MAX_PENDING)
        self.busy = 0  # queued + running
        self.thread = threading.Thread(target=self._run, name=f"iflow-alerts[{key[:60]}]", daemon=True)

    def _run(self) -> None:
        while True:
            try:
                job = self.q.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with _lock:
                    if self.q.empty() and self.busy == 0:
                        _lanes.pop(self.key, None)
                        return
                continue
            try:
                job.result = job.fn()
            except Exception:
                log.exception("iflow: alert delivery on lane %s failed", self.key)
            finally:
                with _lock:
                    self.busy -= 1
                job.done.set()


_lanes: dict[str, _Lane] = {}
_lock = threading.Lock()
_exit_hook = False


def submit(key: str, fn: Callable[[], Any]) -> Job:
    """Queue ``fn`` on the lane of ``key``; the Job comes back ``dropped`` (and done) when the lane is full."""
    global _exit_hook
    job = Job(fn)
    with _lock:
        lane = _lanes.get(key)
        if lane is None:
            lane = _lanes[key] = _Lane(key)
            lane.thread.start()
        if not _exit_hook:
            atexit.register(wait_idle, EXIT_FLUSH)
            _exit_hook = True
        try:
            lane.q.put_nowait(job)
        except queue.Full:
            job.dropped = True
            job.done.set()
            return job
        lane.busy += 1
    return job


def wait(jobs: list[Job], timeout: float) -> bool:
    """Wait for ``jobs`` together, at most ``timeout`` seconds in all; True when all are done."""
    deadline = time.monotonic() + timeout
    return all(j.done.wait(max(0.0, deadline - time.monotonic())) for j in jobs)


def pending() -> int:
    with _lock:
        return sum(lane.busy for lane in _lanes.values())


def wait_idle(timeout: float = 30.0) -> bool:
    """Wait until no lane has work (tests; process exit, bounded by :data:`EXIT_FLUSH`); True if none has."""
    deadline = time.monotonic() + timeout
    while pending():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
