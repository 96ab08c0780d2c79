"""Real ``dag.test()`` runs of small DAGs built directly from the iflow operators.

All DAGs are written into the session's dags folder and run in two subprocess
batches (Airflow's import and bundle sync cost seconds per process): one with
the demo callables allowed and a fake agent configured, one with a missing
agent. Each test then checks its own run.
"""

from __future__ import annotations

import shlex
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.airflow

HOSTILE = "a b\n$(touch {m}) `touch {m}`; touch {m} && echo '\"' ${{HOME}} \\ 完"

HEADER = """\
from datetime import datetime, timedelta, timezone
from airflow.sdk import DAG
from iflow_airflow.operators import (
    IflowAgentOperator,
    IflowCallableOperator,
    IflowCheckpointOperator,
    IflowCommandOperator,
    IflowWaitOperator,
)
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
"""


def dag_source(body: str, **values: Any) -> str:
    """A DAG file: the common imports, then ``body`` with ``{name}`` filled by ``repr(value)``."""
    return HEADER + textwrap.dedent(body).format(**{k: repr(v) for k, v in values.items()})


FAKE_AGENT = """\
#!/usr/bin/env python3
import os, sys
print("agent got %d args" % (len(sys.argv) - 1))
print("prompt: " + sys.argv[-1])
print("plan: " + os.environ.get("IFLOW_RESULT_plan", "<none>"))
"""


