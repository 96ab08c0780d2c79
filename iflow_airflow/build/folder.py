"""The DAG loader's pass over a dags folder: every file on its own budget, and nothing lost.

``importer.load_workflows`` (called by ``dags/iflow_dags.py``) runs this in every
process that loads iflow DAGs: the dag-processor's parse, and each task process (which
re-parses the loader to find its DAG). For each YAML file, in order:

1. compile it under ``[iflow] file_parse_budget`` (``file_budget``), so a slow file
   becomes its own error and the others still build;
2. cross-file checks (``compiler.check_across_files``);
3. build its DAG under the budget; a valid file's bytes become its last good version
   (``last_good``);
4. an invalid file (or one over budget, or one that lost its ``workflow:`` mapping)
   whose last good version exists gets that version's DAG, with the banner and tag,
   unless ``[iflow] on_invalid = hide``. A healthy file's DAG always wins a name clash.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iflow_airflow.build import last_good, units
from iflow_airflow.build.budget import FileBudgetExceeded, SharedParse, limit
from iflow_airflow.compiler import (
    Compiled,
    DefaultsChain,
    check_across_files,
    compile_file,
    compile_source,
    iter_yaml_files,
)
from iflow_airflow.errors import Problem, WorkflowFileError
from iflow_airflow.settings import IflowSettings
from iflow_airflow.source.discovery import has_loader, unit_of
from iflow_airflow.source.name_owners import NameLedger

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """One file's result: its DAG (None: none), and the last good entry when that DAG is its last good version."""

    compiled: Compiled
    dag: Any = None
    last_good: last_good.Entry | None = None


def _problem(display: str, message: str, expected: str, code: str, path: tuple = ()) -> WorkflowFileError:
    return WorkflowFileError(display, [Problem(display, message, path, None, None, expected, code)])


def over_budget(display: str, exc: FileBudgetExceeded, stage: str) -> WorkflowFileError:
    """The located error of a file that used up its time (its own budget, or the shared parse's)."""
    if exc.shared:
        why = (f"the shared parse of all workflow files ran out of time ([core] dagbag_import_timeout, less a "
               f"reserve) while {stage} this file")
    else:
        why = f"{stage} this file took longer than its budget of {exc.seconds:.1f} s ([iflow] file_parse_budget)"
    return _problem(display, why, "a smaller workflow (split it into several files), or a larger "
                    "[iflow] file_parse_budget; `iflow-airflow validate` warns when a file nears it", "budget")


def build_checked(c: Compiled, settings: IflowSettings) -> Any:
    """Build one DAG; an unexpected failure becomes that file's error, never the loader's."""
    from iflow_airflow.build.dag import build_dag

    assert c.plan is not None
    try:
        dag = build_dag(c.plan, settings)
        dag.validate()
        return dag
    except Exception as exc:
        log.exception("building the DAG of %s failed", c.display)
        c.error = _problem(c.display, f"could not build the Airflow DAG: {type(exc).__name__}: {exc}",
                           "report this with the file; the traceback is in the dag-processor log", "build")
        c.plan = None
        return None


def _compile_all(unit: Path, top: Path, settings: IflowSettings, cache: Any,
                 shared: SharedParse) -> tuple[set[str], list]:
    """(every listed YAML file's display name, the iflow files compiled): the files of ``unit``'s
    parse unit, named relative to the tree root ``top``, each file under its budget."""
    chain = DefaultsChain(top, settings)
    listed: set[str] = set()
    results: list[Compiled] = []
    for path in iter_yaml_files(unit, own_unit=True):
        display = chain.display(path)
        listed.add(display)
        try:
            with limit(settings.file_parse_budget, shared):
                c = compile_file(path, root=top, settings=settings, chain=chain, cache=cache)
        except FileBudgetExceeded as exc:
            c = Compiled(path, display, error=over_budget(display, exc, "compiling"))
        if c is not None:
            results.append(c)
    return listed, results


def _left_on_purpose(path: Path, unit: Path, top: Path) -> bool:
    """A file that is gone, or still in this unit but no longer listed (ignored): its workflow goes away.

    A file that is now another unit's (a sub-folder got its own loader) keeps its last good version.
    """
    if not top.is_dir():
        return False  # the whole tree is unreachable (an unmounted volume): forget nothing
    return not path.exists() or unit_of(path, top).resolve() == unit.resolve()


