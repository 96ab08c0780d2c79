"""Airflow's view of iflow files: DAGs plus import errors keyed to each YAML file.

Airflow 3.3 only discovers ``.py`` files, so ``dags/iflow_dags.py`` loads every
iflow file under its folder (``load_workflows``). Each DAG keeps the loader as
its file (so ``deactivate_deleted_dags`` sees an observed ``.py`` file and
leaves it alone), while each broken file's error is keyed to the YAML file's own
relative path (so ``_update_import_errors`` marks no healthy DAG stale). See
the README's "How files become DAGs" for the whole argument and its limits.

Airflow 3.4 adds ``[dag_processor] dag_importer_configs``: there,
``IflowYamlImporter`` is registered for ``.yaml``/``.yml`` and every file is
its own parse unit (own ``fileloc``, timeout, Code tab); the loader ``.py`` then
loads nothing. The importer speaks both interfaces (3.3's ``import_file``, 3.4's
``import_definition``); ``version_compat`` holds the differences.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

from iflow_airflow import version_compat
from iflow_airflow.build import last_good
from iflow_airflow.build.folder import Outcome, load_folder, load_one
from iflow_airflow.compiler import Compiled
from iflow_airflow.errors import WorkflowFileError, printable
from iflow_airflow.gc_pause import collector_paused
from iflow_airflow.plan import cache as plan_cache
from iflow_airflow.settings import IflowSettings
from iflow_airflow.source import reader as yaml_source
from iflow_airflow.source.discovery import tree_root

AbstractDagImporter, DagImportError, DagImportResult = version_compat.importer_api()

log = logging.getLogger(__name__)


def to_import_errors(error: WorkflowFileError, file_path: str, note: str | None = None) -> DagImportError:
    first = error.problems[0] if error.problems else None
    suggestion = "; ".join(f"{p.key_path}: {p.expected}" for p in error.problems if p.expected) or None
    return version_compat.import_error(
        file_path,
        message=error.render() + (f"\n{note}" if note else ""),
        error_type="iflow",
        line_number=first.line if first else None,
        column_number=first.column if first else None,
        suggestion=suggestion,
    )


def last_good_note(o: Outcome) -> str | None:
    """The line an import error gets when its workflow runs (or is paused at) its last good version."""
    if o.last_good is None:
        return None
    saved = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(o.last_good.saved_at))
    return f"The DAG {o.dag.dag_id!r} keeps its last good version (saved {saved}) until the file is fixed."


# ParseImportError.filename is String(1024) in Airflow 3.3 (airflow/models/errors.py).
IMPORT_ERROR_FILENAME_MAX = 1024


def error_key(c: Compiled, bundle: Path | None) -> str:
    """The name a broken file's import error is filed under: its path relative to the bundle.

    Tried as found first (a file or folder that is a symlink, even to a place outside the
    bundle, keeps the name it has in the dags folder), then resolved; else the name relative
    to the dags folder. A ``relative_to`` failure here once dropped every iflow DAG. The key
    is made storable: control characters and undecodable bytes escaped, and cut to
    Airflow's column from the left (the file name stays readable).
    """
    rel = c.display
    if bundle is not None:
        for path, base in ((c.path, bundle), (c.path, bundle.resolve()), (c.path.resolve(), bundle.resolve())):
            try:
                rel = str(path.relative_to(base))
                break
            except ValueError:
                continue
    rel = printable(rel)
    if len(rel) > IMPORT_ERROR_FILENAME_MAX:
        rel = "..." + rel[-(IMPORT_ERROR_FILENAME_MAX - 3):]
    return rel



def load_workflows(namespace: dict[str, Any], folder: str | Path | None = None) -> list[Compiled]:
    """Put one DAG per iflow file under ``folder`` into ``namespace`` (its own, or its last good); report the rest.

    Called from ``dags/iflow_dags.py`` with ``globals()``. ``folder`` (default: the
    loader's own) is one parse unit: a sub-folder with its own loader is left to it
    (``source.discovery``). Errors go to the running
    Airflow import keyed by each YAML file's path relative to the bundle, so
    they show in the UI's import errors under that file's name (see ``loader``).
    """
    if version_compat.iflow_importer_configured():  # 3.4: each YAML file is its own parse unit
        return []
    settings = IflowSettings.from_config()
    root = Path(folder) if folder else Path(namespace.get("__file__", ".")).resolve().parent
    result, bundle = version_compat.running_import()
    in_task = version_compat.in_task_process(sys._getframe(1))
    with collector_paused():
        store = last_good.from_config(read_only=in_task)
        top = tree_root(root, stop=bundle if bundle is not None and root.resolve().is_relative_to(
            Path(bundle).resolve()) else None)
        outcomes = load_folder(root, settings, cache=plan_cache.from_config(), store=store, top=top,
                               record=not in_task)
    for o in outcomes:
        if o.dag is not None:
            namespace[f"iflow__{o.dag.dag_id}"] = o.dag
    for o in outcomes:
        c = o.compiled
        if c.error is None:
            continue
        rel = error_key(c, bundle)
        if result is not None:
            result.errors.append(to_import_errors(c.error, rel, last_good_note(o)))
        else:
            log.error("%s", c.error.render())
    return [o.compiled for o in outcomes]


class IflowYamlImporter(AbstractDagImporter):  # type: ignore[misc,valid-type]
    """One iflow YAML file -> one DAG: its own, or its last good version (Airflow >= 3.4 importers).

    Registered with ``[dag_processor] dag_importer_configs = ["iflow_airflow.importer.IflowYamlImporter"]``.
    Files that do not look like iflow workflows are not listed (other YAML stays Airflow's
    or nobody's). The Code tab shows the YAML (``get_source_code``).
    """

    def __init__(self, extensions: list[str] | None = None, **_: Any) -> None:
        self.extensions = [e if e.startswith(".") else f".{e}" for e in (extensions or yaml_source_suffixes())]

    @classmethod
    def supported_extensions(cls) -> list[str]:
        return list(yaml_source_suffixes())

    # --- Airflow 3.4 ----------------------------------------------------------------

    def can_handle(self, definition: Any) -> bool:
        path = getattr(definition, "path", definition)
        return str(path).lower().endswith(tuple(self.extensions))

    def might_contain_dag(self, definition: Any, safe_mode: bool = True) -> bool:
        try:
            return yaml_source.looks_like_workflow(definition.read_bytes())
        except OSError:
            return True  # unreadable: imported, so that it is reported

    def list_dag_definitions(self, bundle: Any, *, safe_mode: bool = True) -> Iterator[Any]:
        for definition in version_compat.filesystem_definitions(Path(bundle.path), self.extensions):
            if Path(definition.path).name != "iflow.defaults.yaml" and self.might_contain_dag(definition):
                yield definition

    def import_definition(self, definition: Any, bundle: Any) -> Any:
        path = Path(definition.path)
        return self._import(path, Path(bundle.path), definition)

    def get_source_code(self, definition: Any, dag_id: str | None = None) -> Any:
        from airflow.sdk.importers.base import DagSourceCode

        return DagSourceCode(source_code=definition.read_text(encoding="utf-8"), language="yaml")

    # --- Airflow 3.3 ----------------------------------------------------------------

    def list_dag_files(self, directory: Any, safe_mode: bool = True) -> Iterator[str]:
        from iflow_airflow.source.discovery import iter_yaml_files

        limit = IflowSettings.from_config().max_file_bytes
        for path in iter_yaml_files(Path(directory)):
            if yaml_source.looks_like_workflow(yaml_source.read_head(path, limit)):
                yield str(path)  # never read past the size limit: an oversized file gets its error

    def import_file(self, file_path: Any, *, bundle_path: Path | None = None, bundle_name: str | None = None,
                    safe_mode: bool = True) -> Any:
        return self._import(Path(file_path), bundle_path)

    def _import(self, path: Path, bundle_path: Path | None, definition: Any = None) -> Any:
        """The file's DAG (its own or its last good version) and its error; never raises."""
        settings = IflowSettings.from_config()
        rel = str(path.relative_to(bundle_path)) if bundle_path and path.is_relative_to(bundle_path) else str(path)
        result = version_compat.dag_import_result(rel, definition)
        try:
            with collector_paused():
                store = last_good.from_config(read_only=version_compat.in_task_process(sys._getframe(1)))
                o = load_one(path, bundle_path, settings, cache=plan_cache.from_config(), store=store)
        except Exception as exc:  # never let one file take the processor down
            result.errors.append(version_compat.import_error(rel, f"{type(exc).__name__}: {exc}",
                                                             error_type="iflow", stacktrace=traceback.format_exc()))
            return result
        if o is None:
            (result.skipped_definitions if definition is not None else result.skipped_files).append(
                definition if definition is not None else str(path))
            return result
        if o.dag is not None:
            o.dag.fileloc = str(path)
            o.dag.relative_fileloc = rel
            result.dags.append(o.dag)
        if o.compiled.error is not None:
            result.errors.append(to_import_errors(o.compiled.error, rel, last_good_note(o)))
        return result


def yaml_source_suffixes() -> tuple[str, ...]:
    from iflow_airflow.constants import YAML_SUFFIXES

    return YAML_SUFFIXES
