"""iflow's upkeep inside the dag-processor: errors without gaps, fast re-parses, ``on_invalid = pause``.

The loader runs in the dag-processor's forked parse processes, which cannot reach
the database and end after each parse; what must outlive a parse runs here, in the
dag-processor's manager process, hooked into four of its methods by
``version_compat.install_dag_processor_upkeep`` (installed by the plugin's
``on_starting`` listener, so only in ``airflow dag-processor``):

* **Errors without gaps.** At each bundle refresh Airflow deletes every import error
  not keyed to an observed ``.py`` file, so a still-broken YAML file's error vanished
  until the loader's next parse. The errors of YAML files that still exist are kept.
* **Errors gone within seconds of a fix.** Airflow clears only the errors of the file
  it parsed (the loader) and of the keys the parse reported. After each parse of a
  loader, the errors of its unit's YAML files (``source.discovery``: a sub-folder
  with its own loader is another unit) that the parse did not report (fixed,
  deleted) are deleted in the same transaction.
* **Edit -> DAG within seconds.** Every ``[iflow] watch_interval`` seconds (1; the
  manager's loop runs about once a second) the YAML files of each bundle are
  ``stat``-ed; the loader of each unit with a changed, added or removed file (a
  defaults file: every unit at or below it), and of each unit whose last parse had
  errors, is queued first, again if a parse of it was running (it may have read
  the old file), and once more after ``[core] min_serialized_dag_update_interval``
  (Airflow does not store a DAG serialized less than that ago).
* **Only changed units are parsed.** A loader parsed less than ``[iflow]
  reparse_interval`` (600 s) ago whose unit did not change is left out of Airflow's
  ``min_file_process_interval`` round, so the processor's steady CPU does not grow with
  the number of workflows; the other ``.py`` files keep Airflow's schedule.
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
from iflow_airflow.constants import DEFAULTS_FILE_NAME
from iflow_airflow.source import discovery

log = logging.getLogger(__name__)

YAML_SUFFIXES = (".yaml", ".yml")
WATCH_INTERVAL_S = 1.0
PAUSED_RECORD = ".paused-by-iflow.json"


def _walk_yaml(root: Path, suffixes: tuple[str, ...] = YAML_SUFFIXES) -> Iterable[tuple[str, os.stat_result]]:
    """(path relative to ``root``, stat) of every YAML file (``suffixes``) below it; hidden folders skipped."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in files:
            if name.lower().endswith(suffixes):
                path = os.path.join(folder, name)
                try:
                    yield os.path.relpath(path, root), os.stat(path)
                except OSError:
                    continue


