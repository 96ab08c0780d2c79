"""Files -> plans: discovery, ``iflow.defaults.yaml`` inheritance, validation, planning.

This is the front end of the compiler and imports nothing from Airflow (the CLI
and most tests run it directly). ``compile_folder`` also makes the checks that
need every file at once: two files that give one resource different sizes, and
two files that claim the same workflow name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from iflow_airflow.errors import PathPart, Problem, WorkflowFileError
from iflow_airflow.plan.ir import WorkflowPlan
from iflow_airflow.settings import IflowSettings
from iflow_airflow.source import reader as yaml_source
from iflow_airflow.source.defaults import DefaultsChain, deep_merge  # noqa: F401  (part of the driver's API)
from iflow_airflow.source.discovery import iter_yaml_files
from iflow_airflow.source.name_owners import NameLedger

if TYPE_CHECKING:
    from iflow_airflow.plan.facts import Foreign

if TYPE_CHECKING:  # models/validate/plan are imported on first compile: a cached plan needs none of them
    from iflow_airflow.plan.cache import PlanCache
    from iflow_airflow.schema.models import WorkflowFile



@dataclass
class Compiled:
    """One iflow file's outcome: a plan, or every problem it has."""

    path: Path
    display: str
    plan: WorkflowPlan | None = None
    error: WorkflowFileError | None = None
    locate: Any = None  # key path -> (file, line, column), through the defaults chain
    raw: bytes | None = None  # the file's bytes as read (the last good store keeps them)
    defaults: Sequence[Any] = ()  # its defaults chain as read (YamlDocument or WorkflowFileError)

    @property
    def ok(self) -> bool:
        """Valid with no problem at all (a file in a resource-size conflict has a plan *and* an error)."""
        return self.plan is not None and self.error is None


def _locator(own: yaml_source.YamlDocument, defaults: Sequence[yaml_source.YamlDocument]):
    """path -> (file, line, column): the file's own value, else the nearest default that set it."""
    def locate(path: Sequence[PathPart]) -> tuple[str, int | None, int | None]:
        found = own.locate(path)
        if found and found[2]:
            return own.file, found[0], found[1]
        for doc in reversed(defaults):
            hit = doc.locate(path)
            if hit and hit[2]:
                return doc.file, hit[0], hit[1]
        if found:
            return own.file, found[0], found[1]
        return own.file, None, None
    return locate


def _task_lines(doc: yaml_source.YamlDocument) -> dict[int, int]:
    tasks = (doc.data.get("workflow") or {}).get("tasks") if isinstance(doc.data, dict) else None
    lines: dict[int, int] = {}
    if isinstance(tasks, list):
        for i in range(len(tasks)):
            hit = doc.locate(("workflow", "tasks", i))
            if hit:
                lines[i] = hit[0]
    return lines


def compile_document(doc: yaml_source.YamlDocument, defaults: Sequence[yaml_source.YamlDocument | WorkflowFileError],
                     settings: IflowSettings, located: Compiled | None = None) -> WorkflowPlan:
    """Merge, validate and plan one parsed workflow file (``located`` receives the locator)."""
    from iflow_airflow.plan.planner import make_plan
    from iflow_airflow.schema.validate import repaired, validate

    broken = [d for d in defaults if isinstance(d, WorkflowFileError)]
    if broken:
        problems = [p for b in broken for p in b.problems]
        raise WorkflowFileError(doc.file, [Problem(p.file, p.message, p.path,
                                                   p.line, p.column, p.expected, "defaults") for p in problems])
    good = [d for d in defaults if isinstance(d, yaml_source.YamlDocument)]
    if not isinstance(doc.data, dict) or not isinstance(doc.data.get("workflow"), dict):
        got = type(doc.data.get("workflow")).__name__ if isinstance(doc.data, dict) else type(doc.data).__name__
        raise WorkflowFileError(doc.file, [Problem(doc.file, f"`workflow` must be a mapping (got {got})",
                                                   ("workflow",), *(doc.locate(("workflow",)) or (1, 1))[:2],
                                                   "workflow: {name: ..., tasks: [...]}", "shape")])
    data: dict[str, Any] = {}
    for d in good:
        if isinstance(d.data, dict):
            data = deep_merge(data, d.data)
    data = deep_merge(data, doc.data)
    locate = _locator(doc, good)
    if located is not None:
        located.locate = locate
    plan_args = dict(file=doc.file, source_text=doc.text, locate=locate, settings=settings,
                     task_lines=_task_lines(doc))
    try:
        model: WorkflowFile = validate(data, doc.file, locate)
    except WorkflowFileError as schema_errors:
        rest = repaired(data, schema_errors.problems)
        if rest is not None:  # go on checking what the schema errors did not touch
            try:
                make_plan(rest, **plan_args)
            except WorkflowFileError as more:
                raise WorkflowFileError(doc.file, schema_errors.problems + more.problems) from None
        raise
    return make_plan(model, **plan_args)


