"""Unit tests of the operators, run without an Airflow database.

Operators are executed directly with a small fake context (params + a fake
task instance that answers ``xcom_pull``), so the shell-safety, environment,
result and error rules are checked exactly and fast.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from iflow_airflow.allowlist import ModuleNotAllowedError
from iflow_airflow.operators.run_env import build_env, env_name, to_env_value
from iflow_airflow.allowlist import CallableTargetError, check_callable_target, resolve_callable
from iflow_airflow.settings import IflowSettings

EXAMPLES = IflowSettings(allowed_modules=("iflow_airflow.examples",))

HOSTILE = [
    "$(touch {marker})",
    "`touch {marker}`",
    "; touch {marker}",
    "a && touch {marker} || touch {marker}",
    "line1\ntouch {marker}\n",
    "'\"'; touch {marker}; echo '",
    "$HOME ${PATH} \\$ \\\\ * ? [a] ~ !! %s %d",
    "ünïcödé ✓ 完整的",
]


class FakeTI:
    """Stands in for the task SDK's RuntimeTaskInstance: identity plus ``xcom_pull``."""

    def __init__(self, xcoms: dict[str, Any] | None = None, **identity: Any) -> None:
        self.xcoms = xcoms or {}
        self.pulled: list[tuple[Any, str]] = []
        self.dag_id = identity.get("dag_id", "wf")
        self.run_id = identity.get("run_id", "manual__2026-01-01")
        self.task_id = identity.get("task_id", "t")
        self.try_number = identity.get("try_number", 1)

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        self.pulled.append((task_ids, key))
        return self.xcoms.get(task_ids)


def ctx(params: dict[str, Any] | None = None, xcoms: dict[str, Any] | None = None, **identity: Any) -> dict:
    return {"params": dict(params or {}), "ti": FakeTI(xcoms, **identity)}


def marker_values(tmp_path: Path) -> tuple[Path, list[str]]:
    marker = tmp_path / "pwned"
    return marker, [v.replace("{marker}", str(marker)) for v in HOSTILE]


# --------------------------------------------------------------------------- run_env


def test_env_name_replaces_every_unsafe_character():
    """Names become valid, predictable variable names: only [A-Za-z0-9_] survive."""
    assert env_name("IFLOW_RESULT_", "build.step-1 ä/x") == "IFLOW_RESULT_build_step_1___x"
    assert env_name("IFLOW_PARAM_", "ok_Name9") == "IFLOW_PARAM_ok_Name9"


def test_to_env_value_strings_raw_others_json():
    """Strings pass untouched (no quoting); other values arrive JSON-encoded."""
    assert to_env_value("a \"b\" $(c)") == "a \"b\" $(c)"
    assert to_env_value(3) == "3"
    assert to_env_value(True) == "true"
    assert to_env_value({"b": [1, None], "a": "x"}) == '{"a": "x", "b": [1, null]}'


def test_build_env_layers_params_results_and_identity():
    """OS env + task env + params + upstream results + run identity, in that precedence."""
    context = ctx(
        params={"region": "eu-1", "n": 3, "cfg.key": {"a": 1}},
        xcoms={"fetch.data": "rows=10", "count": 42, "empty": None},
        dag_id="wf_a",
        run_id="manual__x",
        task_id="report",
        try_number=2,
    )
    env = build_env(
        context,
        env={"MODE": "fast", "IFLOW_TASK_ID": "spoofed"},
        result_tasks=["fetch.data", "count", "empty", "never_ran"],
        base={"PATH": "/usr/bin", "MODE": "slow"},
    )
    assert env["PATH"] == "/usr/bin"
    assert env["MODE"] == "fast"
    assert env["IFLOW_PARAM_region"] == "eu-1"
    assert env["IFLOW_PARAM_n"] == "3"
    assert env["IFLOW_PARAM_cfg_key"] == '{"a": 1}'
    assert env["IFLOW_RESULT_fetch_data"] == "rows=10"
    assert env["IFLOW_RESULT_count"] == "42"
    assert "IFLOW_RESULT_empty" not in env and "IFLOW_RESULT_never_ran" not in env
    assert (env["IFLOW_WORKFLOW"], env["IFLOW_RUN_ID"], env["IFLOW_TASK_ID"], env["IFLOW_TRY_NUMBER"]) == (
        "wf_a",
        "manual__x",
        "report",
        "2",
    )
    assert [t for t, _ in context["ti"].pulled] == ["fetch.data", "count", "empty", "never_ran"]


