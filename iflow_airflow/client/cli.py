"""``iflow-airflow``: validate, explain and describe workflow files without running Airflow;
run and resume deployed workflows on a running Airflow (REST API v2)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from iflow_airflow import settings as iflow_settings
from iflow_airflow.build.folder import budget_check
from iflow_airflow.compiler import (
    Compiled,
    DefaultsChain,
    check_across_files,
    compile_file,
    compile_folder,
    iter_yaml_files,
)
from iflow_airflow.errors import plural
from iflow_airflow.plan import describe, queues
from iflow_airflow.plan.ir import WorkflowPlan
from iflow_airflow.settings import IflowSettings

LOADER_NAME = "iflow_dags.py"


def find_root(path: Path) -> Path:
    """The folder Airflow loads this file from: the nearest ancestor holding the loader, else its own folder."""
    start = path.resolve() if path.is_dir() else path.resolve().parent
    for folder in (start, *start.parents):
        if (folder / LOADER_NAME).is_file():
            return folder
    return start


def settings_for(path: Path) -> IflowSettings:
    """The settings of the deployment ``path`` belongs to: its dags folder (see ``find_root``)
    decides which project ``config/iflow.cfg`` is read, as the deployment itself would."""
    iflow_settings.use_dags_folder(find_root(path))
    return IflowSettings.from_config()


def _summary(c: Compiled) -> str:
    if c.error is not None:
        n = len(c.error.problems)
        return f"FAIL {c.display}: {plural(n, 'problem')}"
    assert c.plan is not None
    p = c.plan
    return (f"OK   {c.display}: workflow {p.dag_id}, {plural(len(p.tasks), 'task')}, "
            f"{plural(len(p.resources), 'resource')}, {plural(len(p.conflicts), 'conflict')}")


def _files(path: Path, settings: IflowSettings) -> list[tuple[Path, Path, DefaultsChain, bool]]:
    """(file, root, defaults chain, named explicitly) for a file or every YAML file of a folder."""
    if path.is_dir():
        chain = DefaultsChain(path, settings)
        return [(p, path, chain, False) for p in iter_yaml_files(path)]
    root = find_root(path)
    return [(path, root, DefaultsChain(root, settings), True)]


def _context(singles: list[Compiled], roots: dict[Path, IflowSettings]) -> list[Compiled]:
    """The other files of the folders of single files given to ``validate``, when one of them has a
    ``run_workflow`` (the workflows it names live there)."""
    if not any(t.action.kind == "run_workflow" for c in singles if c.plan for t in c.plan.tasks):
        return []
    given = {c.path.resolve() for c in singles}
    others = [(p, s) for root, s in sorted(roots.items()) for p in iter_yaml_files(root) if p.resolve() not in given]
    compiled = (compile_file(p, root=find_root(p), settings=s) for p, s in others)
    return [c for c in compiled if c is not None]  # not checked across files: their own problems are not ours


def _report(c: Compiled, warnings: list[str], *, quiet: bool) -> None:
    """One file's lines: warnings, every problem (or its conflicts and notes), then the summary."""
    for line in warnings:
        print(f"  {line}")
    if c.error is not None:
        for problem in c.error.problems:
            print(f"  {problem}")
    elif c.plan is not None and not quiet:
        for conflict in c.plan.conflicts:
            print(f"  conflict on {conflict.resource}: {conflict.first} before {conflict.second} ({conflict.reason})")
        for note in c.plan.notes:
            print(f"  note: {note}")
    print(_summary(c))


