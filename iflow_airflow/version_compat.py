"""Every touchpoint with Airflow internals, in one file: an Airflow upgrade means reading this one.

The rest of the package uses Airflow's public surface (``airflow.sdk``, models,
the listener and plugin hooks). What it needs beyond that -- private modules,
call-stack shapes, process globals -- is reached only through the functions
below. Each one names the Airflow version it was checked against, imports what
it needs lazily (so the pure stages that import this module never pay for
Airflow), and has a test in ``tests/airflow/test_version_compat.py`` pinned to
that version: when Airflow moves a name, that test fails first and names the
function to mend.

Checked against apache-airflow 3.3.2 (task SDK 1.3.2).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

#: The Airflow versions whose internals this module was read against.
CHECKED_AGAINST = ("3.3",)


def airflow_version() -> str:
    """The installed Airflow's version (``"3.3.2"``), without importing Airflow's configuration."""
    from importlib.metadata import version

    return version("apache-airflow-core")


def running_import(max_depth: int = 40) -> tuple[Any | None, Path | None]:
    """The ``DagImportResult`` (and bundle path) of the Airflow import that is executing the caller.

    Rule: walk up the call stack to ``PythonDagImporter.import_file`` (3.3:
    ``airflow/dag_processing/importers/python_importer.py``), whose locals hold
    ``result`` (a ``DagImportResult``) and ``bundle_path``. The loader adds its
    per-YAML-file import errors there, so they reach the database keyed to the
    YAML file. Limit: outside an Airflow import (a plain script, a test) this
    returns ``(None, None)`` and the caller raises instead.
    """
    from airflow.dag_processing.importers.base import DagImportResult

    frame = sys._getframe(1)
    for _ in range(max_depth):
        if frame is None:
            break
        if frame.f_code.co_name == "import_file":
            result = frame.f_locals.get("result")
            if isinstance(result, DagImportResult):
                bundle = frame.f_locals.get("bundle_path")
                return result, Path(bundle) if bundle else None
        frame = frame.f_back
    return None, None


_own_stats_init = False
_stats_lock = threading.Lock()


def stats_module() -> Any:
    """The ``Stats`` module this process initialised (scheduler/api-server: core's; workers: the SDK's).

    3.3 has two copies: ``airflow._shared.observability.metrics.stats`` (core
    components initialise its factory) and ``airflow.sdk._shared...stats`` (task
    processes; left uninitialised until something emits). The SDK's copy is
    initialised once, from ``[metrics]``, if nobody did.
    """
    global _own_stats_init
    core = sys.modules.get("airflow._shared.observability.metrics.stats")
    if core is not None and getattr(core, "_factory", None) is not None:
        return core
    from airflow.sdk._shared.observability.metrics import stats as sdk_stats

    if getattr(sdk_stats, "_factory", None) is None and not _own_stats_init:
        with _stats_lock:
            if getattr(sdk_stats, "_factory", None) is None and not _own_stats_init:
                _own_stats_init = True
                from airflow.sdk.configuration import conf
                from airflow.sdk.observability.metrics import stats_utils

                sdk_stats.initialize(
                    factory=stats_utils.get_stats_factory(),
                    export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=True),
                )
    return sdk_stats


def get_dag_run(dag_id: str, run_id: str) -> Any:
    """Another DAG's run, from inside a task process (no ORM there), through the supervisor.

    3.3: ``airflow.sdk.execution_time.task_runner.SUPERVISOR_COMMS.send(GetDagRun(...))``.
    Raises whatever the supervisor raises (a run deleted meanwhile).
    """
    from airflow.sdk.execution_time.comms import GetDagRun
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    return SUPERVISOR_COMMS.send(GetDagRun(dag_id=dag_id, run_id=run_id))


def count_task_instances(dag_id: str, task_ids: list[str], states: list[str]) -> int:
    """How many task instances of ``dag_id`` are in ``states`` (works in workers and the triggerer).

    3.3: ``RuntimeTaskInstance.get_ti_count`` (execution API; synchronous).
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    return int(RuntimeTaskInstance.get_ti_count(dag_id=dag_id, task_ids=task_ids, states=states) or 0)


def redact_secrets(value: Any) -> Any:
    """``value`` with the secrets Airflow's masker knows replaced by ``***`` (unchanged if it cannot).

    Checked against Airflow 3.3: the task process registers connection passwords and
    sensitive variables with ``airflow.sdk._shared.secrets_masker``; scheduler-side code
    uses ``airflow._shared.secrets_masker``. Both expose ``redact(value)``.
    """
    for module in ("airflow.sdk._shared.secrets_masker", "airflow._shared.secrets_masker"):
        try:
            redact = __import__(module, fromlist=["redact"]).redact
        except (ImportError, AttributeError):
            continue
        try:
            return redact(value)
        except Exception:  # a masker problem must never lose the alert
            return value
    return value


def ignore_rule_type(syntax: str) -> Any:
    """Airflow's ``.airflowignore`` rule class for ``[core] dag_ignore_file_syntax`` (glob or regexp).

    Checked against Airflow 3.3 (``airflow._shared.module_loading.file_discovery``): each
    class has ``compile(pattern, base_dir, definition_file)`` and ``match(path, rules)``.
    Raises ImportError when Airflow is not installed.
    """
    from airflow._shared.module_loading import file_discovery as fd

    if syntax in ("glob", "", None):
        return fd._GlobIgnoreRule
    if syntax == "regexp":
        return fd._RegexpIgnoreRule
    raise ValueError(f"Unsupported ignore_file_syntax: {syntax}")
