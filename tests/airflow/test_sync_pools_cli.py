"""`iflow-airflow sync-pools` (the init step of make run and compose) against a real metadata database."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow
CLI = [sys.executable, "-m", "iflow_airflow.client.cli", "sync-pools"]


def _pools(env) -> dict[str, tuple[int, str]]:
    proc = env.run([sys.executable, "-m", "airflow", "pools", "list", "-o", "json"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {p["pool"]: (int(p["slots"]), p["description"]) for p in json.loads(proc.stdout)}


def test_sync_pools_creates_resizes_and_leaves_people_alone(airflow_env, tmp_path: Path):
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "a.yaml").write_text("resources: {db: 1, gpu: {slots: 2, description: cards}}\n"
                                   "workflow: {name: a, tasks: [{id: t, resource: db}]}\n")
    assert airflow_env.run([sys.executable, "-m", "airflow", "pools", "set", "iflow_manual", "9", "by hand"]
                           ).returncode == 0
    first = airflow_env.run([*CLI, str(folder)])
    assert first.returncode == 0, first.stderr[-2000:]
    assert "created pool iflow_db with 1 slot" in first.stdout and "2 iflow pools" in first.stdout
    pools = _pools(airflow_env)
    assert pools["iflow_db"] == (1, "[iflow-airflow] resource db: shared resource")
    assert pools["iflow_gpu"] == (2, "[iflow-airflow] resource gpu: cards")

    (folder / "a.yaml").write_text("resources: {db: 4, manual: 1}\n"
                                   "workflow: {name: a, tasks: [{id: t, resource: db}]}\n")
    (folder / "iflow.defaults.yaml").write_text("resources: {manual: 1}\n")
    second = airflow_env.run([*CLI, str(folder)])
    assert "resized pool iflow_db from 1 to 4 slots" in second.stdout
    pools = _pools(airflow_env)
    assert pools["iflow_db"][0] == 4
    assert pools["iflow_manual"] == (9, "by hand")  # a person's pool is never changed
    assert pools["iflow_gpu"][0] == 2  # no file names it any more: left alone