def _lost_workflow(store: last_good.LastGoodStore | None, unit: Path, top: Path, results: list[Compiled],
                   listed: set[str], before: set[str] | None) -> list[Compiled]:
    """Files with a last good version that are no longer iflow files (errors); entries of this unit's gone files forgotten.

    ``before``: the files this unit listed at its last parse (``build.units``); a file
    listed then and not now was deleted, moved to another unit or ignored on purpose, and
    its workflow goes away. Without that record the root unit looks at every entry of no
    listed iflow file (the single-unit behaviour), a sub-unit at its listed files only.
    """
    if store is None:
        return []
    iflow = {c.display for c in results}
    lost = []
    if before is None and unit.resolve() == top.resolve():
        candidates = store.others(iflow)
    else:  # a sub-unit without a record looks only at its own listed files (not at every unit's entries)
        candidates = [e for e in (store.get(d) for d in sorted(((before or set()) | listed) - iflow)) if e is not None]
    for entry in candidates:
        if entry.display in listed:
            lost.append(Compiled(top / entry.display, entry.display, error=_problem(
                entry.display, "this file was an iflow workflow but has no top-level `workflow:` mapping any more",
                "a top-level `workflow:` mapping (or delete the file to remove the workflow)", "shape",
                ("workflow",))))
        elif _left_on_purpose(top / entry.display, unit, top):
            store.forget(entry.display)
    return lost


def _broken_since(c: Compiled, entry: last_good.Entry) -> float:
    try:
        mtime = os.stat(c.path).st_mtime
    except OSError:
        mtime = 0.0
    return mtime if mtime > entry.saved_at else time.time()


def _recover(c: Compiled, settings: IflowSettings, cache: Any, store: last_good.LastGoodStore,
             shared: SharedParse) -> Outcome:
    """The last good version's DAG of an invalid file, with the banner; none if there is none or it fails."""
    from iflow_airflow.build.dag import build_dag

    entry = store.get(c.display)
    if entry is None or c.error is None:
        return Outcome(c)
    try:
        with limit(settings.file_parse_budget, shared):
            plan = compile_source(entry.display, entry.text.encode("utf-8"), last_good.defaults_docs(entry),
                                  settings, cache)
            dag = build_dag(last_good.last_good_plan(plan, settings.on_invalid), settings)
            dag.validate()
    except (Exception, FileBudgetExceeded) as exc:  # e.g. a module it calls is no longer allowed
        log.warning("iflow: the last good version of %s cannot be used: %s", c.display, exc)
        return Outcome(c)
    entry = store.mark_broken(entry, _broken_since(c, entry))
    dag.description, banner = last_good.banner(entry, c.error, settings.on_invalid)
    dag.doc_md = f"{banner}\n\n{dag.doc_md}"
    return Outcome(c, dag, entry)


def _build_healthy(c: Compiled, settings: IflowSettings, store: Any, shared: SharedParse) -> Outcome:
    try:
        with limit(settings.file_parse_budget, shared):
            dag = build_checked(c, settings)
    except FileBudgetExceeded as exc:
        c.plan, c.error, dag = None, over_budget(c.display, exc, "building the DAG of"), None
    if dag is not None and c.error is None and store is not None:
        entry = last_good.entry_for(c)
        if entry is not None:
            store.remember(entry)
    return Outcome(c, dag)