class Upkeep:
    """State of the upkeep in one dag-processor process (see the module docstring)."""

    def __init__(self, paused_record: Path | None = None, clock: Callable[[], float] = time.monotonic,
                 watch_interval: float = WATCH_INTERVAL_S, reparse_interval: float = 0.0,
                 yaml_units: bool = False, again_after: float = 0.0):
        self.paused_record = paused_record
        self.watch_interval = watch_interval
        self.clock = clock
        self.reparse_interval = reparse_interval
        self.yaml_units = yaml_units  # 3.4's IflowYamlImporter: each YAML file is its own parse unit
        self._signatures: dict[str, dict[str, tuple[int, int]]] = {}  # bundle -> YAML file -> (mtime, size)
        self._dirty: dict[tuple[str, str], Any] = {}  # (bundle, loader) -> bundle: to parse first
        self._errored: dict[str, set[Path]] = {}  # bundle -> loader folders whose last parse had errors
        self._next_watch = 0.0
        self.again_after = again_after
        self._again: dict[tuple[str, str], tuple[float, Any]] = {}  # (bundle, loader) -> (when, bundle)

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
        The DAGs a parse of one of iflow's units no longer delivers are retired at once
        (``_retire_missing``).
        """
        if relative_fileloc is None or bundle_path is None or parsing_result is None:
            return
        try:
            with session.begin_nested():  # a failure here rolls back only this, never Airflow's write
                path = Path(bundle_path) / relative_fileloc
                if self.is_loader(path) and not self.yaml_units:  # 3.4's importer: each YAML file clears its own
                    reported = set((parsing_result.import_errors or {}).keys())
                    self._clear_fixed(session, bundle_name, bundle_path, os.path.dirname(relative_fileloc), reported)
                    self.note_errors(bundle_name, bundle_path, relative_fileloc, bool(reported))
                if self.is_loader(path) or (self.yaml_units and path.suffix.lower() in YAML_SUFFIXES):
                    self._retire_missing(session, bundle_name, relative_fileloc, parsing_result)
                dags = parsing_result.serialized_dags or []
                self._keep_active(session, dags)
                self._apply_pause(session, dags)
        except Exception:
            log.exception("iflow: upkeep after parsing %s failed (Airflow's own result is kept)", relative_fileloc)

    @staticmethod
    def _clear_fixed(session: Any, bundle_name: str, bundle_path: Any, folder: str, reported: set[str]) -> None:
        from sqlalchemy import delete, select

        model = version_compat.import_error_model()
        prefix = f"{folder}/" if folder else ""
        root = Path(bundle_path)
        unit = (root / folder).resolve()
        rows = session.scalars(select(model.filename).where(model.bundle_name == bundle_name))
        stale = [f for f in rows if f.lower().endswith(YAML_SUFFIXES) and f.startswith(prefix) and f not in reported
                 and discovery.unit_of(root / f, root).resolve() == unit]
        if stale:
            session.execute(delete(model).where(model.bundle_name == bundle_name, model.filename.in_(stale)))

    @staticmethod
    def _retire_missing(session: Any, bundle_name: str, relative_fileloc: str, parsing_result: Any) -> None:
        """Mark stale the DAGs of this file that its parse no longer delivered (a deleted workflow, ``hide``).

        Airflow does it only once the file is parsed again ``stale_dag_threshold`` (50 s)
        after the DAG's last parse, and an unchanged unit is not parsed again for
        ``reparse_interval``. A parse with an error of the file itself (a crash, a timeout)
        delivers nothing and retires nothing. A DAG that moved to another unit is active
        again when that unit's parse stores it.
        """
        from airflow.models.dag import DagModel
        from sqlalchemy import update

        if relative_fileloc in (parsing_result.import_errors or {}) or parsing_result.serialized_dags is None:
            return
        present = [d.dag_id for d in parsing_result.serialized_dags]
        session.execute(update(DagModel).where(
            DagModel.bundle_name == bundle_name, DagModel.relative_fileloc == relative_fileloc,
            DagModel.is_stale.is_(False), DagModel.dag_id.not_in(present)).values(is_stale=True))

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

    @staticmethod
    def is_loader(path: Path) -> bool:
        """True for a ``.py`` file that calls ``load_workflows`` (``source.discovery.is_loader``)."""
        return discovery.is_loader(path)

    def _units_of(self, root: Path, changed: set[str]) -> set[Path]:
        """The loader folders that parse the ``changed`` files: a YAML file's unit; a defaults file's every
        unit at or below it; a loader added or removed, its folder's unit and the unit above (files move)."""
        folders: set[Path] = set()
        for rel in changed:
            path = root / rel
            folders.add(discovery.unit_of(path, root))
            if path.suffix == ".py" and path.parent != root:
                folders.add(discovery.unit_of(path.parent.parent, root))
            if path.name == DEFAULTS_FILE_NAME:
                folders |= {p.parent for p in path.parent.rglob("*.py") if discovery.is_loader(p)}
        return folders

    def _look(self, bundle: Any) -> set[str]:
        """The YAML files and loaders of ``bundle`` added, removed or changed (size, mtime) since the last look."""
        root = Path(bundle.path)
        now = {rel: (st.st_mtime_ns, st.st_size) for rel, st in _walk_yaml(root, (*YAML_SUFFIXES, ".py"))
               if not rel.endswith(".py") or discovery.is_loader(root / rel)}
        before = self._signatures.get(bundle.name)
        self._signatures[bundle.name] = now
        if before is None:
            return set()
        return {rel for rel in now.keys() | before.keys() if now.get(rel) != before.get(rel)}

    def changed_loaders(self, bundles: Iterable[Any], make_info: Callable[[Path, Any], Any],
                        busy: Callable[[Any], bool] = lambda info: False) -> list[Any]:
        """Loader files to parse first: the units of the YAML files that changed, and every unit that reports errors.

        A unit stays *dirty* until it is handed out while no parse of it runs: Airflow
        drops a queued file whose parse is running (``_start_new_processes``), and that
        parse may have read the file before the edit. Units with errors are parsed again
        after any change, since a change elsewhere (a name freed, a workflow added) can fix them.
        Each changed unit is parsed once more ``again_after`` seconds later: Airflow does not
        store a DAG serialized less than ``[core] min_serialized_dag_update_interval`` ago
        (a second edit within 30 s), and an unchanged unit is otherwise not parsed again soon.
        """
        now = self.clock()
        for key, (due, bundle) in list(self._again.items()):
            if due <= now:
                self._dirty[key] = bundle
                del self._again[key]
        if self.watch_interval > 0 and now >= self._next_watch:
            self._next_watch = now + self.watch_interval
            try:
                for bundle in bundles:
                    changed = self._look(bundle)
                    if changed:
                        before = set(self._dirty)
                        self._mark_dirty(bundle, changed)
                        if self.again_after > 0:
                            self._again.update({k: (now + self.again_after, bundle) for k in set(self._dirty) - before})
            except Exception:
                log.exception("iflow: watching the YAML files failed (the loader is parsed on its schedule)")
        out: list[Any] = []
        for key, bundle in sorted(self._dirty.items(), key=lambda kv: kv[0]):
            info = make_info(Path(key[1]), bundle)
            if not busy(info):
                out.append(info)
                del self._dirty[key]
        return out

    def _mark_dirty(self, bundle: Any, changed: set[str]) -> None:
        """Queue the loaders of the units of ``changed``, and of units with errors; with 3.4's
        importer (each YAML file its own unit) the changed files that exist themselves."""
        root = Path(bundle.path)
        for folder in self._units_of(root, changed) | self._errored.get(bundle.name, set()):
            for p in sorted(folder.glob("*.py")):
                if discovery.is_loader(p):
                    self._dirty[(bundle.name, str(p.relative_to(root)))] = bundle
        if self.yaml_units:
            for rel in changed:
                if (root / rel).is_file() and Path(rel).name != DEFAULTS_FILE_NAME:
                    self._dirty[(bundle.name, rel)] = bundle

    def note_errors(self, bundle_name: str, bundle_path: Any, relative_fileloc: str, has_errors: bool) -> None:
        """Remember which loader units reported import errors at their last parse."""
        folder = (Path(bundle_path) / relative_fileloc).parent
        units = self._errored.setdefault(bundle_name, set())
        (units.add if has_errors else units.discard)(folder)

    def fresh(self, path: Path, last_finish: Any, now: Any) -> bool:
        """True when a loader (with 3.4's importer: a YAML file) need not be parsed on Airflow's
        schedule: it was parsed less than ``reparse_interval`` ago and has not changed since
        (the YAML files are watched)."""
        if self.reparse_interval <= 0 or self.watch_interval <= 0 or last_finish is None:
            return False
        ours = discovery.is_loader(path) or (self.yaml_units and path.suffix.lower() in YAML_SUFFIXES)
        if (now - last_finish).total_seconds() >= self.reparse_interval or not ours:
            return False
        try:
            return os.stat(path).st_mtime < last_finish.timestamp()
        except OSError:
            return False


_installed: Upkeep | None = None


def preload() -> None:
    """Import what every parse of a loader needs, once, in the manager: each parse process is
    forked from it and inherits the modules instead of importing them again (never raises)."""
    try:
        import iflow_airflow.build.dag  # noqa: F401  (airflow.sdk, the operators)
        import iflow_airflow.build.loader  # noqa: F401
        import iflow_airflow.compiler  # noqa: F401
    except Exception:
        log.exception("iflow: preloading the loader's modules failed (each parse imports them)")


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
                            watch_interval=float(settings.get("watch_interval")),
                            reparse_interval=float(settings.get("reparse_interval")),
                            yaml_units=version_compat.iflow_importer_configured(),
                            again_after=version_compat.serialized_dag_update_interval() + 1.0)
        hooked = version_compat.install_dag_processor_upkeep(_installed)
        log.info("iflow: dag-processor upkeep hooked into %s", ", ".join(hooked))
        preload()
    except Exception:
        log.exception("iflow: could not hook the dag-processor upkeep (import errors may show gaps)")
