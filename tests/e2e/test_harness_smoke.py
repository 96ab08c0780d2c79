"""Smoke test of the e2e harness: a plain Python DAG on a real Airflow 3.3."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

SMOKE_DAG = textwrap.dedent(
    """
    import pendulum
    from airflow.sdk import DAG
    from airflow.providers.standard.operators.bash import BashOperator

    with DAG(
        dag_id="harness_smoke",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["e2e"],
    ):
        first = BashOperator(task_id="first", bash_command="echo first")
        second = BashOperator(task_id="second", bash_command='echo "second after $PREV"',
                              env={"PREV": "first"}, append_env=True)
        first >> second
    """
)


@pytest.mark.e2e
def test_harness_runs_a_plain_dag(airflow_deployment, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "harness_smoke.py").write_text(SMOKE_DAG)

    t0 = time.monotonic()
    af = airflow_deployment(dags)
    startup = time.monotonic() - t0
    client = af.client

    t1 = time.monotonic()
    dag = client.wait_for_dag("harness_smoke", timeout=120)
    parsed = time.monotonic() - t1
    assert dag["dag_id"] == "harness_smoke"
    assert "harness_smoke" in {d["dag_id"] for d in client.dags()}
    assert client.import_errors() == []
    # DAGS_ARE_PAUSED_AT_CREATION=false comes from docker-compose.yaml.
    assert dag["is_paused"] is False

    t2 = time.monotonic()
    run_id = client.trigger("harness_smoke", conf={"note": "smoke"})
    state = client.wait_for_run("harness_smoke", run_id, timeout=180)
    run = time.monotonic() - t2

    tis = client.task_instances("harness_smoke", run_id)
    assert state == "success", tis
    assert {t["task_id"]: t["state"] for t in tis} == {"first": "success", "second": "success"}

    client.set_pool("smoke_pool", 3, "created by the e2e smoke test")
    pools = client.pools()
    assert pools["smoke_pool"] == 3
    assert "default_pool" in pools
    client.set_pool("smoke_pool", 5)
    assert client.pools()["smoke_pool"] == 5

    print(
        f"\n[e2e smoke] start-up {startup:.1f}s (db migrate {af.timings['db_migrate']:.1f}s, "
        f"api answering at {af.timings.get('api_ready', 0):.1f}s), DAG visible after {parsed:.1f}s, "
        f"run {run:.1f}s"
    )
