"""Every touchpoint with Airflow internals, in one file: an Airflow upgrade means reading this one.

The rest of the package uses Airflow's public surface (``airflow.sdk``, models,
the listener and plugin hooks). What it needs beyond that -- private modules,
call-stack shapes, process globals -- is reached only through the functions
below. Each one names the Airflow version it was checked against, imports what
it needs lazily (so the pure stages that import this module never pay for
Airflow), and has a test in ``tests/airflow/test_version_compat.py`` pinned to
that version: when Airflow moves a name, that test fails first and names the
function to mend.

Checked against apache-airflow 3.3.2 (task SDK 1.3.2) and 3.4.0b2.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The Airflow versions whose internals this module was read against.
CHECKED_AIRFLOW = ("3.3.2", "3.4.0b2")
CHECKED_AGAINST = tuple(sorted({".".join(v.split(".")[:2]) for v in CHECKED_AIRFLOW}))
_MARK = "__iflow_wrapped__"


def _wrap(cls: type, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> bool:
    """Replace ``cls.name`` by ``make(original)`` once per process (idempotent); False if it is missing."""
    original = getattr(cls, name, None)
    if original is None:
        log.warning("iflow: %s.%s not found: this Airflow is not one iflow-airflow was checked with (%s)",
                    cls.__name__, name, ", ".join(CHECKED_AIRFLOW))
        return False
    if getattr(original, _MARK, False):
        return True
    wrapped = functools.wraps(original)(make(original))
    setattr(wrapped, _MARK, True)
    setattr(cls, name, wrapped)
    return True


def install_dag_processor_upkeep(upkeep: Any) -> list[str]:
    """Hook ``upkeep`` into ``DagFileProcessorManager`` (``airflow/dag_processing/manager.py``).

    Checked against Airflow 3.3.2 (and 3.4.0b2), four methods of the manager:

    * ``clear_orphaned_import_errors(bundle_name, observed_filelocs)`` runs at every
      bundle refresh and deletes every import error not keyed to an observed ``.py``
      file: the errors of YAML files that still exist are added to the observed set.
    * ``persist_parsing_result(*, bundle_name, parsing_result, relative_fileloc, session, ...)``
      writes one parse's DAGs and errors; only the parsed file and its error keys are
      cleared, so afterwards ``upkeep.after_persist`` clears the errors of the loader's
      YAML files that this parse found valid (or gone), and applies ``on_invalid = pause``.
    * ``claim_priority_files()`` ("override to source requests from an API") returns
      the files to parse first; ``upkeep.changed_loaders`` adds the loader of a unit whose
      YAML files changed, once no parse of it runs (``_processors`` holds the running ones;
      ``_start_new_processes`` drops a queued file that is being parsed).
    * ``prepare_file_queue(known_files)`` queues every file not parsed within
      ``min_file_process_interval``: loaders that ``upkeep.fresh`` calls fresh (parsed
      within ``[iflow] reparse_interval``, unchanged; their YAML files are watched) are
      left out (``_file_stats[f].last_finish_time``, ``DagFileInfo.absolute_path``).

    Returns the names hooked. Runs only in the dag-processor process (see ``lifecycle``).
    """
    from airflow.dag_processing.manager import DagFileProcessorManager as M

    def clear_orphans(original):
        def clear_orphaned_import_errors(self, bundle_name, observed_filelocs, *args, **kwargs):
            keep = upkeep.existing_yaml(bundle_path(self, bundle_name))
            return original(self, bundle_name, set(observed_filelocs) | keep, *args, **kwargs)
        return clear_orphaned_import_errors

    def persist(original):
        def persist_parsing_result(self, **kwargs):
            original(self, **kwargs)
            upkeep.after_persist(bundle_path(self, kwargs["bundle_name"]), kwargs["bundle_name"],
                                 kwargs.get("relative_fileloc"), kwargs["parsing_result"], kwargs["session"])
        return persist_parsing_result

    def claim(original):
        def claim_priority_files(self):
            return list(original(self)) + upkeep.changed_loaders(self._dag_bundles, dag_file_info,
                                                                 busy=lambda info: info in self._processors)
        return claim_priority_files

    def prepare(original):
        def prepare_file_queue(self, known_files, *args, **kwargs):
            from airflow.utils import timezone

            now = timezone.utcnow()
            last = {f.presence_key: getattr(st, "last_finish_time", None) for f, st in self._file_stats.items()}
            due = {bundle: {f for f in files if not upkeep.fresh(f.absolute_path, last.get(f.presence_key), now)}
                   for bundle, files in known_files.items()}
            return original(self, due, *args, **kwargs)
        return prepare_file_queue

    hooks = {"clear_orphaned_import_errors": clear_orphans, "persist_parsing_result": persist,
             "claim_priority_files": claim, "prepare_file_queue": prepare}
    return [name for name, make in hooks.items() if _wrap(M, name, make)]


def serialized_dag_update_interval() -> float:
    """``[core] min_serialized_dag_update_interval`` (3.3.2: a DAG serialized less than this many
    seconds ago is not stored again by a parse, ``dag_processing/collection.py``; 0: always)."""
    from airflow.configuration import conf

    return float(conf.getint("core", "min_serialized_dag_update_interval", fallback=30))


def bundle_path(manager: Any, bundle_name: str) -> Any:
    """The local path of ``bundle_name`` among the manager's ``_dag_bundles`` (3.3.2: list of bundles)."""
    for bundle in getattr(manager, "_dag_bundles", ()):
        if bundle.name == bundle_name:
            return bundle.path
    return None