def load_folder(root: Path, settings: IflowSettings, *, cache: Any = None,
                store: last_good.LastGoodStore | None = None, top: Path | None = None,
                record: bool = True) -> list[Outcome]:
    """Every iflow file of ``root``'s parse unit: its DAG (its own, or its last good version) and its error, if any.

    ``top``: the tree root the files are named from (``source.discovery.tree_root``);
    ``root`` itself when not given. The cross-file rules see the other units' files
    through their records (``build.units``); ``record``: write this unit's record and the
    name ledger (not in a task process, which may parse an older bundle version).
    """
    top = top or root
    shared = SharedParse()
    listed, results = _compile_all(root, top, settings, cache, shared)
    records = units.UnitRecords(getattr(cache, "folder", None), top, root)
    foreign = records.foreign() if records.folder is not None else None
    facts = [units.Facts.of(c.display, c.plan) for c in results if c.plan is not None]  # before the checks
    ledger = NameLedger(getattr(cache, "folder", None), top, read_only=not record)
    check_across_files(results, ledger, foreign=foreign)  # D14
    results += _lost_workflow(store, root, top, results, listed, records.previous_files())
    outcomes = [_build_healthy(c, settings, store, shared) if c.plan is not None else Outcome(c) for c in results]
    taken = {o.dag.dag_id for o in outcomes if o.dag is not None}
    for i, o in enumerate(outcomes):
        if o.dag is None and store is not None and settings.on_invalid != "hide":
            recovered = _recover(o.compiled, settings, cache, store, shared)
            if recovered.dag is not None and recovered.dag.dag_id not in taken:
                taken.add(recovered.dag.dag_id)
                outcomes[i] = recovered
    if record:
        records.save(listed, facts)
        records.drop_gone_units(top, has_loader)
    return outcomes


BUILD_CHECK_TASKS = 200  # smaller workflows build in a few milliseconds: `validate` does not time them
NEAR_BUDGET = 0.5  # share of the budget from which `validate` warns


def budget_check(path: Path, root: Path, settings: IflowSettings, chain: DefaultsChain,
                 explicit: bool = True) -> tuple[Compiled | None, list[str]]:
    """Compile one file as the loader does, timed under its budget; ``validate``'s warnings (D10).

    A file over the budget gets the loader's own error. A file that takes more than half
    of it (a loaded dag-processor is slower than a laptop) gets a warning. Workflows of
    ``BUILD_CHECK_TASKS`` tasks or more are also built (when Airflow is importable),
    because building a large DAG can cost far more than compiling it.
    """
    budget = settings.file_parse_budget
    t0 = time.perf_counter()
    try:
        with limit(budget):
            c = compile_file(path, root=root, settings=settings, chain=chain, explicit=explicit)
    except FileBudgetExceeded as exc:
        display = chain.display(path)
        return Compiled(path, display, error=over_budget(display, exc, "compiling")), []
    seconds = {"compiling it": time.perf_counter() - t0}
    if c is not None and c.plan is not None and len(c.plan.tasks) >= BUILD_CHECK_TASKS:
        try:
            import airflow.sdk  # noqa: F401 - only to know whether a build can be timed here
        except ImportError:
            pass
        else:
            t0 = time.perf_counter()
            try:
                with limit(budget):
                    build_checked(c, settings)
            except FileBudgetExceeded as exc:
                c.plan, c.error = None, over_budget(c.display, exc, "building the DAG of")
                return c, []
            seconds["building its DAG"] = time.perf_counter() - t0
    near = [f"warning: {stage} took {s:.1f} s, near its budget of {budget:g} s ([iflow] file_parse_budget); "
            "on a busy dag-processor it may go over and be an error (split the workflow, or raise the budget)"
            for stage, s in seconds.items() if budget and s >= NEAR_BUDGET * budget]
    return c, near


def load_one(path: Path, bundle_path: Path | None, settings: IflowSettings, *, cache: Any = None,
             store: last_good.LastGoodStore | None = None) -> Outcome | None:
    """One file as its own parse unit (Airflow 3.4's importer): the same rules as ``load_folder``.

    None when the file is not an iflow file. Cross-file checks need every file, so
    they are the folder loader's (and ``validate``'s) alone.
    """
    shared = SharedParse()
    chain = DefaultsChain(bundle_path, settings)
    try:
        with limit(settings.file_parse_budget, shared):
            c = compile_file(path, root=bundle_path, settings=settings, chain=chain, cache=cache)
    except FileBudgetExceeded as exc:
        c = Compiled(path, chain.display(path), error=over_budget(chain.display(path), exc, "compiling"))
    if c is None:
        return None
    outcome = _build_healthy(c, settings, store, shared) if c.plan is not None else Outcome(c)
    if outcome.dag is None and store is not None and settings.on_invalid != "hide":
        outcome = _recover(c, settings, cache, store, shared)
    return outcome
