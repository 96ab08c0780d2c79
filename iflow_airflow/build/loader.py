"""Airflow's view of iflow files: DAGs plus import errors keyed to each YAML file.

Airflow 3.3 only discovers ``.py`` files, so ``dags/iflow_dags.py`` loads every
iflow file under its folder (``load_workflows``). Each DAG keeps the loader as
its file (so ``deactivate_deleted_dags`` sees an observed ``.py`` file and
leaves it alone), while each broken file's error is keyed to the YAML file's own
relative path (so ``_update_import_errors`` marks no healthy DAG stale). See
the README's "How files become DAGs" for the whole argument and its limits.

Airflow 3.4 adds ``[dag_processor] dag_importer_configs``: there,
``IflowYamlImporter`` is registered for ``.yaml``/``.yml`` and every file is
its own parse unit, which needs none of the above.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Any, Iterator

from airflow.dag_processing.importers.base import AbstractDagImporter, DagImportError, DagImportResult

from iflow_airflow.build.dag import build_dag
from iflow_airflow.compiler import Compiled, DefaultsChain, compile_file, compile_folder
from iflow_airflow.errors import Problem, WorkflowFileError, printable
from iflow_airflow.settings import IflowSettings
from iflow_airflow.plan import cache as plan_cache
from iflow_airflow.source import reader as yaml_source
from iflow_airflow.gc_pause import collector_paused
from iflow_airflow import version_compat

log = logging.getLogger(__name__)


def to_import_errors(error: WorkflowFileError, file_path: str) -> DagImportError:
    first = error.problems[0] if error.problems else None
    suggestion = "; ".join(f"{p.key_path}: {p.expected}" for p in error.problems if p.expected) or None
    return DagImportError(
        file_path=file_path,
        message=error.render(),
        error_type="iflow",
        line_number=first.line if first else None,
        column_number=first.column if first else None,
        suggestion=suggestion,
    )


def _build(c: Compiled, settings: IflowSettings) -> Any:
    """Build one DAG; an unexpected failure becomes that file's error, never the loader's."""
    assert c.plan is not None
    try:
        dag = build_dag(c.plan, settings)
        dag.validate()
        return dag
    except Exception as exc:
        log.exception("building the DAG of %s failed", c.display)
        c.error = WorkflowFileError(c.display, [Problem(
            c.display, f"could not build the Airflow DAG: {type(exc).__name__}: {exc}", (), None, None,
            "report this with the file; the traceback is in the dag-processor log", "build")])
        c.plan = None
        return None


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
    """Put one DAG per valid iflow file under ``folder`` into ``namespace``; report the rest.

    Called from ``dags/iflow_dags.py`` with ``globals()``. Errors go to the running
    Airflow import keyed by each YAML file's path relative to the bundle, so
    they show in the UI's import errors under that file's name.
    """
    settings = IflowSettings.from_config()
    root = Path(folder) if folder else Path(namespace.get("__file__", ".")).resolve().parent
    result, bundle = version_compat.running_import()
    with collector_paused():
        results = compile_folder(root, settings, cache=plan_cache.from_config())
        for c in results:
            if c.plan is not None:
                dag = _build(c, settings)
                if dag is not None:
                    namespace[f"iflow__{dag.dag_id}"] = dag
    errors = [c for c in results if c.error is not None]
    for c in errors:
        rel = error_key(c, bundle)
        if result is not None:
            result.errors.append(to_import_errors(c.error, rel))
        else:
            log.error("%s", c.error.render())
    return results


class IflowYamlImporter(AbstractDagImporter):
    """One iflow YAML file -> one DAG (for Airflow >= 3.4 ``dag_importer_configs``)."""

    @classmethod
    def supported_extensions(cls) -> list[str]:
        return list(yaml_source_suffixes())

    def list_dag_files(self, directory: Any, safe_mode: bool = True) -> Iterator[str]:
        from iflow_airflow.compiler import iter_yaml_files

        limit = IflowSettings.from_config().max_file_bytes
        for path in iter_yaml_files(Path(directory)):
            if yaml_source.looks_like_workflow(yaml_source.read_head(path, limit)):
                yield str(path)  # never read past the size limit: an oversized file gets its error

    def import_file(self, file_path: Any, *, bundle_path: Path | None = None, bundle_name: str | None = None,
                    safe_mode: bool = True) -> DagImportResult:
        settings = IflowSettings.from_config()
        path = Path(file_path)
        rel = self.get_relative_path(path, bundle_path)
        result = DagImportResult(file_path=rel)
        try:
            c = compile_file(path, root=bundle_path, settings=settings, chain=DefaultsChain(bundle_path, settings),
                             cache=plan_cache.from_config())
        except Exception as exc:  # never let one file take the processor down
            result.errors.append(DagImportError(rel, f"{type(exc).__name__}: {exc}", "iflow",
                                                stacktrace=traceback.format_exc()))
            return result
        if c is None:
            result.skipped_files.append(str(path))
            return result
        dag = _build(c, settings) if c.plan is not None else None
        if dag is not None:
            dag.fileloc = str(path)
            dag.relative_fileloc = rel
            result.dags.append(dag)
        if c.error is not None:
            result.errors.append(to_import_errors(c.error, rel))
        return result


def yaml_source_suffixes() -> tuple[str, ...]:
    from iflow_airflow.constants import YAML_SUFFIXES

    return YAML_SUFFIXES