def test_build_env_defaults_to_os_environ(monkeypatch):
    """Without ``base`` the child inherits the worker's environment."""
    monkeypatch.setenv("IFLOW_TEST_INHERITED", "yes")
    assert build_env(ctx())["IFLOW_TEST_INHERITED"] == "yes"


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


# --------------------------------------------------------------------------- callable targets


@pytest.fixture
def tripwire_module(tmp_path, monkeypatch):
    """A module that records being imported, to prove disallowed modules are never imported."""
    name = "iflow_tripwire_mod"
    flag = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(flag)!r}, 'w').write('yes')\n\ndef f():\n    return 1\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    yield name, flag
    sys.modules.pop(name, None)


def test_disallowed_callable_is_rejected_without_import(tripwire_module):
    """The allow-list is checked before importing: a disallowed module's code never runs."""
    name, flag = tripwire_module
    msg = check_callable_target(f"{name}:f", EXAMPLES)
    assert msg and name in msg and "[iflow] allowed_modules" in msg and "AIRFLOW__IFLOW__ALLOWED_MODULES" in msg
    assert not flag.exists() and name not in sys.modules
    with pytest.raises(ModuleNotAllowedError):
        resolve_callable(f"{name}:f", EXAMPLES)
    assert not flag.exists()


def test_allowed_callable_is_imported_and_checked(tripwire_module):
    """An allowed target is imported and must exist and be callable."""
    name, flag = tripwire_module
    settings = IflowSettings(allowed_modules=(name,))
    assert check_callable_target(f"{name}:f", settings) is None
    assert flag.exists()
    assert resolve_callable(f"{name}:f", settings)() == 1
    assert "no attribute 'g'" in check_callable_target(f"{name}:g", settings)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("iflow_airflow.examples.callables:Text.upper", None),
        ("iflow_airflow.examples.callables:summarize", None),
        ("iflow_airflow.examples.callables:__name__", "not callable"),
        ("iflow_airflow.examples.callables:Text.nope", "no attribute 'nope'"),
        ("iflow_airflow.examples.nonexistent:f", "cannot import module"),
        ("iflow_airflow.examples.callables", "is not of the form"),
        ("iflow_airflow.examples.callables:f; rm -rf /", "is not of the form"),
        ("os:system", "not in the allowed modules"),
        ("iflow_airflow.examplesX:f", "not in the allowed modules"),
    ],
)
def test_check_callable_target_cases(target, expected):
    """Malformed, missing, non-callable and outside-the-prefix targets each get a clear message."""
    msg = check_callable_target(target, EXAMPLES)
    if expected is None:
        assert msg is None
    else:
        assert msg is not None and expected in msg


def test_resolve_callable_raises_value_errors():
    """Both failure kinds are ValueErrors, so callers can catch one type."""
    with pytest.raises(CallableTargetError):
        resolve_callable("nope", EXAMPLES)
    with pytest.raises(ValueError):
        resolve_callable("os:system", EXAMPLES)


# --------------------------------------------------------------------------- callable operator


def test_callable_gets_args_results_and_params(monkeypatch):
    """Static args/kwargs plus iflow_results/iflow_params when the signature asks for them."""
    from iflow_airflow.operators.callable import IflowCallableOperator

    monkeypatch.setenv("AIRFLOW__IFLOW__ALLOWED_MODULES", "iflow_airflow.examples")
    op = IflowCallableOperator(
        task_id="s",
        target="iflow_airflow.examples.callables:summarize",
        kwargs={"text": "report"},
        result_tasks=["b", "a", "missing"],
    )
    assert op.execute(ctx(xcoms={"a": "1", "b": {"k": 2}})) == "report; a=1; b={'k': 2}"
    greet = IflowCallableOperator(task_id="g", target="iflow_airflow.examples.callables:greet", args=["x"])
    assert greet.execute(ctx(params={"name": "run-param"})) == "hello run-param"
    add = IflowCallableOperator(task_id="add", target="iflow_airflow.examples.callables:add", args=[2, 3])
    assert add.execute(ctx()) == 5