def dag_file_info(rel_path: Any, bundle: Any) -> Any:
    """A queue entry of the manager for one file (3.3.2: ``DagFileInfo(rel_path, bundle_name, bundle_path)``)."""
    from airflow.dag_processing.manager import DagFileInfo

    return DagFileInfo(rel_path=rel_path, bundle_name=bundle.name, bundle_path=bundle.path)


def import_error_model() -> Any:
    """The ORM model of the UI's import errors (3.3.2: ``airflow.models.errors.ParseImportError``)."""
    from airflow.models.errors import ParseImportError

    return ParseImportError


def serialized_tags(lazy_dag: Any) -> list[str]:
    """Tags of a ``LazyDeserializedDAG`` of a parse result (3.3.2: ``data['dag']['tags']``)."""
    return list(getattr(lazy_dag, "tags", None) or [])


def airflow_version() -> tuple[int, int]:
    """(major, minor) of the installed Airflow."""
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)


def importer_api() -> tuple[type, type, type]:
    """``(AbstractDagImporter, DagImportError, DagImportResult)``.

    3.3.2: ``airflow.dag_processing.importers.base``; 3.4.0b2 moved them to the task SDK,
    ``airflow.sdk.importers.base`` (and changed the importer interface: definitions).
    """
    try:
        from airflow.sdk.importers.base import AbstractDagImporter, DagImportError, DagImportResult
    except ImportError:
        from airflow.dag_processing.importers.base import AbstractDagImporter, DagImportError, DagImportResult
    return AbstractDagImporter, DagImportError, DagImportResult


def import_error(file_path: str, message: str, **fields: Any) -> Any:
    """A ``DagImportError`` for one file (3.3.2: ``file_path=``; 3.4.0b2: ``source_reference=``)."""
    _, error_cls, _ = importer_api()
    names = getattr(error_cls, "__dataclass_fields__", {})
    key = "source_reference" if "source_reference" in names else "file_path"
    return error_cls(**{key: file_path}, message=message, **fields)


def running_import(frame: Any = None) -> tuple[Any, Path | None]:
    """``(DagImportResult, bundle path)`` of the Python import executing the caller, from the call stack.

    Rule: walk up to Airflow's Python importer, whose locals hold ``result`` (a
    ``DagImportResult``) and the bundle. 3.3.2: ``PythonDagImporter.import_file(file_path,
    *, bundle_path, ...)``; 3.4.0b2: ``PythonDagImporter.import_definition(definition,
    bundle)``. The loader adds its per-YAML-file import errors there, so they reach the
    database keyed to each YAML file. Outside an Airflow import: ``(None, None)``.
    """
    _, _, result_cls = importer_api()
    frame = sys._getframe(1) if frame is None else frame
    for _ in range(40):
        if frame is None:
            break
        name = frame.f_code.co_name
        if name in ("import_file", "import_definition"):
            result = frame.f_locals.get("result")
            if isinstance(result, result_cls):
                bundle = frame.f_locals.get("bundle_path") or getattr(frame.f_locals.get("bundle"), "path", None)
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