def _cached_plan(cache: PlanCache, display: str, raw: bytes, defaults: Sequence[Any],
                 settings: IflowSettings) -> tuple[str | None, WorkflowPlan | None]:
    """(key, plan) from the plan cache; any failure of the cache is a miss."""
    try:
        key = cache.key(display, raw, defaults, settings)
        return key, (cache.get(key) if key else None)
    except Exception:
        return None, None


def _deferred_locator(display: str, text: str, defaults: Sequence[Any]):
    """The locator ``compile_document`` would have made, built only if a cross-file check needs it."""
    made: list = []

    def locate(path: Sequence[PathPart]) -> tuple[str, int | None, int | None]:
        if not made:
            good = [d for d in defaults if isinstance(d, yaml_source.YamlDocument)]
            made.append(_locator(yaml_source.parse(display, text), good))
        return made[0](path)
    return locate


def compile_file(path: Path, *, root: Path | None = None, settings: IflowSettings | None = None,
                 chain: DefaultsChain | None = None, explicit: bool = False,
                 cache: PlanCache | None = None) -> Compiled | None:
    """Compile one file; None when it is not an iflow file (and ``explicit`` is false).

    With a ``cache`` (the DAG loader's ``[iflow] plan_cache``) the plan of an unchanged
    file is reused, and a newly compiled one is stored (see ``plan_cache``).
    """
    settings = settings or IflowSettings.from_config()
    chain = chain or DefaultsChain(root, settings)
    display = chain.display(path)
    compiled = Compiled(path, display)
    try:
        raw = yaml_source.read_limited(path, settings.max_file_bytes, display)
    except WorkflowFileError as exc:
        too_large = exc.problems[0].code == "too_large"
        if too_large and not explicit and not yaml_source.looks_like_workflow(
                yaml_source.read_head(path, settings.max_file_bytes)):
            return None  # some other, big, YAML file: not ours to judge
        compiled.error = exc
        return compiled
    if not explicit and not yaml_source.looks_like_workflow(raw):
        return None
    compiled.raw = raw
    key, defaults = None, None
    try:
        if cache is not None:
            defaults = compiled.defaults = chain.for_file(path)
            key, cached = _cached_plan(cache, display, raw, defaults, settings)
            if cached is not None:
                compiled.plan = cached
                compiled.locate = _deferred_locator(display, cached.source_text, defaults)
                return compiled
        doc = yaml_source.parse(display, yaml_source.decode(display, raw, settings.max_file_bytes))
        if not explicit and not (isinstance(doc.data, dict) and "workflow" in doc.data
                                 and isinstance(doc.data["workflow"], (dict, type(None)))):
            return None  # SPEC §1: only a top-level `workflow:` mapping makes an iflow file
        if doc.data is None:
            raise WorkflowFileError(display, [Problem(display, "the file is empty", (), None, None,
                                                      "a mapping with a `workflow:` block", "empty")])
        compiled.defaults = chain.for_file(path) if defaults is None else defaults
        compiled.plan = compile_document(doc, compiled.defaults, settings, located=compiled)
        if key is not None:
            cache.put(key, compiled.plan)
    except WorkflowFileError as exc:
        compiled.error = exc
    except Exception as exc:  # a bug of ours must not take other workflows down: it is this file's error
        compiled.error = WorkflowFileError(display, [Problem(
            display, f"internal error while reading this file: {type(exc).__name__}: {exc}", (), None, None,
            "please report it with the file", "internal")])
    return compiled


