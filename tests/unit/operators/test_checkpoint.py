"""Unit tests of the checkpoint operator; run without an Airflow database."""

from __future__ import annotations

from op_helpers import EXAMPLES, HOSTILE, FakeTI, ctx, marker_values  # noqa: F401

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


