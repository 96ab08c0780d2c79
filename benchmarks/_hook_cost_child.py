"""Child of listener_overhead.py: the time the iflow hooks themselves take, on a deployment's real rows.

Runs with the deployment's environment (AIRFLOW_HOME, dags folder, SQLite file), after
its runs finished. Prints one JSON line:

* ``task_first_ms``: ``on_task_instance_running`` + ``on_task_instance_success`` for one
  real task instance, the first time in a fresh process (a task process calls them once,
  so this is the cost per task, lazy imports included);
* ``task_steady_us``: the same pair again, per call, averaged;
* ``run_first_ms`` / ``run_steady_ms``: ``on_dag_run_running`` + ``on_dag_run_success`` for
  one real finished run (the success hook reads the run's task instances from the
  database, as it does in the scheduler).

Like a task process, it first parses the dags folder with Airflow's DagBag and the
deployment's (warm) plan cache, so the same modules are loaded when the hooks run
first (a hook that imports something heavy on its first call shows here); the parse
is not timed.
"""

from __future__ import annotations

import json
import sys
import time

# What a task process should not have to import for its hooks (a warm plan cache needs none of it).
HEAVY = ("iflow_airflow.schema.models", "iflow_airflow.extensions", "iflow_airflow.compiler")


def loaded() -> list[str]:
    return sorted(m for m in HEAVY if m in sys.modules)


def main() -> int:
    dag_id = sys.argv[1]
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 200

    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from iflow_airflow.build import registry

    folder = conf.get("core", "dags_folder")
    bag = DagBag(dag_folder=folder, bundle_path=folder)
    if dag_id not in bag.dags or registry.plan_for(dag_id) is None:
        raise SystemExit(f"{dag_id} was not built from the dags folder: {bag.import_errors}")
    heavy = loaded()

    from iflow_airflow.runtime.listeners import dagrun_events, task_events

    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.state == "success")
                              .order_by(DagRun.start_date.desc()).limit(1)).one()
        ti = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                        TaskInstance.run_id == run.run_id).limit(1)).one()
        n_tis = len(session.scalars(select(TaskInstance.task_id).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)).all())

        def task_pair() -> None:
            task_events.on_task_instance_running(previous_state=None, task_instance=ti)
            task_events.on_task_instance_success(previous_state=None, task_instance=ti)

        def run_pair() -> None:
            dagrun_events.on_dag_run_running(dag_run=run, msg="")
            dagrun_events.on_dag_run_success(dag_run=run, msg="success")

        out = {"tasks_in_run": n_tis, "loaded_after_parse": heavy}
        for name, fn, n in (("task", task_pair, repeat), ("run", run_pair, max(5, repeat // 20))):
            t0 = time.perf_counter()
            fn()
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            steady = (time.perf_counter() - t0) / n
            out[f"{name}_first_ms"] = round(first * 1000, 3)
            if name == "task":
                out["task_steady_us"] = round(steady * 1e6, 1)
            else:
                out["run_steady_ms"] = round(steady * 1000, 3)
        out["loaded_after_hooks"] = loaded()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
