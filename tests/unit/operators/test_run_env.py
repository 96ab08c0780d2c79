"""Unit tests of environment of a task's process (run_env.py); run without an Airflow database."""

from __future__ import annotations

from op_helpers import EXAMPLES, HOSTILE, FakeTI, ctx, marker_values  # noqa: F401

from iflow_airflow.operators.run_env import build_env, env_name, to_env_value

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


