"""One measurement, in a fresh process: Airflow's DagBag filling one folder.

``python _bag_child.py FOLDER OUT.json [--profile cprofile|pyinstrument PROFILE_OUT]``

Imports Airflow's DagBag first (not timed: every form pays it the same), then
times only ``DagBag(dag_folder=FOLDER, bundle_path=FOLDER)``. The parent times
the whole process as well. After the clock stops it summarises what was built
(DAG and task counts, import errors, and a per-DAG fingerprint of each task's
upstream ids, command, weight, retries, retry delay, backoff, timeout and owner) so the
parent can check that every form produced the same DAGs without errors.
"""

from __future__ import annotations

import json
import sys
import time

T_START = time.perf_counter()

from pathlib import Path  # noqa: E402

from airflow.dag_processing.dagbag import DagBag  # noqa: E402

T_IMPORTED = time.perf_counter()


def summarise(bag: DagBag) -> list:
    out = []
    for dag_id in sorted(bag.dags):
        dag = bag.dags[dag_id]
        tasks = []
        for t in dag.tasks:
            timeout = t.execution_timeout.total_seconds() if t.execution_timeout is not None else None
            command = getattr(t, "bash_command", None) or getattr(t, "command", None)
            tasks.append([t.task_id, sorted(t.upstream_task_ids), command, t.priority_weight, str(t.weight_rule),
                          t.retries, t.retry_delay.total_seconds(), float(t.retry_exponential_backoff or 0),
                          timeout, t.owner])
        out.append([dag_id, sorted(tasks)])
    return out


def main() -> None:
    folder = Path(sys.argv[1]).resolve()
    out_path = Path(sys.argv[2])
    profile = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--profile" else None
    profile_kind = sys.argv[4] if profile else None
    profile_out = sys.argv[5] if profile else None

    profiler = None
    if profile_kind == "cprofile":
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    elif profile_kind == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()

    c0, t0 = time.process_time(), time.perf_counter()
    bag = DagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="bench")
    t1, c1 = time.perf_counter(), time.process_time()

    if profile_kind == "cprofile":
        profiler.disable()
        profiler.dump_stats(profile_out)
    elif profile_kind == "pyinstrument":
        profiler.stop()
        Path(profile_out).write_text(profiler.output_text(unicode=False, color=False, show_all=False),
                                     encoding="utf-8")

    result = {
        "import_s": T_IMPORTED - T_START,
        "bag_s": t1 - t0,
        "bag_cpu_s": c1 - c0,
        "dags": len(bag.dags),
        "tasks": sum(len(d.tasks) for d in bag.dags.values()),
        "import_errors": {k: str(v)[:2000] for k, v in bag.import_errors.items()},
        "summary": summarise(bag),
    }
    out_path.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