def _workflow_links(names: dict[str, list[Compiled]], extra: dict[int, list[Problem]], lose_dag: set[int],
                    context: Iterable[Compiled] = (), foreign: Foreign | None = None) -> None:
    """``run_workflow`` names, params and cycles across the folder (plan/links.py), added to ``extra``.

    ``context``: more compiled files whose workflows may be named (``validate`` of single files);
    ``foreign``: the other parse units' workflows (``build.units``).
    """
    from iflow_airflow.plan import links

    plans = {c.plan.dag_id: c.plan for c in context if c.plan is not None}
    plans.update({dag_id: owners[0].plan for dag_id, owners in names.items() if owners[0].plan is not None})
    if not any(isinstance(t.action, links.RunWorkflowAction) for p in plans.values() for t in p.tasks):
        return
    others = {f.name: links.Linked(f.params or {}, f.runs) for f in (foreign.facts if foreign else ())
              if f.name not in plans}
    for lp in links.check(plans, others):
        owners = names.get(lp.dag_id)
        if not owners:
            continue  # a context file: reported when it is checked itself
        c = owners[0]
        extra.setdefault(id(c), []).append(Problem(c.display, lp.message, lp.path, None, None, lp.expected, lp.code))
        if lp.drops_dag:
            lose_dag.add(id(c))


def check_across_files(results: list[Compiled], ledger: NameLedger | None = None,
                       context: Iterable[Compiled] = (), foreign: Foreign | None = None) -> None:
    """Cross-file rules, reported on every file involved: resource sizes, workflow names, ``run_workflow`` links.

    A workflow whose name another file already owns gets no DAG; the owner is the
    file that had it before (``source.name_owners``: the ledger, else the oldest file).
    The workflows of a ``run_workflow`` cycle get no DAG either (plan/links.py). Files that
    give one resource different sizes keep their DAGs (a new file must not take
    running workflows down); the conflict is an error on every file involved,
    and the pool takes the smallest declared size until they agree
    (``pools.desired_pools``). ``foreign``: the other parse units' files (``build.units``),
    judged with these but never given problems here (their own unit's parse does that).
    """
    names: dict[str, list[Compiled]] = {}
    for r in results:
        if r.plan is not None:
            names.setdefault(r.plan.dag_id, []).append(r)
    extra: dict[int, list[Problem]] = {}
    lose_dag: set[int] = set()
    _resource_sizes(results, extra, foreign)
    _workflow_names(names, ledger or NameLedger(None, Path(".")), extra, lose_dag, foreign)
    _workflow_links(names, extra, lose_dag, context, foreign)
    for r in results:
        if id(r) in extra:
            _apply(r, extra[id(r)], lose=id(r) in lose_dag)


def _resource_sizes(results: list[Compiled], extra: dict[int, list[Problem]], foreign: Foreign | None = None) -> None:
    """One resource declared with different sizes: an error on every (local) file that declares it."""
    declared: dict[str, dict[tuple[int, int | None], list[Any]]] = {}
    for r in results:
        for res in (r.plan.resources.values() if r.plan is not None else ()):
            declared.setdefault(res.name, {}).setdefault((res.slots, res.max_slots), []).append(r)
    local = set(declared)
    for f in foreign.facts if foreign else ():
        for name, slots, max_slots in f.resources:
            if name in local:
                declared[name].setdefault((slots, max_slots), []).append(f)
    for name, sizes in declared.items():
        if len(sizes) < 2:
            continue
        ordered = sorted(sizes.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1]))
        summary = "; ".join(f"slots={s}{f', max_slots={m}' if m else ''} in "
                            + ", ".join(sorted({c.display for c in cs})) for (s, m), cs in ordered)
        for c in (c for cs in sizes.values() for c in cs if isinstance(c, Compiled)):
            extra.setdefault(id(c), []).append(Problem(
                c.display, f"resource {name!r} is declared with different sizes: {summary}",
                ("resources", name), None, None, "the same slots (and max_slots) in every file, "
                "or declare it once in an iflow.defaults.yaml", "resource_conflict"))


