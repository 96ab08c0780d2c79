"""Fixtures of the distributed suite: ONE CeleryExecutor cluster for the test module.

The cluster (cluster.py) is the docker-compose deployment run natively: scheduler,
dag-processor, api-server, triggerer and the two compose Celery workers, on a fresh
PostgreSQL database and a dedicated Redis DB, with the settings of
docker-compose.yaml. It is started once (the first test that needs it) and stopped
after the module's last test (module scope: it does not idle on while the rest of
``make test`` runs); the teardown FAILS (pytest error) when a process is left
behind, the database still exists or the Redis DB still holds keys.

The dags folder holds the loader (dags/iflow_dags.py), the seed example
``full_stack_development.yaml`` as it is, the workflows in ``workflows/`` and the
load workflows written by :func:`dist_workflows.load_workflow_yaml`.

Figures (startup, fault recovery, load) are collected in the ``figures`` fixture,
printed at the end and written to ``artifacts/distributed-figures.json``.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster import REPO_ROOT, CeleryCluster
from dist_workflows import LOAD_LEVELS, SHARED_QUEUE, load_workflow_yaml

HERE = Path(__file__).resolve().parent
FIGURES_FILE = REPO_ROOT / "artifacts" / "distributed-figures.json"

def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def figures() -> Iterator[dict[str, Any]]:
    """Figures the checks measured; printed and written to artifacts/ at the end."""
    data: dict[str, Any] = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    t0 = time.monotonic()
    yield data
    data["suite_seconds"] = round(time.monotonic() - t0, 1)
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"\n[distributed] figures (also in {FIGURES_FILE}):\n{json.dumps(data, indent=2, sort_keys=True)}")


@pytest.fixture(scope="module")
def dist_dags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dags = tmp_path_factory.mktemp("dist_dags")
    shutil.copy(REPO_ROOT / "dags" / "iflow_dags.py", dags / "iflow_dags.py")
    shutil.copy(REPO_ROOT / "dags" / "full_stack_development.yaml", dags / "full_stack_development.yaml")
    for path in sorted((HERE / "workflows").glob("*.yaml")):
        shutil.copy(path, dags / path.name)
    for level in LOAD_LEVELS:
        (dags / f"dist_load_{level}.yaml").write_text(load_workflow_yaml(level))
    return dags


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, dist_dags: Path, figures: dict) -> Iterator[CeleryCluster]:
    for what, host, port in (("PostgreSQL", "127.0.0.1", 5432), ("Redis", "127.0.0.1", 6379)):
        if not _reachable(host, port):
            pytest.fail(f"{what} is not reachable on {host}:{port}; the distributed suite needs it (.ci/run starts it)")
    c = CeleryCluster(tmp_path_factory.mktemp("cluster"), dist_dags, extra_worker_queues=[SHARED_QUEUE])
    t0 = time.monotonic()
    c.start()
    figures["cluster_startup_seconds"] = round(time.monotonic() - t0, 1)
    figures["cluster_startup_breakdown"] = {k: round(v, 1) for k, v in c.timings.items()}
    print(f"\n[distributed] cluster up in {figures['cluster_startup_seconds']}s: database {c.dbname}, "
          f"Redis DB {c.redis_db}, api-server {c.deployment.base_url}, logs in {c.deployment.log_dir}")
    try:
        yield c
    finally:
        problems: list[str] = []
        try:
            c.stop()
        except Exception as e:  # noqa: BLE001 - reported below
            problems.append(f"stopping the cluster: {e}")
        figures["cluster_stop_seconds"] = round(c.timings.get("stop", 0.0), 1)
        if c.leftovers:
            problems.append(f"processes left: {c.leftovers}")
        if c.database_exists():
            problems.append(f"database {c.dbname} was not dropped")
        if c.redis_db is not None and c.redis(c.redis_db).dbsize() != 0:
            problems.append(f"Redis DB {c.redis_db} still holds {c.redis(c.redis_db).dbsize()} keys")
        if problems:
            pytest.fail("distributed cluster teardown: " + "; ".join(problems))
