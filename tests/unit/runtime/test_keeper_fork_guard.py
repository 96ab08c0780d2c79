"""A fork of the scheduler waits for the resource keeper's current step (a worker forked while the
keeper's thread held a lock inherited it held and hung at its first task)."""

from __future__ import annotations

import os
import threading
import time

from iflow_airflow.runtime.keeper import FORK_GUARD, install_fork_guard


def test_a_fork_waits_for_the_keepers_current_step_and_the_child_can_take_the_guard():
    assert install_fork_guard() is True
    order: list[str] = []
    inside = threading.Event()

    def step() -> None:  # what the keeper's thread does for one tick
        with FORK_GUARD:
            inside.set()
            time.sleep(0.3)
            order.append("step done")

    thread = threading.Thread(target=step)
    thread.start()
    inside.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: the guard was re-initialised, not inherited held
        os._exit(0 if FORK_GUARD.acquire(blocking=False) else 3)
    order.append("forked")
    _, status = os.waitpid(pid, 0)
    thread.join(5)
    assert os.waitstatus_to_exitcode(status) == 0
    assert order == ["step done", "forked"]