def _workflow_names(names: dict[str, list[Compiled]], ledger: NameLedger, extra: dict[int, list[Problem]],
                    lose_dag: set[int], foreign: Foreign | None = None) -> None:
    """A name two files claim stays with its owner (the ledger, else the oldest file); the other loses its DAG.

    A file of another unit (``foreign``) can own a name; only this unit's files lose theirs here.
    """
    kept: dict[str, str] = {}
    others = foreign.by_name() if foreign else {}
    for dag_id, local in names.items():
        claimants: list[Any] = list(local)
        claimants += [ForeignClaim(ledger.root / f.display, f.display) for f in others.get(dag_id, ())
                      if f.display not in {c.display for c in local} and (ledger.root / f.display).exists()]
        owner = ledger.owner(dag_id, claimants) if len(claimants) > 1 else claimants[0]
        kept[dag_id] = owner.display
        for c in local:
            if c is owner:
                continue
            lose_dag.add(id(c))
            extra.setdefault(id(c), []).append(Problem(
                c.display, f"workflow name {dag_id!r} is already used by {owner.display}", ("workflow", "name"),
                None, None, "a unique workflow.name", "duplicate_workflow"))
    ledger.save(kept, scope={c.display for cs in names.values() for c in cs} if foreign is not None else None)


@dataclass(frozen=True)
class ForeignClaim:
    """A file of another parse unit that claims a workflow name (``source.name_owners.Claimant``)."""

    path: Path
    display: str


def _apply(r: Compiled, problems: list[Problem], *, lose: bool) -> None:
    """The cross-file problems become ``r``'s error, located in its own text or its defaults file."""
    assert r.plan is not None
    if r.locate is not None:
        for i, prob in enumerate(problems):
            where, line, col = r.locate(prob.path)
            problems[i] = Problem(where, prob.message, prob.path, line, col, prob.expected, prob.code)
    r.error = WorkflowFileError(r.display, problems)
    if lose:
        r.plan = None


def compile_source(display: str, raw: bytes, defaults: Sequence[yaml_source.YamlDocument],
                   settings: IflowSettings, cache: PlanCache | None = None) -> WorkflowPlan:
    """The plan of a file's bytes as once read (the last good store's copy), through the plan cache."""
    key, plan = _cached_plan(cache, display, raw, defaults, settings) if cache is not None else (None, None)
    if plan is None:
        doc = yaml_source.parse(display, yaml_source.decode(display, raw, settings.max_file_bytes))
        plan = compile_document(doc, defaults, settings)
        if key is not None and cache is not None:
            cache.put(key, plan)
    return plan


Memo = dict  # str(path) -> ((mtime_ns, size), Compiled before the cross-file checks)


def compile_folder(root: Path, settings: IflowSettings | None = None,
                   cache: PlanCache | None = None, memo: Memo | None = None) -> list[Compiled]:
    """Every iflow file under ``root`` (dags folder), with cross-file checks applied.

    ``memo`` (the keeper's and the iflow page's scanner keep one): a file whose mtime and
    size are unchanged is not read or compiled again, so a scan after one edit costs one
    compile plus the cross-file checks, not one per file. The caller clears it when a
    defaults or ignore file changed (they change files whose own stamp did not).
    """
    settings = settings or IflowSettings.from_config()
    chain = DefaultsChain(root, settings)
    results = []
    seen: set[str] = set()
    for p in iter_yaml_files(root):
        c = _compile_memo(p, root, settings, chain, cache, memo, seen) if memo is not None else \
            compile_file(p, root=root, settings=settings, chain=chain, cache=cache)
        if c is not None:
            results.append(c)
    for gone in set(memo or ()) - seen:
        del memo[gone]  # type: ignore[union-attr]
    check_across_files(results, NameLedger(cache.folder if cache is not None else None, root))
    return results


def _compile_memo(p: Path, root: Path, settings: IflowSettings, chain: DefaultsChain, cache: PlanCache | None,
                  memo: Memo, seen: set[str]) -> Compiled | None:
    """One file through the memo: a shallow copy of the remembered result (the checks replace its fields)."""
    import copy
    import dataclasses
    import os

    key = str(p)
    seen.add(key)
    try:
        st = os.stat(p)
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    hit = memo.get(key)
    if hit is None or stamp is None or hit[0] != stamp:
        c = compile_file(p, root=root, settings=settings, chain=chain, cache=cache)
        memo[key] = hit = (stamp, dataclasses.replace(c, raw=None) if c is not None else None)
    return copy.copy(hit[1]) if hit[1] is not None else None