def test_callable_with_var_kwargs_gets_both(tmp_path, monkeypatch):
    """A ``**kwargs`` function receives iflow_results and iflow_params too."""
    from iflow_airflow.operators.callable import IflowCallableOperator

    (tmp_path / "iflow_kw_mod.py").write_text("def f(**kw):\n    return sorted(kw)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("AIRFLOW__IFLOW__ALLOWED_MODULES", "iflow_kw_mod")
    op = IflowCallableOperator(task_id="k", target="iflow_kw_mod:f", kwargs={"x": 1})
    assert op.execute(ctx()) == ["iflow_params", "iflow_results", "x"]


def test_callable_rechecks_allow_list_at_run_time(monkeypatch):
    """A target allowed when parsed but not on the worker fails, without retry, naming the setting."""
    from airflow.sdk.exceptions import AirflowFailException

    from iflow_airflow.operators.callable import IflowCallableOperator

    monkeypatch.setenv("AIRFLOW__IFLOW__ALLOWED_MODULES", "some.other.pkg")
    op = IflowCallableOperator(task_id="s", target="iflow_airflow.examples.callables:add", args=[1, 2])
    with pytest.raises(AirflowFailException) as err:
        op.execute(ctx())
    assert "AIRFLOW__IFLOW__ALLOWED_MODULES" in str(err.value)


def test_callable_rejects_malformed_target_and_reserved_kwargs():
    """Mistakes are caught when the DAG is built, not at run time."""
    from iflow_airflow.operators.callable import IflowCallableOperator

    with pytest.raises(CallableTargetError):
        IflowCallableOperator(task_id="x", target="not a target")
    with pytest.raises(ValueError, match="iflow_results"):
        IflowCallableOperator(task_id="y", target="m:f", kwargs={"iflow_results": {}})


def test_fail_once_fails_then_succeeds(tmp_path):
    """The retry demo fails exactly once per marker file."""
    from iflow_airflow.examples.callables import fail_once

    marker = tmp_path / "m"
    with pytest.raises(RuntimeError):
        fail_once(str(marker))
    assert fail_once(str(marker)) == "succeeded after a failure"


# --------------------------------------------------------------------------- agent


@pytest.fixture
def fake_agent(tmp_path) -> Path:
    """An executable that prints its argv count, last argument and an env var, like an agent answering."""
    script = tmp_path / "fake-agent"
    script.write_text(
        textwrap.dedent(
            """\
            #!/usr/bin/env python3
            import os, sys
            print("  argc=%d" % (len(sys.argv) - 1))
            print("mode=%s" % sys.argv[1])
            print("prompt=%s" % sys.argv[-1])
            print("upstream=%s" % os.environ.get("IFLOW_RESULT_plan", ""))
            print()
            """
        ),
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def test_agent_gets_prompt_as_one_argument(fake_agent, tmp_path, monkeypatch):
    """The prompt is the last argv element, verbatim, even with shell syntax; stdout stripped is the answer."""
    from iflow_airflow.operators.agent import IflowAgentOperator

    marker = tmp_path / "pwned"
    prompt = f"fix it; touch {marker} $(touch {marker}) 'q' \"dq\""
    monkeypatch.setenv("AIRFLOW__IFLOW__AGENT_COMMAND", f"'{fake_agent}' --yolo")
    op = IflowAgentOperator(task_id="a", prompt=prompt, result_tasks=["plan"], cwd=str(tmp_path))
    answer = op.execute(ctx(xcoms={"plan": "step 1"}))
    assert answer == f"argc=2\nmode=--yolo\nprompt={prompt}\nupstream=step 1"
    assert not marker.exists()


def test_missing_agent_error_names_setting_and_install(monkeypatch):
    """A missing agent CLI explains which setting to change and how to install the iFlow CLI."""
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.agent import IflowAgentOperator

    monkeypatch.setenv("AIRFLOW__IFLOW__AGENT_COMMAND", "/nonexistent/iflow-agent -p")
    with pytest.raises(AirflowException) as err:
        IflowAgentOperator(task_id="a", prompt="hi").execute(ctx())
    msg = str(err.value)
    assert "not found" in msg and "/nonexistent/iflow-agent" in msg
    assert "[iflow] agent_command" in msg and "AIRFLOW__IFLOW__AGENT_COMMAND" in msg
    assert "npm i -g @iflow-ai/iflow-cli" in msg


def test_agent_failure_reports_exit_code(tmp_path, monkeypatch):
    """A failing agent is a failed task with its exit code and output."""
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.agent import IflowAgentOperator

    monkeypatch.setenv("AIRFLOW__IFLOW__AGENT_COMMAND", "bash -c 'echo quota exceeded >&2; exit 3' agent")
    with pytest.raises(AirflowException) as err:
        IflowAgentOperator(task_id="a", prompt="hi").execute(ctx())
    assert "exit code 3" in str(err.value) and "quota exceeded" in str(err.value)


def test_missing_working_directory_is_not_a_missing_agent(fake_agent, tmp_path, monkeypatch):
    """A wrong ``cwd`` is reported as such, not as an uninstalled agent."""
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.agent import IflowAgentOperator

    monkeypatch.setenv("AIRFLOW__IFLOW__AGENT_COMMAND", str(fake_agent))
    op = IflowAgentOperator(task_id="a", prompt="hi", cwd=str(tmp_path / "gone"))
    with pytest.raises(AirflowException, match="working directory .* does not exist"):
        op.execute(ctx())


def test_empty_agent_command_is_explained(monkeypatch):
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.agent import IflowAgentOperator

    monkeypatch.setenv("AIRFLOW__IFLOW__AGENT_COMMAND", "  ")
    with pytest.raises(AirflowException, match="agent command is empty"):
        IflowAgentOperator(task_id="a", prompt="hi").execute(ctx())


# --------------------------------------------------------------------------- checkpoint


def test_checkpoint_logs_and_succeeds(capsys):
    """A checkpoint runs (so listeners see it) and says it was reached (Airflow logs via structlog)."""
    from iflow_airflow.operators.checkpoint import IflowCheckpointOperator

    op = IflowCheckpointOperator(task_id="gate")
    assert op.execute(ctx()) is None
    assert "checkpoint gate reached (all upstream tasks succeeded)" in capsys.readouterr().out
    relaxed = IflowCheckpointOperator(task_id="after_all", trigger_rule="all_done")
    relaxed.execute(ctx())
    assert "checkpoint after_all reached (trigger rule all_done)" in capsys.readouterr().out
    assert op.do_xcom_push is False


# --------------------------------------------------------------------------- wait


def test_wait_needs_exactly_one_condition():
    from iflow_airflow.operators.wait import IflowWaitOperator

    with pytest.raises(ValueError, match="exactly one"):
        IflowWaitOperator(task_id="w")
    with pytest.raises(ValueError, match="exactly one"):
        IflowWaitOperator(task_id="w", file="/x", url="http://x")
    with pytest.raises(ValueError, match="both workflow and task"):
        IflowWaitOperator(task_id="w", workflow="other")


def test_wait_for_existing_file_returns_at_once(tmp_path):
    from iflow_airflow.operators.wait import IflowWaitOperator

    (tmp_path / "ready").write_text("ok")
    op = IflowWaitOperator(task_id="w", file=str(tmp_path / "ready"), timeout_seconds=5, poke_interval=1)
    started = time.monotonic()
    op.execute(ctx())
    assert time.monotonic() - started < 1


def test_wait_for_file_created_later(tmp_path):
    """The worker keeps polling until the file shows up."""
    from iflow_airflow.operators.wait import IflowWaitOperator

    target = tmp_path / "later"
    timer = threading.Timer(0.5, target.write_text, args=("x",))
    timer.start()
    try:
        IflowWaitOperator(task_id="w", file=str(target), timeout_seconds=10, poke_interval=0.1).execute(ctx())
    finally:
        timer.cancel()
    assert target.exists()


def test_wait_times_out_with_clear_message(tmp_path):
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.wait import IflowWaitOperator

    op = IflowWaitOperator(task_id="w", file=str(tmp_path / "never"), timeout_seconds=0.6, poke_interval=0.1)
    started = time.monotonic()
    with pytest.raises(AirflowException) as err:
        op.execute(ctx())
    assert 0.5 < time.monotonic() - started < 5
    assert str(err.value) == (
        f"wait for file {tmp_path / 'never'} timed out after 0.6 s (coordination.communication_timeout)"
    )


def test_wait_until_a_time(tmp_path):
    """A past time holds at once; a near future time is slept until; a far one times out."""
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.wait import IflowWaitOperator

    now = datetime.now(timezone.utc)
    IflowWaitOperator(task_id="p", until=now - timedelta(hours=1), timeout_seconds=1).execute(ctx())
    soon = now + timedelta(seconds=0.7)
    IflowWaitOperator(task_id="s", until=soon.isoformat(), timeout_seconds=5, poke_interval=10).execute(ctx())
    assert datetime.now(timezone.utc) >= soon
    with pytest.raises(AirflowException, match="timed out after 0.3 s"):
        IflowWaitOperator(task_id="f", until=now + timedelta(hours=1), timeout_seconds=0.3).execute(ctx())


@pytest.fixture
def http_server():
    """A local HTTP server: /ok answers 200, anything else 404."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            self.send_response(200 if self.path == "/ok" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_wait_for_url_needs_2xx(http_server):
    from airflow.sdk.exceptions import AirflowException

    from iflow_airflow.operators.wait import IflowWaitOperator

    IflowWaitOperator(task_id="ok", url=f"{http_server}/ok", timeout_seconds=5, poke_interval=0.1).execute(ctx())
    with pytest.raises(AirflowException, match="timed out"):
        IflowWaitOperator(
            task_id="nf", url=f"{http_server}/missing", timeout_seconds=0.5, poke_interval=0.1
        ).execute(ctx())


def test_deferrable_external_wait_picks_its_trigger(monkeypatch):
    """Latest run known -> the provider's WorkflowTrigger pinned to it; no run yet -> IflowWaitTrigger."""
    from airflow.providers.standard.triggers.external_task import WorkflowTrigger
    from airflow.sdk.exceptions import TaskDeferred

    from iflow_airflow.operators.wait import IflowWaitOperator
    from iflow_airflow.triggers.wait import IflowWaitTrigger

    op = IflowWaitOperator(task_id="w", workflow="other", task="t", timeout_seconds=30, deferrable=True)
    monkeypatch.setattr(op, "latest_external_state", lambda context: ("run_2", "running"))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx())
    trig = deferred.value.trigger
    assert isinstance(trig, WorkflowTrigger)
    assert (trig.external_dag_id, trig.run_ids, list(trig.external_task_ids)) == ("other", ["run_2"], ["t"])
    assert trig.allowed_states == ["success"] and not trig.failed_states
    assert deferred.value.timeout == timedelta(seconds=30)

    monkeypatch.setattr(op, "latest_external_state", lambda context: (None, None))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx())
    trig = deferred.value.trigger
    assert isinstance(trig, IflowWaitTrigger) and trig.kind == "external_task"
    assert trig.deadline == pytest.approx(time.time() + 30, abs=5)

    monkeypatch.setattr(op, "latest_external_state", lambda context: ("run_2", "success"))
    assert op.execute(ctx()) is None  # already done: no deferral at all


