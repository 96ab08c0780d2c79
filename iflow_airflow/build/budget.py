"""A time budget per workflow file inside the loader's one shared parse (issue 13, item 4).

Airflow 3.3 parses the loader ``.py`` as one unit under one ``dagbag_import_timeout``
(a ``SIGALRM`` timer): one file that is slow to compile or build would time the whole
import out and drop every iflow DAG. So each file's compile, and each DAG's build, runs
under its own ``[iflow] file_parse_budget`` (seconds), armed on the same timer *inside*
Airflow's: ``limit`` sets the timer to the smaller of the budget and what is left of
Airflow's timeout minus a reserve, and re-arms Airflow's remaining time on the way out.
A file over its budget raises :class:`FileBudgetExceeded` (a ``BaseException``, so no
``except Exception`` of the compiler turns it into something else) and becomes that
file's own error; it keeps its last good version like any invalid file.

Limits: the timer interrupts Python code only between bytecodes, so a single long C
call (a huge YAML scalar in the C parser, bounded by ``max_file_bytes``) finishes
first; outside the main thread (no signals there) files run without a budget; Airflow's
serialisation of the built DAGs after the import is not covered (its own
``dag_file_processor_timeout`` applies).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

RESERVE_SHARE = 0.2  # of Airflow's import timeout, kept for what comes after the loader
MIN_RESERVE_S = 2.0


class FileBudgetExceeded(BaseException):
    """One file used up its budget (or what the shared parse had left for it)."""

    def __init__(self, seconds: float, shared: bool):
        self.seconds = seconds
        self.shared = shared  # True: Airflow's import timeout was nearer than the file's own budget
        super().__init__(f"over the time budget of {seconds:.1f} s")


def _usable() -> bool:
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")


def outer_remaining() -> float:
    """Seconds left on the process's ``ITIMER_REAL`` (Airflow's import timeout); 0: none armed."""
    return signal.getitimer(signal.ITIMER_REAL)[0] if _usable() else 0.0


class SharedParse:
    """What is left of the shared parse, measured once when the loader starts."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.outer = outer_remaining()
        self.reserve = max(MIN_RESERVE_S, RESERVE_SHARE * self.outer) if self.outer else 0.0

    def left(self) -> float | None:
        """Seconds the loader may still use; None when no Airflow timeout is armed."""
        if not self.outer:
            return None
        return self.outer - self.reserve - (time.monotonic() - self.start)


@contextlib.contextmanager
def limit(budget: float, shared: SharedParse | None = None) -> Iterator[None]:
    """Run the block under ``budget`` seconds (0: no own budget) and the shared parse's remainder."""
    left = shared.left() if shared is not None else None
    if left is not None and left <= 0:
        raise FileBudgetExceeded(0.0, True)
    candidates = [x for x in (budget if budget > 0 else None, left) if x is not None]
    if not candidates or not _usable():
        yield
        return
    seconds = min(candidates)
    is_shared = left is not None and seconds == left
    old_handler = signal.getsignal(signal.SIGALRM)
    old_left, old_interval = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()

    def over(signum: int, frame: object) -> None:
        raise FileBudgetExceeded(seconds, is_shared)

    signal.signal(signal.SIGALRM, over)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_left:
            signal.setitimer(signal.ITIMER_REAL, max(old_left - (time.monotonic() - started), 0.001), old_interval)