class Scenario:
    """Paths shared by the DAG sources and the assertions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.marker = root / "pwned"
        self.hostile = HOSTILE.format(m=self.marker)
        self.out_param = root / "out_param"
        self.out_result = root / "out_result"
        self.ready = root / "ready.flag"
        self.never = root / "never.flag"
        self.later = root / "later.flag"
        self.pidfile = root / "sleep.pid"
        self.fail_marker = root / "fail_once.marker"
        self.agent = root / "fake-agent"


def write_dags(env, s: Scenario) -> None:
    env.write_file(
        "ops_command_chain.py",
        dag_source(
            """
            with DAG("ops_command_chain", schedule=None, start_date=START, params={{"x": "default"}}):
                produce = IflowCommandOperator(
                    task_id="produce",
                    command="printf '%s' \\"$IFLOW_PARAM_x\\" > " + {out_param} + "; echo noise; echo 'result of produce'",
                )
                consume = IflowCommandOperator(
                    task_id="consume",
                    command="printf '%s' \\"$IFLOW_RESULT_produce\\" > " + {out_result}
                    + "; echo \\"$IFLOW_WORKFLOW/$IFLOW_TASK_ID/$IFLOW_TRY_NUMBER\\"",
                    result_tasks=["produce"],
                )
                hidden = IflowCommandOperator(task_id="hidden", command="echo secret", persist_result=False)
                produce >> consume >> hidden
            """,
            out_param=shlex.quote(str(s.out_param)),
            out_result=shlex.quote(str(s.out_result)),
        ),
    )
    env.write_file(
        "ops_callable.py",
        dag_source(
            """
            with DAG("ops_callable", schedule=None, start_date=START):
                count = IflowCommandOperator(task_id="count", command="echo 42")
                summary = IflowCallableOperator(
                    task_id="summary",
                    target="iflow_airflow.examples.callables:summarize",
                    kwargs={{"text": "total"}},
                    result_tasks=["count"],
                )
                flaky = IflowCallableOperator(
                    task_id="flaky",
                    target="iflow_airflow.examples.callables:fail_once",
                    args=[{fail_marker}],
                    retries=1,
                    retry_delay=timedelta(seconds=0),
                )
                count >> summary >> flaky
            with DAG("ops_callable_denied", schedule=None, start_date=START):
                IflowCallableOperator(task_id="denied", target="os:getcwd", retries=2)
            """,
            fail_marker=str(s.fail_marker),
        ),
    )
    env.write_file(
        "ops_agent.py",
        dag_source(
            """
            with DAG("ops_agent", schedule=None, start_date=START):
                plan = IflowCommandOperator(task_id="plan", command="echo 'step one'")
                ask = IflowAgentOperator(task_id="ask", prompt={prompt}, result_tasks=["plan"])
                plan >> ask
            """,
            prompt=f"write the code; $(touch {s.marker})",
        ),
    )
    env.write_file(
        "ops_checkpoint.py",
        dag_source(
            """
            with DAG("ops_checkpoint", schedule=None, start_date=START):
                a = IflowCommandOperator(task_id="a", command="echo a")
                gate = IflowCheckpointOperator(task_id="gate")
                b = IflowCommandOperator(task_id="b", command="echo b")
                a >> gate >> b
            """
        ),
    )
    env.write_file(
        "ops_wait.py",
        dag_source(
            """
            with DAG("ops_wait", schedule=None, start_date=START):
                IflowWaitOperator(task_id="exists", file={ready}, timeout_seconds=10, poke_interval=0.2)
                IflowWaitOperator(task_id="times_out", file={never}, timeout_seconds=1, poke_interval=0.2)
            with DAG("ops_wait_deferred", schedule=None, start_date=START):
                later = IflowCommandOperator(
                    task_id="touch_later", command="(sleep 4; touch " + {later_q} + ") >/dev/null 2>&1 &"
                )
                soon = IflowWaitOperator(
                    task_id="soon", file={later}, timeout_seconds=60, poke_interval=0.2, deferrable=True
                )
                later >> soon
                IflowWaitOperator(
                    task_id="deferred_timeout", file={never}, timeout_seconds=1, poke_interval=0.2, deferrable=True
                )
            """,
            ready=str(s.ready),
            never=str(s.never),
            later=str(s.later),
            later_q=shlex.quote(str(s.later)),
        ),
    )
    env.write_file(
        "ops_external.py",
        dag_source(
            """
            with DAG("ops_ext_source", schedule=None, start_date=START):
                IflowCommandOperator(task_id="done", command="echo done")
            with DAG("ops_ext_waiter", schedule=None, start_date=START):
                IflowWaitOperator(
                    task_id="sees_done", workflow="ops_ext_source", task="done", timeout_seconds=20, poke_interval=0.5
                )
                IflowWaitOperator(
                    task_id="sees_done_deferrable",
                    workflow="ops_ext_source",
                    task="done",
                    timeout_seconds=20,
                    deferrable=True,
                )
                IflowWaitOperator(
                    task_id="unknown_task", workflow="ops_ext_source", task="nope", timeout_seconds=1, poke_interval=0.2
                )
                IflowWaitOperator(
                    task_id="never_ran_deferrable",
                    workflow="ops_ext_never_ran",
                    task="x",
                    timeout_seconds=1,
                    poke_interval=0.2,
                    deferrable=True,
                )
            """
        ),
    )
    env.write_file(
        "ops_timeout.py",
        dag_source(
            """
            with DAG("ops_timeout", schedule=None, start_date=START):
                IflowCommandOperator(
                    task_id="slow",
                    command="sleep 120 & echo $! > " + {pidfile} + "; wait",
                    execution_timeout=timedelta(seconds=3),
                )
            """,
            pidfile=shlex.quote(str(s.pidfile)),
        ),
    )


@pytest.fixture(scope="module")
def scenario(airflow_env, tmp_path_factory) -> Scenario:
    s = Scenario(tmp_path_factory.mktemp("ops_dagtest"))
    s.ready.write_text("ok")
    s.agent.write_text(FAKE_AGENT)
    s.agent.chmod(0o755)
    write_dags(airflow_env, s)
    return s


@pytest.fixture(scope="module")
def runs(airflow_env, scenario) -> dict[str, dict[str, Any]]:
    """Every DAG of this module run once with the demo callables allowed and the fake agent set."""
    result = airflow_env.run_dag_tests(
        [
            {"dag_id": "ops_command_chain", "conf": {"x": scenario.hostile}},
            {"dag_id": "ops_callable"},
            {"dag_id": "ops_callable_denied"},
            {"dag_id": "ops_agent"},
            {"dag_id": "ops_checkpoint"},
            {"dag_id": "ops_wait"},
            {"dag_id": "ops_wait_deferred"},
            {"dag_id": "ops_ext_source"},
            {"dag_id": "ops_ext_waiter"},
            {"dag_id": "ops_timeout"},
        ],
        extra_env={
            "AIRFLOW__IFLOW__ALLOWED_MODULES": "iflow_airflow.examples",
            "AIRFLOW__IFLOW__AGENT_COMMAND": shlex.quote(str(scenario.agent)),
        },
        timeout=900,
    )
    assert result["import_errors"] == {}
    by_id = {r["dag_id"]: r for r in result["runs"]}
    for run in by_id.values():
        assert run["error"] is None, run["error"]
    by_id["__output__"] = {"text": result["output"]}
    return by_id


def states(run: dict[str, Any]) -> dict[str, str]:
    return {task: info["state"] for task, info in run["tasks"].items()}


def test_command_result_flows_downstream_and_params_stay_literal(runs, scenario):
    """conf -> IFLOW_PARAM_x and produce's last line -> IFLOW_RESULT_produce, byte for byte, never executed."""
    run = runs["ops_command_chain"]
    assert run["state"] == "success"
    assert scenario.out_param.read_bytes() == scenario.hostile.encode("utf-8")
    assert scenario.out_result.read_text(encoding="utf-8") == "result of produce"
    assert run["xcom"]["produce"] == "result of produce"
    assert run["xcom"]["consume"] == "ops_command_chain/consume/1"
    assert "hidden" not in run["xcom"]  # persist_result=False
    assert not scenario.marker.exists()


