"""Unit tests of the command operator: shell safety, results, errors, timeouts, kill; run without an Airflow database."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from op_helpers import EXAMPLES, HOSTILE, FakeTI, ctx, marker_values  # noqa: F401

# --------------------------------------------------------------------------- command


def test_hostile_params_reach_the_shell_literally(tmp_path):
    """Params with $(), backticks, ;, newlines and quotes are data: bytes equal, nothing executed."""
    from iflow_airflow.operators.command import IflowCommandOperator

    marker, values = marker_values(tmp_path)
    for i, value in enumerate(values):
        out = tmp_path / f"out{i}"
        op = IflowCommandOperator(
            task_id=f"t{i}", command=f"printf '%s' \"$IFLOW_PARAM_x\" > {out}", cwd=str(tmp_path)
        )
        op.execute(ctx(params={"x": value}))
        assert out.read_bytes() == value.encode("utf-8"), value
    assert not marker.exists()


def test_hostile_upstream_results_reach_the_shell_literally(tmp_path):
    """Upstream results are as untrusted as params: they too stay data."""
    from iflow_airflow.operators.command import IflowCommandOperator

    marker, values = marker_values(tmp_path)
    for i, value in enumerate(values):
        out = tmp_path / f"res{i}"
        op = IflowCommandOperator(
            task_id=f"r{i}",
            command=f"printf '%s' \"$IFLOW_RESULT_up_stream\" > {out}",
            result_tasks=["up-stream"],
            cwd=str(tmp_path),
        )
        op.execute(ctx(xcoms={"up-stream": value}))
        assert out.read_bytes() == value.encode("utf-8"), value
    assert not marker.exists()


def test_command_is_never_jinja_rendered(tmp_path):
    """Rendering the operator's templates leaves ``{{ params.x }}`` alone: no run value becomes shell text."""
    from iflow_airflow.operators.command import IflowCommandOperator

    op = IflowCommandOperator(task_id="t", command="echo '{{ params.x }}'", cwd=str(tmp_path))
    op.render_template_fields({"params": {"x": "$(touch pwned)"}})
    assert op.command == "echo '{{ params.x }}'"
    assert op.execute(ctx(params={"x": "$(touch pwned)"})) == "{{ params.x }}"
    assert not (tmp_path / "pwned").exists()


def test_command_result_is_last_nonempty_stdout_line(tmp_path):
    """stderr chatter and trailing blank lines do not become the result."""
    from iflow_airflow.operators.command import IflowCommandOperator

    op = IflowCommandOperator(
        task_id="t", command="echo one; echo '  two  '; echo noise >&2; echo; echo '   '", cwd=str(tmp_path)
    )
    assert op.execute(ctx()) == "two"
    silent = IflowCommandOperator(task_id="s", command="true", cwd=str(tmp_path))
    assert silent.execute(ctx()) is None


def test_command_runs_in_a_temp_dir_by_default():
    """Without ``cwd`` the command runs in a fresh, removed-afterwards directory."""
    from iflow_airflow.operators.command import IflowCommandOperator

    where = IflowCommandOperator(task_id="t", command="pwd").execute(ctx())
    assert where != os.getcwd()
    assert "iflow-" in where and not os.path.exists(where)


def test_command_failure_names_exit_code_and_last_lines(tmp_path):
    """A failing command's error says how it failed and shows its last output lines."""
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.command import IflowCommandOperator

    op = IflowCommandOperator(
        task_id="t", command="for i in $(seq 1 30); do echo line$i; done; echo boom >&2; exit 7", cwd=str(tmp_path)
    )
    with pytest.raises(AirflowException) as err:
        op.execute(ctx())
    msg = str(err.value)
    assert "exit code 7" in msg
    assert "stderr | boom" in msg and "stdout | line30" in msg
    assert "line1\n" not in msg  # only the tail


def test_oversized_result_gets_a_clear_error(tmp_path):
    """A result too large for one environment variable fails with a hint instead of a bare E2BIG."""
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.command import IflowCommandOperator

    op = IflowCommandOperator(task_id="t", command="true", result_tasks=["big"], cwd=str(tmp_path))
    with pytest.raises(AirflowException) as err:
        op.execute(ctx(xcoms={"big": "x" * 200_000}))
    assert "IFLOW_RESULT_big" in str(err.value) and "128 KiB" in str(err.value)


def test_persist_result_false_disables_xcom():
    """state_persistence: false keeps no result, even if do_xcom_push is asked for."""
    from iflow_airflow.operators.agent import IflowAgentOperator
    from iflow_airflow.operators.callable import IflowCallableOperator
    from iflow_airflow.operators.command import IflowCommandOperator

    assert IflowCommandOperator(task_id="a", command="x", persist_result=False, do_xcom_push=True).do_xcom_push is False
    assert IflowCommandOperator(task_id="b", command="x").do_xcom_push is True
    assert IflowCallableOperator(task_id="c", target="m:f", persist_result=False).do_xcom_push is False
    assert IflowAgentOperator(task_id="d", prompt="p", persist_result=False).do_xcom_push is False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); treat it as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(path: Path, seconds: float = 10) -> None:
    end = time.monotonic() + seconds
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def test_execution_timeout_kills_the_whole_process_group(tmp_path):
    """AirflowTaskTimeout mid-run terminates the command and what it started (its group)."""
    from airflow.sdk.exceptions import AirflowTaskTimeout
    from airflow.sdk.execution_time.timeout import timeout

    from iflow_airflow.operators.command import IflowCommandOperator

    pidfile = tmp_path / "pid"
    op = IflowCommandOperator(task_id="t", command=f"sleep 60 & echo $! > {pidfile}; wait", cwd=str(tmp_path))
    started = time.monotonic()
    with pytest.raises(AirflowTaskTimeout):
        with timeout(2):
            op.execute(ctx())
    assert time.monotonic() - started < 20
    pid = int(pidfile.read_text())
    end = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert not _alive(pid)


def test_on_kill_terminates_a_running_command(tmp_path):
    """on_kill (SIGTERM to the task) stops the running command's process group."""
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.command import IflowCommandOperator

    pidfile = tmp_path / "pid"
    op = IflowCommandOperator(task_id="t", command=f"sleep 60 & echo $! > {pidfile}; wait", cwd=str(tmp_path))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(ctx())
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    _wait_for(pidfile)
    op.on_kill()
    worker.join(timeout=20)
    assert not worker.is_alive()
    assert errors and isinstance(errors[0], AirflowException) and "signal" in str(errors[0])
    assert not _alive(int(pidfile.read_text()))


