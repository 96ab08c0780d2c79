"""Coordination in dag.test(): results kept or not (state_persistence) and synchronous waits that poll.

Everything is real: the YAML files are loaded by the iflow loader from the dags
folder; the three runs share ONE dag.test subprocess.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from datetime import datetime

import pytest

pytestmark = pytest.mark.airflow

LOADER = '"""iflow loader: one Airflow DAG per workflow file here."""\n' \
         "from iflow_airflow.importer import load_workflows\n\nload_workflows(globals())\n"
ALLOW = {"AIRFLOW__IFLOW__ALLOWED_MODULES": "iflow_airflow.examples"}

PERSIST = """
    coordination: {{state_persistence: {persist}}}
    orchestration: {{retry_attempts: 0}}
    workflow:
      name: coord_persist_{name}
      tasks:
        - id: produce
          command: echo first; echo "the answer"
        - id: number
          callable: iflow_airflow.examples.callables:add
          args: [40, 2]
        - id: consume_cmd
          dependencies: [produce, number]
          env: {{OUT: "{out}"}}
          command: printf '%s|%s|%s\\n' "$IFLOW_RESULT_produce" "$IFLOW_RESULT_number" "$(env | grep -c '^IFLOW_RESULT_')" | tee "$OUT"
        - id: consume_py
          dependencies: [produce, number]
          callable: iflow_airflow.examples.callables:summarize
          kwargs: {{text: py}}
    """

SYNC_WAIT = """
    coordination: {{sync_mode: synchronous, communication_timeout: 30}}
    orchestration: {{retry_attempts: 0}}
    workflow:
      name: coord_sync_wait
      tasks:
        - id: create_later
          env: {{TARGET: "{target}"}}
          command: (sleep 3; date -u +%s.%N > "$TARGET") > /dev/null 2>&1 < /dev/null &
        - id: wait_file
          dependencies: [create_later]
          wait: {{file: "{target}", poke_interval: 0.2}}
    """
SYNC_TIMEOUT = """
    coordination: {{sync_mode: synchronous, communication_timeout: 2}}
    orchestration: {{retry_attempts: 0}}
    workflow:
      name: coord_sync_timeout
      tasks:
        - id: never
          wait: {{file: "{never}", poke_interval: 0.2}}
    """


@pytest.fixture(scope="module")
def coordination(airflow_env, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coordination")
    paths = {"on": tmp / "on.txt", "off": tmp / "off.txt", "target": tmp / "created_at",
             "never": tmp / "never_created"}
    folder = airflow_env.dags_folder / "coordination"
    airflow_env.write_file("coordination/iflow_dags.py", LOADER)
    airflow_env.write_file("coordination/persist_on.yaml",
                           textwrap.dedent(PERSIST.format(persist="true", name="on", out=paths["on"])))
    airflow_env.write_file("coordination/persist_off.yaml",
                           textwrap.dedent(PERSIST.format(persist="false", name="off", out=paths["off"])))
    airflow_env.write_file("coordination/sync_wait.yaml", textwrap.dedent(SYNC_WAIT.format(target=paths["target"])))
    airflow_env.write_file("coordination/sync_timeout.yaml",
                           textwrap.dedent(SYNC_TIMEOUT.format(never=paths["never"])))
    try:
        result = airflow_env.run_dag_tests(
            [{"dag_id": d} for d in ("coord_persist_on", "coord_persist_off", "coord_sync_wait",
                                     "coord_sync_timeout")], extra_env=ALLOW)
    finally:  # files needing ALLOW must not stay for other tests' DagBags
        shutil.rmtree(folder, ignore_errors=True)
    runs = {r["dag_id"]: r for r in result["runs"]}
    for r in runs.values():
        assert not r["error"], f"{r['error']}\n{result['output'][-6000:]}"
    return {"runs": runs, "output": result["output"], "paths": paths}


def states(run):
    return {t: v["state"] for t, v in run["tasks"].items()}


def test_results_reach_dependants_when_state_persistence_is_on(coordination):
    run = coordination["runs"]["coord_persist_on"]
    assert run["state"] == "success"
    assert run["xcom"] == {
        "produce": "the answer",
        "number": 42,
        "consume_cmd": "the answer|42|2",
        "consume_py": "py; number=42; produce=the answer",
    }
    assert coordination["paths"]["on"].read_text() == "the answer|42|2\n"


def test_nothing_is_kept_when_state_persistence_is_off(coordination):
    run = coordination["runs"]["coord_persist_off"]
    assert states(run) == {"produce": "success", "number": "success", "consume_cmd": "success",
                           "consume_py": "success"}
    assert run["xcom"] == {}  # do_xcom_push=False on every task: not even the callables' return values
    assert coordination["paths"]["off"].read_text() == "||0\n"  # no IFLOW_RESULT_* at all


def _log_time(output: str, text: str) -> float:
    line = next(ln for ln in output.splitlines() if text in ln)
    stamp = re.search(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line).group(1)
    return datetime.fromisoformat(stamp + "+00:00").timestamp()


def test_synchronous_wait_polls_until_the_file_exists(coordination):
    run, out, paths = coordination["runs"]["coord_sync_wait"], coordination["output"], coordination["paths"]
    assert states(run) == {"create_later": "success", "wait_file": "success"}
    target = paths["target"]
    started = _log_time(out, f"waiting for file {target} (up to 30 s)")
    met = _log_time(out, f"wait for file {target}: condition met")
    created = float(target.read_text())
    assert started < created < met  # the task was waiting (in the worker, polling) before the file came
    assert f"wait for file {target}: deferring" not in out


def test_synchronous_wait_times_out_with_the_clear_error(coordination):
    run, out = coordination["runs"]["coord_sync_timeout"], coordination["output"]
    assert run["tasks"]["never"] == {"state": "failed", "try_number": 1}
    never = coordination["paths"]["never"]
    assert f"wait for file {never} timed out after 2 s (coordination.communication_timeout)" in out
    assert f"wait for file {never}: deferring" not in out