def test_callable_gets_upstream_results_and_retries(runs):
    """A callable sees {task: result} of its upstream; fail_once succeeds on its second try."""
    run = runs["ops_callable"]
    assert states(run) == {"count": "success", "summary": "success", "flaky": "success"}
    assert run["xcom"]["summary"] == "total; count=42"
    assert run["tasks"]["flaky"]["try_number"] == 2


def test_disallowed_callable_fails_without_retrying(runs):
    """The run-time allow-list check fails the task at once, despite retries, naming the setting."""
    run = runs["ops_callable_denied"]
    assert run["state"] == "failed"
    assert run["tasks"]["denied"] == {"state": "failed", "try_number": 1}
    assert "AIRFLOW__IFLOW__ALLOWED_MODULES" in runs["__output__"]["text"]


def test_agent_answer_is_the_result(runs, scenario):
    """The configured agent gets the prompt as one argument and the plan via IFLOW_RESULT_plan."""
    run = runs["ops_agent"]
    assert run["state"] == "success"
    assert run["xcom"]["ask"] == (
        f"agent got 1 args\nprompt: write the code; $(touch {scenario.marker})\nplan: step one"
    )
    assert not scenario.marker.exists()


def test_checkpoint_executes_and_logs(runs):
    run = runs["ops_checkpoint"]
    assert states(run) == {"a": "success", "gate": "success", "b": "success"}
    assert "checkpoint gate reached (all upstream tasks succeeded)" in runs["__output__"]["text"]


def test_wait_for_file_and_timeout(runs, scenario):
    """A present file ends the wait; a missing one fails after communication_timeout with a clear error."""
    run = runs["ops_wait"]
    assert states(run) == {"exists": "success", "times_out": "failed"}
    assert (
        f"wait for file {scenario.never} timed out after 1 s (coordination.communication_timeout)"
        in runs["__output__"]["text"]
    )


def test_deferred_waits_go_through_the_trigger(runs, scenario):
    """Deferrable waits defer (dag.test runs the trigger inline) and come back with success or the timeout."""
    run = runs["ops_wait_deferred"]
    assert states(run) == {"touch_later": "success", "soon": "success", "deferred_timeout": "failed"}
    out = runs["__output__"]["text"]
    assert f"wait for file {scenario.later}: deferring" in out
    assert f"wait for file {scenario.never}: deferring" in out


def test_wait_for_task_of_another_workflow(runs):
    """Latest run of ops_ext_source has 'done' in success; an unknown task or workflow times out."""
    assert runs["ops_ext_source"]["state"] == "success"
    run = runs["ops_ext_waiter"]
    assert states(run) == {
        "sees_done": "success",
        "sees_done_deferrable": "success",
        "unknown_task": "failed",
        "never_ran_deferrable": "failed",
    }
    out = runs["__output__"]["text"]
    assert "wait for task x of workflow ops_ext_never_ran timed out after 1 s" in out


def test_execution_timeout_kills_the_command(runs, scenario):
    """task_timeout -> AirflowTaskTimeout -> the command's whole process group is gone."""
    run = runs["ops_timeout"]
    assert states(run) == {"slow": "failed"}
    pid = int(scenario.pidfile.read_text())
    end = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < end:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_missing_agent_gives_the_clear_error(airflow_env, scenario):
    """With the agent command pointing nowhere the task fails with install/config guidance."""
    run = airflow_env.run_dag_test(
        "ops_agent", extra_env={"AIRFLOW__IFLOW__AGENT_COMMAND": "/nonexistent/bin/iflow -p"}
    )
    assert states(run) == {"plan": "success", "ask": "failed"}
    assert "the agent command was not found: '/nonexistent/bin/iflow'" in run["output"]
    assert "npm i -g @iflow-ai/iflow-cli" in run["output"]
