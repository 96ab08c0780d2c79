"""iflow's upkeep inside the dag-processor: errors without gaps, fast re-parses, ``on_invalid = pause``.

The loader runs in the dag-processor's forked parse processes, which cannot reach
the database and end after each parse; what must outlive a parse runs here, in the
dag-processor's manager process, hooked into three of its methods by
``version_compat.install_dag_processor_upkeep`` (installed by the plugin's
``on_starting`` listener, so only in ``airflow dag-processor``):

* **Errors without gaps.** At each bundle refresh Airflow deletes every import error
  not keyed to an observed ``.py`` file, so a still-broken YAML file's error vanished
  until the loader's next parse. The errors of YAML files that still exist are kept.
* **Errors gone within seconds of a fix.** Airflow clears only the errors of the file
  it parsed (the loader) and of the keys the parse reported. After each parse of a
  loader, the errors of YAML files under the loader's folder that the parse did not
  report (fixed, deleted) are deleted in the same transaction.
* **Edit -> DAG within seconds.** Every ``[iflow] watch_interval`` seconds (1; the manager's loop runs about once a second) the
  YAML files of each bundle are ``stat``-ed; when one changed, was added or removed,
  the loader files of that bundle (``.py`` files that call ``load_workflows``) are
  queued first. ``min_file_process_interval`` then only matters for what is not a
  file change, so it can stay long and the processor's steady CPU low.
* **on_invalid = pause.** A DAG a parse delivered with the tag
  ``iflow:paused-while-invalid`` is paused (and recorded in the store folder); once a
  parse delivers it without the tag, iflow unpauses what it paused. A DAG a person
  paused is left paused.

Limits: the watch follows the files' size and mtime (an edit that keeps both is seen
at the loader's next scheduled parse); it walks the bundle folder (hidden folders
skipped), about 1 ms per 200 files.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from iflow_airflow import version_compat

log = logging.getLogger(__name__)

YAML_SUFFIXES = (".yaml", ".yml")
LOADER_MARK = b"load_workflows"
WATCH_INTERVAL_S = 1.0
PAUSED_RECORD = ".paused-by-iflow.json"


def _walk_yaml(root: Path) -> Iterable[tuple[str, os.stat_result]]:
    """(path relative to ``root``, stat) of every YAML file below it; hidden folders skipped."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in files:
            if name.lower().endswith(YAML_SUFFIXES):
                path = os.path.join(folder, name)
                try:
                    yield os.path.relpath(path, root), os.stat(path)
                except OSError:
                    continue