def cmd_validate(args: argparse.Namespace) -> int:
    """Every problem of every file; each file compiled (and, if large, built) under the loader's budget (D10).

    Settings are those of the deployment each path belongs to (``settings_for``).
    """
    results: list[Compiled] = []
    warnings: dict[int, list[str]] = {}
    singles: list[Compiled] = []
    roots: dict[Path, IflowSettings] = {}
    for raw in args.paths:
        path = Path(raw)
        if not path.exists():
            print(f"FAIL {raw}: no such file or folder", file=sys.stderr)
            return 1
        settings = settings_for(path)
        for file, root, chain, explicit in _files(path, settings):
            c, near = budget_check(file, root, settings, chain, explicit)
            if c is not None:
                results.append(c)
                warnings[id(c)] = near
                if explicit:
                    singles.append(c)
                    roots[root] = settings
    check_across_files(results, context=_context(singles, roots))
    for c in results:
        _report(c, warnings.get(id(c), []), quiet=args.quiet)
    bad = sum(1 for c in results if c.error is not None)
    print(f"{plural(len(results), 'file')} checked, {bad} with problems")
    return 1 if bad else 0


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_plan(plan: WorkflowPlan) -> str:
    s = plan.settings
    out = [
        f"workflow {plan.dag_id}  ({plan.source_path})",
        f"  schedule: {plan.schedule.kind}{'' if plan.schedule.value is None else ' ' + str(plan.schedule.value)}"
        f"  start: {plan.start_date.isoformat()}  catchup: {plan.catchup}  enabled: {plan.enabled}",
        f"  mode: {s.mode}  strategy: {s.strategy}  levels: {s.priority_levels}  sync: {s.sync_mode}  "
        f"conflicts: {s.conflict_resolution}  max_active_tasks: {plan.max_active_tasks}",
        "",
    ]
    rows = [["task", "level", "weight", "crit.path", "pool x slots", "queue", "retries", "delay", "timeout",
             "action", "upstream"]]
    for f in map(describe.task_facts, plan.tasks):
        rows.append([f["task"], f["level"], f["weight"], f["critical_path"], f["pool"], f["queue"],
                     f["retries"].split()[0], f["delay"], f["timeout"], f["action"], f["upstream"]])
    out.append(_table(rows))
    decomposition = describe.decomposition(plan)
    if decomposition:
        out += ["", "decomposition:", *(f"  {line}" for line in decomposition)]
    if plan.resources:
        out += ["", "resources:"]
        for r in plan.resources.values():
            out.append(f"  {r.name} -> pool {r.pool}: {plural(r.slots, 'slot')}"
                       f"{f' (auto-scales to {r.max_slots})' if r.max_slots else ''}")
    if s.strategy != "priority_based":
        loads = queues.queue_loads({t.task_id: t.queue for t in plan.tasks}, {t.task_id: t.cost for t in plan.tasks})
        out += ["", "queue loads (sum of cost): " + ", ".join(f"{q}={v:g}" for q, v in loads.items())]
    out += ["", f"conflicts: {len(plan.conflicts)}"]
    for c in plan.conflicts:
        out.append(f"  {c.resource}: {c.first} before {c.second} ({c.reason})")
    for note in plan.notes:
        out.append(f"note: {note}")
    return "\n".join(out)


def cmd_explain(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"{args.file}: no such file", file=sys.stderr)
        return 1
    settings = settings_for(path)
    root = find_root(path)
    c = compile_file(path, root=root, settings=settings, chain=DefaultsChain(root, settings), explicit=True)
    assert c is not None
    if c.error is not None:
        print(c.error.render())
        return 1
    assert c.plan is not None
    print(render_plan(c.plan))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """The JSON Schema of a workflow file (``--defaults``: of an iflow.defaults.yaml) on stdout;
    ``--path``: where the installed package keeps it (for a ``$schema=`` line)."""
    from iflow_airflow.schema import published

    name = "defaults" if args.defaults else "workflow"
    if args.path:
        print(published.packaged_path(name))
    else:
        sys.stdout.write(published.render(published.build(name)))
    return 0


def cmd_sync_pools(args: argparse.Namespace) -> int:
    """Create/resize the pools of every valid workflow now (an init step; the scheduler keeps them after)."""
    from iflow_airflow.runtime.pools import desired_pools, sync_pools

    if args.folder:
        folder = Path(args.folder)
    else:
        from airflow.configuration import conf

        folder = Path(conf.get("core", "dags_folder"))
    desired = desired_pools(compile_folder(folder, settings_for(folder)))
    changes = sync_pools(desired)
    for line in changes:
        print(line)
    print(f"{plural(len(desired), 'iflow pool')} in {folder}, {len(changes)} changed")
    return 0