def test_deferral_timeout_gets_the_wait_message():
    """Airflow's generic deferral timeout is reported as the wait's own communication_timeout error."""
    from airflow.sdk.exceptions import AirflowException, TaskDeferralTimeout

    from iflow_airflow.operators.wait import IflowWaitOperator

    op = IflowWaitOperator(task_id="w", url="http://127.0.0.1:9/x", timeout_seconds=7, deferrable=True)
    with pytest.raises(AirflowException, match=r"wait for url http://127.0.0.1:9/x timed out after 7 s") as err:
        op.resume_execution("__fail__", {"error": "Trigger timeout"}, ctx())
    assert isinstance(err.value.__cause__, TaskDeferralTimeout)
    assert op.resume_execution("execute_complete", {"event": {"status": "ok"}}, ctx()) is None
    with pytest.raises(AirflowException, match="timed out after 7 s"):
        op.resume_execution("execute_complete", {"event": {"status": "timeout"}}, ctx())


# --------------------------------------------------------------------------- trigger


def _first_event(trigger) -> Any:
    async def go():
        return await anext(trigger.run())

    return asyncio.run(asyncio.wait_for(go(), 20)).payload


def test_trigger_serialize_round_trip():
    """The triggerer rebuilds the trigger from serialize(): it must give an equal one back."""
    from iflow_airflow.triggers.wait import IflowWaitTrigger

    trig = IflowWaitTrigger("until", until="2026-01-01T00:00:00", poke_interval=2, deadline=123.0, timeout_seconds=9)
    classpath, kwargs = trig.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["until"] == "2026-01-01T00:00:00+00:00"


