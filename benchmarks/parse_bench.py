#!/usr/bin/env python
"""Parse speed: iflow YAML vs dag-factory YAML vs hand-written Python DAGs, side by side.

For each size (FILES x TASKS) the same workflows are written in every form
(see ``workloads.py``), then Airflow's ``DagBag`` fills each folder in a fresh
process (``_bag_child.py``), rounds alternating between the forms
(A, B, C, A, B, C, ...). Reported: the median DagBag construction time (wall
and CPU) after Airflow itself is imported, the median whole-process wall time,
and each form's ratio to hand-written Python. Every measurement is checked:
the expected number of DAGs and tasks, no import errors, and the same
per-task values (dependencies, command, weight, retries, delays, timeout) in
every form.

iflow is measured twice when its plan cache is available: ``iflow`` with the
cache turned off (every file compiled: the first parse after a change, and what
the CLI does), and ``iflow (cached)`` with a warm ``[iflow] plan_cache`` (what
the dag-processor does on its periodic re-parses of unchanged files).

Examples::

    python benchmarks/parse_bench.py                       # all sizes, 5 rounds
    python benchmarks/parse_bench.py --quick               # 100x6 only, 3 rounds
    python benchmarks/parse_bench.py --sizes 100x6 --rounds 9 --json out.json
    python benchmarks/parse_bench.py --profile iflow:100x6 # cProfile of one iflow parse

Needs the ``bench`` extra (``pip install -e '.[bench]'``: dag-factory 1.1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads  # noqa: E402

DEFAULT_SIZES = "100x6,1x2000,500x10"
QUICK_SIZES = "100x6"
ALL_FORMS = ("python", "dagfactory", "iflow", "iflow-cached")
LABELS = {"python": "hand-written Python", "dagfactory": "dag-factory 1.1.0", "iflow": "iflow (no plan cache)",
          "iflow-cached": "iflow (plan cache warm)", "iflow-baseline": "iflow, baseline code (--baseline)"}
ONLY_CHOICES = ("parse",)
IMPORT_TIMEOUT_S = 900  # hooks for later measurements (listener overhead, dashboard timing)


@dataclass
class Size:
    files: int
    tasks: int

    @property
    def label(self) -> str:
        return f"{self.files}x{self.tasks}"

    @classmethod
    def parse(cls, text: str) -> Size:
        files, _, tasks = text.lower().partition("x")
        return cls(int(files), int(tasks))


@dataclass
class Samples:
    bag: list[float] = field(default_factory=list)
    bag_cpu: list[float] = field(default_factory=list)
    process: list[float] = field(default_factory=list)
    airflow_import: list[float] = field(default_factory=list)


def plan_cache_supported() -> bool:
    try:
        import iflow_airflow.plan.cache  # noqa: F401
    except ImportError:
        return False
    return True


def snapshot_package(workdir: Path) -> Path:
    """A frozen copy of the installed ``iflow_airflow`` package: edits made while the benchmark runs
    (and the plan cache key, which covers every source file) cannot change what is measured."""
    import iflow_airflow

    src = Path(iflow_airflow.__file__).resolve().parent
    dest = workdir / "iflow_snapshot"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest / "iflow_airflow", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def child_env(home: Path, form: str, cache_dir: Path, baseline: str | None = None,
              snapshot: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # dag-factory: never phone home from a benchmark
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "SCARF_NO_ANALYTICS": "1",
        "PYTHONHASHSEED": "0",
        # Airflow's default 30 s per-file import timeout would cut the slowest form short on a busy machine
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": str(IMPORT_TIMEOUT_S),
    })
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # all forms may use .pyc files, as a dag-processor does
    if form == "iflow-cached":
        env["AIRFLOW__IFLOW__PLAN_CACHE"] = str(cache_dir)
    else:
        env["AIRFLOW__IFLOW__PLAN_CACHE"] = "off"
    if form == "iflow-baseline":  # another copy of the package (e.g. before a change) shadows the installed one
        env["PYTHONPATH"] = os.pathsep.join(p for p in (baseline, env.get("PYTHONPATH")) if p)
    elif form.startswith("iflow") and snapshot is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(snapshot), env.get("PYTHONPATH")) if p)
    return env


def run_child(folder: Path, env: dict[str, str], out: Path, profile: tuple[str, Path] | None = None) -> dict:
    cmd = [sys.executable, str(HERE / "_bag_child.py"), str(folder), str(out)]
    if profile:
        cmd += ["--profile", profile[0], str(profile[1])]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"child failed on {folder} ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(out.read_text(encoding="utf-8"))
    result["process_s"] = wall
    return result


def check(result: dict, form: str, size: Size, expected: list) -> None:
    """The bag must hold every DAG, every task, no import error, and the very same task values."""
    where = f"{LABELS[form]} {size.label}"
    assert not result["import_errors"], f"{where}: import errors: {result['import_errors']}"
    assert result["dags"] == size.files, f"{where}: {result['dags']} DAGs, expected {size.files}"
    assert result["tasks"] == size.files * size.tasks, f"{where}: {result['tasks']} tasks"
    got = result["summary"]
    if got != expected:
        for g, e in zip(got, expected):
            if g != e:
                raise AssertionError(f"{where}: DAG {g[0]} differs from the expected DAG {e[0]}:\n"
                                     f"  got      {g[1][:3]}\n  expected {e[1][:3]}")
        raise AssertionError(f"{where}: DAGs differ from the expected ones")


def prepare(workdir: Path, size: Size, forms: list[str]) -> tuple[dict[str, Path], list]:
    expected = workloads.expected_tasks(size.tasks)
    folders = {}
    for form in forms:
        base = "iflow" if form.startswith("iflow") else form
        folder = workdir / f"{base}_{size.label}"
        if not folder.exists():
            workloads.write_form(base, folder, size.files, size.tasks, expected)
        folders[form] = folder
    return folders, workloads.expected_fingerprint(size.files, size.tasks, expected)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def machine() -> dict[str, str]:
    from machine import cpu_model

    cpu = cpu_model()
    versions = {}
    for dist in ("apache-airflow", "apache-airflow-task-sdk", "dag-factory", "iflow-airflow", "pydantic", "PyYAML"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            versions[dist] = "not installed"
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_at_start": load, **versions}


def run(args: argparse.Namespace) -> dict:
    sizes = [Size.parse(s) for s in args.sizes.split(",") if s.strip()]
    forms = [f for f in args.forms.split(",") if f]
    if args.baseline and "iflow-baseline" not in forms:
        forms.append("iflow-baseline")
    for f in forms:
        if f not in ALL_FORMS and not (f == "iflow-baseline" and args.baseline):
            raise SystemExit(f"unknown form {f!r}; choose from {', '.join(ALL_FORMS)}")
    if "iflow-cached" in forms and not plan_cache_supported():
        forms.remove("iflow-cached")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="iflow-parse-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "airflow_home"
    (home / "dags").mkdir(parents=True, exist_ok=True)
    cache_dir = workdir / "plan_cache"
    snapshot = Path(args.package) if args.package else None if args.no_snapshot else snapshot_package(workdir)
    info = machine()
    report: dict = {"machine": info, "rounds": args.rounds, "warmup": args.warmup, "sizes": {},
                    "package": str(snapshot) if snapshot else "installed", "baseline": args.baseline,
                    "command": " ".join([Path(sys.executable).name, *sys.argv])}
    print(f"# workdir {workdir}; {info['nproc']} x {info['cpu']}; Python {info['python']}; "
          f"Airflow {info['apache-airflow']}; dag-factory {info['dag-factory']}; load {info['loadavg_at_start']}",
          file=sys.stderr)
    try:
        for size in sizes:
            folders, expected = prepare(workdir, size, forms)
            samples = {f: Samples() for f in forms}
            out = workdir / "result.json"
            for r in range(-args.warmup, args.rounds):
                order = forms if (r % 2 == 0 or not args.reverse_odd) else list(reversed(forms))
                for form in order:
                    env = child_env(home, form, cache_dir, args.baseline, snapshot)
                    res = run_child(folders[form], env, out)
                    check(res, form, size, expected)
                    if r < 0:
                        continue
                    s = samples[form]
                    s.bag.append(res["bag_s"])
                    s.bag_cpu.append(res["bag_cpu_s"])
                    s.process.append(res["process_s"])
                    s.airflow_import.append(res["import_s"])
                print(f"  {size.label} round {r + 1 if r >= 0 else 'warm-up'}: "
                      + ", ".join(f"{f} {samples[f].bag[-1]:.3f}s" if r >= 0 else f for f in order),
                      file=sys.stderr)
            base = samples.get("python")
            rows = {}
            for form in forms:
                s = samples[form]
                row = {
                    "label": LABELS[form],
                    "bag_s": median(s.bag), "bag_cpu_s": median(s.bag_cpu), "process_s": median(s.process),
                    "airflow_import_s": median(s.airflow_import),
                    "bag_s_min": min(s.bag), "bag_s_max": max(s.bag), "bag_cpu_s_min": min(s.bag_cpu),
                    "samples_bag_s": s.bag, "samples_process_s": s.process,
                    "samples_bag_cpu_s": s.bag_cpu,
                }
                if base is not None:
                    row["ratio_bag"] = row["bag_s"] / median(base.bag)
                    row["ratio_bag_cpu"] = row["bag_cpu_s"] / median(base.bag_cpu)
                    row["ratio_process"] = row["process_s"] / median(base.process)
                    row["ratio_bag_cpu_min"] = row["bag_cpu_s_min"] / min(base.bag_cpu)
                rows[form] = row
            report["sizes"][size.label] = {
                "files": size.files, "tasks_per_file": size.tasks, "bytes": {
                    f: workloads.tree_size(folders[f]) for f in forms}, "forms": rows}
            print(table(report, sizes=[size.label]).split("\n\n")[0], file=sys.stderr)
            if args.json and args.json != "-":  # partial results survive a later failure
                Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def table(report: dict, sizes: list[str] | None = None) -> str:
    lines = [
        "| size (files x tasks) | form | DagBag wall s (median) | x hand-written | DagBag CPU s (median) "
        "| x hand-written | DagBag CPU s (best) | x hand-written | whole process s (median) | x hand-written |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, entry in report["sizes"].items():
        if sizes is not None and label not in sizes:
            continue
        for _form, row in entry["forms"].items():
            lines.append(
                f"| {label} | {row['label']} | {row['bag_s']:.3f} | {row.get('ratio_bag', float('nan')):.2f} "
                f"| {row['bag_cpu_s']:.3f} | {row.get('ratio_bag_cpu', float('nan')):.2f} "
                f"| {row['bag_cpu_s_min']:.3f} | {row.get('ratio_bag_cpu_min', float('nan')):.2f} "
                f"| {row['process_s']:.2f} | {row.get('ratio_process', float('nan')):.2f} |")
    m = report["machine"]
    lines += ["", f"Machine: {m['nproc']} x {m['cpu']}, Python {m['python']}, Airflow {m['apache-airflow']} "
                  f"(task SDK {m['apache-airflow-task-sdk']}), dag-factory {m['dag-factory']}; "
                  f"{report['rounds']} alternating rounds after {report['warmup']} warm-up, medians; "
                  f"DagBag import timeout raised to {IMPORT_TIMEOUT_S} s; "
                  f"load average at start {m['loadavg_at_start']}."]
    return "\n".join(lines)


def profile(args: argparse.Namespace) -> None:
    form, _, size_text = args.profile.partition(":")
    size = Size.parse(size_text or "100x6")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="iflow-parse-bench-"))
    home = workdir / "airflow_home"
    (home / "dags").mkdir(parents=True, exist_ok=True)
    folders, expected = prepare(workdir, size, [form])
    snapshot = Path(args.package) if args.package else None if args.no_snapshot else snapshot_package(workdir)
    env = child_env(home, form, workdir / "plan_cache", args.baseline, snapshot)
    out = workdir / "result.json"
    run_child(folders[form], env, out)  # warm-up (pyc files, plan cache)
    prof = workdir / f"{form}_{size.label}.prof"
    res = run_child(folders[form], env, out, ("cprofile", prof))
    check(res, form, size, expected)
    import pstats

    stats = pstats.Stats(str(prof))
    stats.sort_stats(args.profile_sort).print_stats(args.profile_lines)
    print(f"profile written to {prof}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=None, help="measured rounds per form (default 5; --quick 3)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (pyc files, page cache)")
    ap.add_argument("--sizes", default=None, help=f"FILESxTASKS,... (default {DEFAULT_SIZES})")
    ap.add_argument("--forms", default=",".join(ALL_FORMS), help="which forms, in round order")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_SIZES} only, 3 rounds")
    ap.add_argument("--only", choices=ONLY_CHOICES, default="parse",
                    help="which measurement (only `parse` so far; listener/dashboard timing hook in here)")
    ap.add_argument("--json", metavar="PATH", help="write the full report as JSON ('-': stdout)")
    ap.add_argument("--workdir", help="keep generated folders here (reused when present)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    ap.add_argument("--reverse-odd", action="store_true", help="reverse the form order on odd rounds")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also measure iflow with the iflow_airflow package found in DIR (e.g. a copy from "
                         "before a change), as form iflow-baseline")
    ap.add_argument("--no-snapshot", action="store_true",
                    help="measure the installed iflow_airflow in place (default: a frozen copy taken at start)")
    ap.add_argument("--package", metavar="DIR",
                    help="measure the iflow_airflow package found in DIR (instead of a snapshot of the installed one)")
    ap.add_argument("--profile", metavar="FORM:FILESxTASKS", help="cProfile one parse instead of benchmarking")
    ap.add_argument("--profile-sort", default="cumulative")
    ap.add_argument("--profile-lines", type=int, default=40)
    args = ap.parse_args(argv)
    if args.profile:
        profile(args)
        return 0
    args.sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    args.rounds = args.rounds or (3 if args.quick else 5)
    report = run(args)
    text = table(report)
    print(text, file=sys.stderr if args.json == "-" else sys.stdout)
    report["table_md"] = text
    if args.json == "-":
        json.dump(report, sys.stdout, indent=1)
        print()
    elif args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