def _conf(pairs: Sequence[str]) -> dict[str, object]:
    """``key=value`` pairs -> run conf; a value that is valid JSON (number, true, list ...) is taken as JSON."""
    conf: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--conf {pair!r}: expected key=value")
        try:
            conf[key] = json.loads(value)
        except ValueError:
            conf[key] = value
    return conf


def _client(args: argparse.Namespace):
    from iflow_airflow.client.rest import AirflowRestClient

    return AirflowRestClient.from_env(args.url, args.user, args.password)


def _wait(client, dag_id: str, run_id: str, timeout: float | None) -> int:
    from iflow_airflow.client.progress import ProgressLine

    bar = ProgressLine()
    try:
        run = client.wait_for_run(dag_id, run_id, timeout=timeout, on_change=bar.update)
    finally:
        bar.finish()
    print(f"run {run_id} of {dag_id}: {run['state']}")
    return 0 if run["state"] == "success" else 1


def cmd_run(args: argparse.Namespace) -> int:
    """Trigger WORKFLOW on a running Airflow (REST API v2); with --wait, show progress and exit 0/1."""
    from iflow_airflow.client.rest import AirflowApiError

    try:
        conf = _conf(args.conf)
        with _client(args) as client:
            client.require_dag(args.workflow)
            run_id = client.trigger(args.workflow, conf)
            print(f"triggered {args.workflow}: run {run_id}")
            return _wait(client, args.workflow, run_id, args.timeout) if args.wait else 0
    except (AirflowApiError, ValueError) as exc:
        print(f"iflow-airflow run: {exc}", file=sys.stderr)
        return 2


def cmd_resume(args: argparse.Namespace) -> int:
    """Re-run the failed tasks of a run (default: the latest failed run) and what depends on them."""
    from iflow_airflow.client.rest import AirflowApiError

    try:
        with _client(args) as client:
            run_id, cleared = client.resume(args.workflow, args.run_id)
            print(f"resuming run {run_id} of {args.workflow}: re-running {', '.join(cleared)}")
            return _wait(client, args.workflow, run_id, args.timeout) if args.wait else 0
    except AirflowApiError as exc:
        print(f"iflow-airflow resume: {exc}", file=sys.stderr)
        return 2


def _remote_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--url", help="Airflow's address (default: $IFLOW_AIRFLOW_URL)")
    cmd.add_argument("--user", help="user name (default: $IFLOW_AIRFLOW_USER)")
    cmd.add_argument("--password", help="password (default: $IFLOW_AIRFLOW_PASSWORD)")
    cmd.add_argument("--wait", action="store_true",
                     help="show progress until the run ends; exit 0 on success, 1 on failure")
    cmd.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iflow-airflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check workflow files or folders; exit 1 if any has problems")
    v.add_argument("paths", nargs="+")
    v.add_argument("-q", "--quiet", action="store_true", help="only problems and summaries")
    v.set_defaults(func=cmd_validate)
    e = sub.add_parser("explain", help="show the plan: levels, weights, pools, queues, retries, conflicts")
    e.add_argument("file")
    e.set_defaults(func=cmd_explain)
    s = sub.add_parser("schema", help="print the JSON Schema of the workflow file format")
    s.add_argument("--defaults", action="store_true", help="the schema of an iflow.defaults.yaml instead")
    s.add_argument("--path", action="store_true", help="print where the installed package keeps the schema file")
    s.set_defaults(func=cmd_schema)
    p = sub.add_parser("sync-pools", help="create and resize the pools of every workflow in the dags folder")
    p.add_argument("folder", nargs="?", help="dags folder (default: [core] dags_folder)")
    p.set_defaults(func=cmd_sync_pools)
    r = sub.add_parser("run", help="trigger a deployed workflow on a running Airflow (REST API v2)")
    r.add_argument("workflow", help="the workflow name (DAG id)")
    r.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="a run parameter (repeatable)")
    _remote_options(r)
    r.set_defaults(func=cmd_run)
    m = sub.add_parser("resume", help="re-run the failed tasks of a run and what depends on them")
    m.add_argument("workflow", help="the workflow name (DAG id)")
    m.add_argument("run_id", nargs="?", help="the run (default: the latest failed run)")
    _remote_options(m)
    m.set_defaults(func=cmd_resume)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