def test_trigger_file_and_timeout_events(tmp_path):
    from iflow_airflow.triggers.wait import IflowWaitTrigger

    (tmp_path / "f").write_text("x")
    ok = IflowWaitTrigger("file", file=str(tmp_path / "f"), deadline=time.time() + 5)
    assert _first_event(ok)["status"] == "ok"
    late = IflowWaitTrigger("file", file=str(tmp_path / "g"), poke_interval=0.1, deadline=time.time() + 0.4)
    event = _first_event(late)
    assert event["status"] == "timeout" and event["what"] == f"file {tmp_path / 'g'}"


def test_trigger_url_and_time(http_server):
    from iflow_airflow.triggers.wait import IflowWaitTrigger

    assert _first_event(IflowWaitTrigger("url", url=f"{http_server}/ok", deadline=time.time() + 5))["status"] == "ok"
    bad = IflowWaitTrigger("url", url=f"{http_server}/nope", poke_interval=0.1, deadline=time.time() + 0.4)
    assert _first_event(bad)["status"] == "timeout"
    soon = (datetime.now(timezone.utc) + timedelta(seconds=0.5)).isoformat()
    assert _first_event(IflowWaitTrigger("until", until=soon, deadline=time.time() + 5))["status"] == "ok"
    assert datetime.now(timezone.utc) >= datetime.fromisoformat(soon)


