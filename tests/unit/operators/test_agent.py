"""Unit tests of the agent operator: prompt as one argument, errors that name the setting; run without an Airflow database."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from op_helpers import EXAMPLES, HOSTILE, FakeTI, ctx, marker_values  # noqa: F401

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