def iflow_importer_configured() -> bool:
    """True when 3.4's ``[dag_processor] dag_importer_configs`` registers ``IflowYamlImporter``
    (then each YAML file is its own parse unit and the loader ``.py`` must load nothing)."""
    if airflow_version() < (3, 4):
        return False
    from airflow.configuration import conf

    configs = conf.getjson("dag_processor", "dag_importer_configs", fallback=None) or []
    paths = [c if isinstance(c, str) else (c or {}).get("classpath", "") for c in configs]
    return any(p.endswith("IflowYamlImporter") for p in paths)


def dag_import_result(rel: str, definition: Any = None) -> Any:
    """An empty ``DagImportResult`` (3.3.2: ``file_path=``; 3.4.0b2: ``definition=``)."""
    _, _, result_cls = importer_api()
    names = getattr(result_cls, "__dataclass_fields__", {})
    return result_cls(definition=definition) if "definition" in names else result_cls(file_path=rel)


def filesystem_definitions(root: Any, extensions: list[str]) -> Any:
    """3.4.0b2's discovery walk (``find_file_dag_definitions``: suffix and ``.airflowignore``)."""
    from airflow.sdk.importers.base import find_file_dag_definitions

    return find_file_dag_definitions(root, extensions)



def serve_logs_on(host: str) -> None:
    """Make this process's task-log servers listen on ``host`` instead of every interface.

    Airflow 3.3.2: ``airflow.utils.serve_logs.core.serve_logs`` calls
    ``uvicorn.run(..., host="")`` (all interfaces, no setting). The scheduler (LocalExecutor)
    and the triggerer start it with ``multiprocessing.Process`` (fork on Linux), so patching
    the module's ``uvicorn`` reference before the component starts reaches the child.
    Limit: with the ``spawn`` start method the child would not see the patch.
    """
    import types

    from airflow.utils.serve_logs import core

    real_run = core.uvicorn.run

    def run(app: str, **kwargs: object) -> object:
        kwargs["host"] = host
        return real_run(app, **kwargs)

    core.uvicorn = types.SimpleNamespace(run=run)


def standalone_components_via(make_argv: Callable[[Sequence[str]], list[str]]) -> None:
    """Have ``airflow standalone`` start each component as ``make_argv(command)``.

    Airflow 3.3.2: ``standalone_command.SubCommand.run`` starts ``["airflow", *self.command]``
    with stdout piped into the parent's output queue (the lines standalone prints with the
    component's name). This replaces that method with the same loop over another argv.
    """
    import subprocess

    from airflow.cli.commands import standalone_command

    def run(self: standalone_command.SubCommand) -> None:
        self.process = subprocess.Popen(make_argv(self.command), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, env=self.env)
        for line in self.process.stdout:
            self.parent.output_queue.append((self.name, line))

    standalone_command.SubCommand.run = run


def run_airflow_cli(argv: Sequence[str]) -> None:
    """``airflow ARGV...`` in this process (Airflow 3.3.2: ``airflow.__main__.main`` reads ``sys.argv``)."""
    import sys

    from airflow.__main__ import main

    sys.argv = ["airflow", *argv]
    main()


async def request_user(request: object) -> object:
    """The Airflow user of an api-server request, as every REST route resolves it; raises
    ``HTTPException(401)`` without credentials.

    Airflow 3.3.2: ``airflow.api_fastapi.core_api.security.get_user(request, _oauth_token,
    bearer_credentials)`` is a FastAPI dependency (Bearer header first, then the UI's
    ``_token`` cookie); ``bearer_scheme`` is the ``HTTPBearer(auto_error=False)`` it depends on.
    """
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    return await get_user(request, None, await bearer_scheme(request))


def login_url(next_url: str) -> str:
    """The auth manager's login page, coming back to ``next_url`` after login.

    Airflow 3.3.2: ``get_auth_manager().get_url_login(next_url=...)`` (SimpleAuthManager:
    ``/auth/login?next=...``; the login page only follows a ``next`` on the same host).
    """
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)

def in_task_process(frame: Any) -> bool:
    """True when the loader runs inside a task's startup parse (3.3.2 and 3.4.0b2:
    ``airflow/sdk/execution_time/task_runner.py``'s ``parse`` on the call stack)."""
    for _ in range(60):
        if frame is None:
            return False
        if frame.f_code.co_name == "parse" and frame.f_code.co_filename.endswith("execution_time/task_runner.py"):
            return True
        frame = frame.f_back
    return False