# --------------------------------------------------------------------------- registry


def test_package_exports_resolve_lazily():
    """Names and submodules of ``iflow_airflow.operators`` resolve on first use (the DAG builder relies on it)."""
    import subprocess

    code = (
        "import sys, iflow_airflow.operators as ops\n"
        "assert 'airflow.sdk' not in sys.modules\n"
        "assert ops.kinds.builtin_kind_for('bash') == 'command'\n"
        "assert ops.check_callable_target('os:system', __import__('iflow_airflow.settings').settings.IflowSettings())\n"
        "assert 'airflow.sdk' not in sys.modules\n"
        "assert ops.IflowWaitOperator.__name__ == 'IflowWaitOperator'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_builtin_kinds_and_aliases():
    from iflow_airflow.operators.kinds import builtin_kind_for, builtin_operator_class

    assert [builtin_kind_for(n) for n in ("bash", "python", "agent", "command", "wait", "checkpoint")] == [
        "command",
        "callable",
        "prompt",
        "command",
        "wait",
        "checkpoint",
    ]
    assert builtin_kind_for("sql") is None
    assert builtin_operator_class("bash").__name__ == "IflowCommandOperator"
    assert builtin_operator_class("agent").__name__ == "IflowAgentOperator"


@pytest.fixture
def custom_kinds(tmp_path, monkeypatch):
    """A fake installed distribution that registers two custom kinds via entry points."""
    pkg = "iflow_custom_ops_pkg"
    (tmp_path / f"{pkg}.py").write_text(
        "from airflow.sdk import BaseOperator\n"
        f"open({str(tmp_path / 'imported')!r}, 'w').write('y')\n"
        "class Shout(BaseOperator):\n"
        "    def execute(self, context):\n        return 'HEY'\n"
        "NOT_AN_OPERATOR = 1\n",
        encoding="utf-8",
    )
    dist = tmp_path / "iflow_custom_ops-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: iflow-custom-ops\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[iflow_airflow.operators]\n"
        f"shout = {pkg}:Shout\n"
        f"broken = {pkg}:NOT_AN_OPERATOR\n"
        f"bash = {pkg}:Shout\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(pkg, None)
    yield pkg, tmp_path / "imported"
    sys.modules.pop(pkg, None)


def test_custom_kinds_are_listed_and_loaded(custom_kinds):
    """Entry points add kinds; built-in names cannot be hijacked by a plugin."""
    from iflow_airflow.operators.kinds import available_kinds, load_custom_operator

    pkg, _ = custom_kinds
    kinds = available_kinds()
    assert "shout" in kinds and "broken" in kinds and kinds.count("bash") == 1
    cls = load_custom_operator("shout", IflowSettings(allowed_modules=(pkg,)))
    assert cls.__name__ == "Shout"
    assert load_custom_operator("bash", IflowSettings(allowed_modules=(pkg,))).__name__ == "IflowCommandOperator"
    with pytest.raises(TypeError, match="not a subclass"):
        load_custom_operator("broken", IflowSettings(allowed_modules=(pkg,)))


def test_custom_kind_from_disallowed_module_is_not_imported(custom_kinds):
    from iflow_airflow.operators.kinds import load_custom_operator

    pkg, imported = custom_kinds
    with pytest.raises(ModuleNotAllowedError) as err:
        load_custom_operator("shout", EXAMPLES)
    assert pkg in str(err.value) and "AIRFLOW__IFLOW__ALLOWED_MODULES" in str(err.value)
    assert isinstance(err.value, ValueError)
    assert not imported.exists()


def test_unknown_kind_lists_known_kinds(custom_kinds):
    from iflow_airflow.operators.kinds import load_custom_operator

    with pytest.raises(LookupError) as err:
        load_custom_operator("sql", EXAMPLES)
    assert "'sql'" in str(err.value) and "shout" in str(err.value) and "command" in str(err.value)
