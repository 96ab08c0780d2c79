"""Resources -> Airflow pools, created and resized with no manual step.

Parsing code cannot reach the database in Airflow 3, so pools are kept by a
component that can: ``ResourceKeeper`` (``resource_keeper.py``) in the
scheduler, plus ``iflow-airflow sync-pools`` as an init step. Both call
``sync_pools`` with what ``desired_pools`` reads from the files.

Ownership: a pool iflow creates carries ``MANAGED_MARK`` in its description.
Only such pools are resized; a pool a person made is never changed or deleted,
and a pool no file names any more is left as it is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from iflow_airflow.compiler import Compiled, compile_folder
from iflow_airflow.constants import DEFAULTS_FILE_NAME, YAML_SUFFIXES
from iflow_airflow.errors import plural
from iflow_airflow.plan.cache import PlanCache
from iflow_airflow.settings import IflowSettings

log = logging.getLogger(__name__)
MANAGED_MARK = "[iflow-airflow]"


@dataclass(frozen=True)
class DesiredPool:
    name: str
    resource: str
    slots: int
    max_slots: int | None
    description: str
    workflows: tuple[str, ...]

    @property
    def pool_description(self) -> str:
        return f"{MANAGED_MARK} resource {self.resource}: {self.description}"[:250]


def desired_pools(results: Iterable[Compiled]) -> dict[str, DesiredPool]:
    """Pools that the workflows with a DAG need (a file without a plan asks for nothing).

    Files that declare one resource with different sizes are an error on each of
    them (``compiler.check_across_files``); until they agree the pool takes the
    smallest declared size, so no declaration's limit is ever exceeded.
    """
    found: dict[str, DesiredPool] = {}
    for c in results:
        if c.plan is None:
            continue
        for r in c.plan.resources.values():
            prev = found.get(r.pool)
            workflows = tuple(sorted({*(prev.workflows if prev else ()), c.plan.dag_id}))
            slots = min(r.slots, prev.slots) if prev else r.slots
            ceiling = r.max_slots if prev is None else (
                None if prev.max_slots is None or r.max_slots is None else min(prev.max_slots, r.max_slots))
            found[r.pool] = DesiredPool(r.pool, r.name, slots, ceiling,
                                        (prev.description if prev else None) or r.description or "shared resource",
                                        workflows)
    return found


class FolderScanner:
    """Compiles the dags folder again only when a YAML file changed (mtime, size, set of files),
    and then only the files that changed (``compile_folder``'s memo)."""

    def __init__(self, root: Path, settings: IflowSettings | None = None, cache: PlanCache | None = None):
        self.root = root
        self.settings = settings or IflowSettings.from_config()
        self.cache = cache  # the loader's plan cache: an unchanged file is not compiled again
        self._stamp: tuple | None = None
        self._results: list[Compiled] = []
        self._memo: dict = {}  # compile_folder's: unchanged files are not compiled again
        self._context_stamp: tuple | None = None

    def _current_stamp(self) -> tuple:
        """(path, mtime, size) of every YAML and ignore file, through symlinked folders as the
        loader follows them (a folder reached twice, as in a symlink loop, is looked at once)."""
        items = []
        seen: set[str] = set()
        for folder, dirs, files in os.walk(self.root, followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:
                dirs[:] = []
                continue
            seen.add(real)
            for name in files:
                if name.lower().endswith(YAML_SUFFIXES) or name == ".airflowignore":
                    p = os.path.join(folder, name)
                    try:
                        st = os.stat(p)
                    except OSError:
                        continue
                    items.append((p, st.st_mtime_ns, st.st_size))
        return tuple(sorted(items))

    def scan(self) -> tuple[list[Compiled], bool]:
        """(results, changed since the last scan)."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return self._results, False
        context = tuple(i for i in stamp if os.path.basename(i[0]) in (DEFAULTS_FILE_NAME, ".airflowignore"))
        if context != self._context_stamp:  # defaults and ignore rules change files whose stamp did not
            self._memo.clear()
            self._context_stamp = context
        self._results = compile_folder(self.root, self.settings, cache=self.cache, memo=self._memo)
        self._stamp = stamp
        return self._results, True


def sync_pools(desired: dict[str, DesiredPool], session=None, *, floor: dict[str, int] | None = None) -> list[str]:
    """Create missing pools and resize managed ones; returns what changed, one line each.

    ``floor`` lets the auto-scaler keep a grown pool above its declared size.
    """
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    changes: list[str] = []

    def _apply(s) -> None:
        existing = {p.pool: p for p in s.query(Pool).filter(Pool.pool.in_(list(desired))).all()} if desired else {}
        for name, want in desired.items():
            slots = max(want.slots, (floor or {}).get(name, 0))
            pool = existing.get(name)
            if pool is None:
                s.add(Pool(pool=name, slots=slots, description=want.pool_description, include_deferred=False))
                changes.append(f"created pool {name} with {plural(slots, 'slot')}")
            elif not (pool.description or "").startswith(MANAGED_MARK):
                if pool.slots != slots:
                    log.warning("pool %s was made by a person (%s slots); iflow wants %s and leaves it alone",
                                name, pool.slots, slots)
            elif pool.slots != slots or pool.description != want.pool_description:
                if pool.slots != slots:
                    changes.append(f"resized pool {name} from {pool.slots} to {plural(slots, 'slot')}")
                pool.slots = slots
                pool.description = want.pool_description

    if session is not None:
        _apply(session)
        session.flush()
    else:
        with create_session() as s:
            _apply(s)
    for line in changes:
        log.info("iflow: %s", line)
    return changes


#: Task-instance states that count against a pool: running and queued hold their slots,
#: deferred ones only in a pool whose ``include_deferred`` is set; scheduled ones wait.
POOL_STATES = ("running", "queued", "scheduled", "deferred")


def pool_usage(rows: Iterable[tuple[Any, Any, int, int | None]],
               include_deferred: Mapping[str, bool]) -> dict[str, dict[str, int]]:
    """Per pool: slots busy, tasks waiting, tasks running and queued, from ``(pool, state, count, slots)`` rows.

    Rule: as Airflow counts a pool (``Pool.occupied_slots``): ``running`` and ``queued``
    task instances hold ``pool_slots`` each, ``deferred`` ones too where the pool says
    ``include_deferred``; ``scheduled`` ones are waiting. One rule for the resource
    keeper (auto-scaling, saturation) and the /iflow page, so the two never disagree.
    """
    usage: dict[str, dict[str, int]] = {}
    for pool, state, count, slots in rows:
        state = str(getattr(state, "value", state))
        u = usage.setdefault(pool, {"busy": 0, "waiting": 0, "running": 0, "queued": 0})
        if state in ("running", "queued") or (state == "deferred" and include_deferred.get(pool, False)):
            u["busy"] += int(slots or 0)
        if state == "scheduled":
            u["waiting"] += int(count)
        if state in ("running", "queued"):
            u[state] += int(count)
    return usage