class Upkeep:
    """State of the upkeep in one dag-processor process (see the module docstring)."""

    def __init__(self, paused_record: Path | None = None, clock: Callable[[], float] = time.monotonic,
                 watch_interval: float = WATCH_INTERVAL_S):
        self.paused_record = paused_record
        self.watch_interval = watch_interval
        self.clock = clock
        self._signatures: dict[str, frozenset] = {}
        self._loaders: dict[str, tuple[float, bool]] = {}  # path -> (mtime, calls load_workflows)
        self._next_watch = 0.0

    # --- errors --------------------------------------------------------------------

    @staticmethod
    def existing_yaml(bundle_path: Any) -> set[str]:
        """Relative paths of the YAML files of a bundle: their import errors are not orphans."""
        if bundle_path is None:
            return set()
        try:
            return {rel for rel, _ in _walk_yaml(Path(bundle_path))}
        except Exception:
            log.exception("iflow: listing the YAML files of %s failed", bundle_path)
            return set()

    def after_persist(self, bundle_path: Any, bundle_name: str, relative_fileloc: str | None,
                      parsing_result: Any, session: Any) -> None:
        """After a parse: a loader's YAML errors it no longer reports are cleared; last good DAGs stay active.

        With 3.4's ``IflowYamlImporter`` a last good DAG shares its file with that file's
        error, and Airflow marks the DAGs of an errored file stale and ``has_import_errors``
        (the API then refuses to trigger them): a last good DAG is made active again here
        (its version has no error; a loader's DAGs never share a file with an error).
        """
        if relative_fileloc is None or bundle_path is None:
            return
        try:
            with session.begin_nested():  # a failure here rolls back only this, never Airflow's write
                if self.is_loader(Path(bundle_path) / relative_fileloc):
                    reported = set((parsing_result.import_errors or {}).keys())
                    self._clear_fixed(session, bundle_name, os.path.dirname(relative_fileloc), reported)
                dags = parsing_result.serialized_dags or []
                self._keep_active(session, dags)
                self._apply_pause(session, dags)
        except Exception:
            log.exception("iflow: upkeep after parsing %s failed (Airflow's own result is kept)", relative_fileloc)

    @staticmethod
    def _clear_fixed(session: Any, bundle_name: str, folder: str, reported: set[str]) -> None:
        from sqlalchemy import delete, select

        model = version_compat.import_error_model()
        prefix = f"{folder}/" if folder else ""
        rows = session.scalars(select(model.filename).where(model.bundle_name == bundle_name))
        stale = [f for f in rows if f.lower().endswith(YAML_SUFFIXES) and f.startswith(prefix) and f not in reported]
        if stale:
            session.execute(delete(model).where(model.bundle_name == bundle_name, model.filename.in_(stale)))

    @staticmethod
    def _keep_active(session: Any, dags: list[Any]) -> None:
        from airflow.models.dag import DagModel
        from sqlalchemy import update

        from iflow_airflow.build.last_good import TAG_LAST_GOOD

        kept = {d.dag_id for d in dags if TAG_LAST_GOOD in version_compat.serialized_tags(d)}
        if kept:
            session.execute(update(DagModel).where(DagModel.dag_id.in_(kept))
                            .values(is_stale=False, has_import_errors=False))

    # --- on_invalid = pause --------------------------------------------------------

    def _read_paused(self) -> set[str]:
        try:
            return set(json.loads(self.paused_record.read_text())) if self.paused_record else set()
        except (OSError, ValueError, TypeError):
            return set()

    def _write_paused(self, dag_ids: set[str]) -> None:
        if self.paused_record is None:
            return
        self.paused_record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.paused_record.with_name(f".tmp-{os.getpid()}-{PAUSED_RECORD}")
        tmp.write_text(json.dumps(sorted(dag_ids)))
        os.replace(tmp, self.paused_record)

    def _apply_pause(self, session: Any, dags: list[Any]) -> None:
        from airflow.models.dag import DagModel
        from sqlalchemy import update

        from iflow_airflow.build.last_good import TAG_PAUSED

        recorded = self._read_paused()
        want = {d.dag_id for d in dags if TAG_PAUSED in version_compat.serialized_tags(d)}
        back = {d.dag_id for d in dags} & (recorded - want)
        newly = want - recorded
        for ids, paused in ((newly, True), (back, False)):
            if ids:
                session.execute(update(DagModel).where(DagModel.dag_id.in_(ids)).values(is_paused=paused))
        if newly or back:
            self._write_paused((recorded | newly) - back)
            log.info("iflow on_invalid=pause: paused %s, unpaused %s", sorted(newly), sorted(back))

    # --- edit -> re-parse ------------------------------------------------------------

    def is_loader(self, path: Path) -> bool:
        """True for a ``.py`` file that calls ``load_workflows`` (read again only when its mtime changes)."""
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return False
        key = str(path)
        cached = self._loaders.get(key)
        if cached is None or cached[0] != mtime:
            try:
                cached = (mtime, LOADER_MARK in path.read_bytes())
            except OSError:
                cached = (mtime, False)
            self._loaders[key] = cached
        return cached[1]

    def changed_loaders(self, bundles: Iterable[Any], make_info: Callable[[Path, Any], Any]) -> list[Any]:
        """Loader files to parse first because a YAML file of their bundle changed since the last look."""
        now = self.clock()
        if self.watch_interval <= 0 or now < self._next_watch:
            return []
        self._next_watch = now + self.watch_interval
        out: list[Any] = []
        try:
            for bundle in bundles:
                root = Path(bundle.path)
                signature = frozenset((rel, st.st_mtime_ns, st.st_size) for rel, st in _walk_yaml(root))
                before = self._signatures.get(bundle.name)
                self._signatures[bundle.name] = signature
                if before is not None and before != signature:
                    out += [make_info(p.relative_to(root), bundle) for p in sorted(root.rglob("*.py"))
                            if self.is_loader(p)]
        except Exception:
            log.exception("iflow: watching the YAML files failed (the loader is parsed on its schedule)")
        return out


_installed: Upkeep | None = None


def install() -> None:
    """Hook the upkeep into this process's dag-processor (idempotent; never raises)."""
    global _installed
    if _installed is not None:
        return
    try:
        from iflow_airflow import settings
        from iflow_airflow.build import last_good

        folder = last_good.folder_from_config()
        _installed = Upkeep(folder / PAUSED_RECORD if folder is not None else None,
                            watch_interval=float(settings.get("watch_interval")))
        hooked = version_compat.install_dag_processor_upkeep(_installed)
        log.info("iflow: dag-processor upkeep hooked into %s", ", ".join(hooked))
    except Exception:
        log.exception("iflow: could not hook the dag-processor upkeep (import errors may show gaps)")
