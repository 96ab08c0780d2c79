"""A run keeps its bundle version (SPEC §5), with a real ``GitDagBundle``, dag-processor, scheduler and api-server.

The bundle's remote is a bare git repository made by the test; its working copy holds
``iflow_dags.py`` (as shipped) and one workflow. Each run's first task waits for its
version's gate file, so that commits land while runs are in flight, and are parsed by
the dag-processor, before the runs' next tasks start (no timing guesses):

* run 1 starts at version A; a *valid* commit B (other commands) and then an *invalid*
  one C (a typo) land while it is in flight: its next task still runs A's command,
  every task success;
* run 2 starts at B (so B does change what runs); C lands while it is in flight: it
  finishes on B, every task success;
* run 1's last task parses A after B was stored as the newest good version; a trigger
  while C is the newest commit runs at C and so falls back to the store: it runs B
  (a task process that wrote A into the store would make it run A).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG = "versioned"
BUNDLE = "iflow-git"
REFRESH = 2  # seconds between the bundle's fetches from its remote


def workflow(version: str, gates: Path) -> str:
    return f"""\
orchestration: {{retry_attempts: 0}}
workflow:
  name: {DAG}
  tasks:
    - {{id: gate, command: "while [ ! -e {gates}/{version} ]; do sleep 0.2; done; echo gate of {version}"}}
    - {{id: after, dependencies: [gate], command: "echo after of {version}"}}
"""


def _git(cwd: Path, *args: str) -> str:
    argv = ["git", "-c", "user.name=iflow e2e", "-c", "user.email=e2e@example.invalid", "-c", "init.defaultBranch=main",
            "-c", "commit.gpgsign=false", *args]
    return subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True, timeout=60).stdout.strip()


def _commit(work: Path, text: str, message: str) -> str:
    """Commit ``text`` as the workflow file and push it to the bundle's remote; the new commit's id."""
    (work / f"{DAG}.yaml").write_text(text)
    _git(work, "commit", "-qam", message)
    _git(work, "push", "-q", "origin", "main")
    return _git(work, "rev-parse", "HEAD")


def _remote(tmp_path: Path, first: str) -> tuple[Path, Path, str]:
    """(bare remote, working copy, first commit): the loader and the workflow at version A."""
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    remote.mkdir()
    work.mkdir()
    _git(remote, "init", "-q", "--bare", "-b", "main")
    _git(work, "init", "-q", "-b", "main")
    _git(work, "remote", "add", "origin", str(remote))
    shutil.copy(REPO / "dags" / "iflow_dags.py", work / "iflow_dags.py")
    (work / f"{DAG}.yaml").write_text(first)
    _git(work, "add", ".")
    return remote, work, _commit(work, first, "version A")


def _bundle_env(home_parent: Path, remote: Path) -> dict[str, str]:
    bundles = [{"name": BUNDLE, "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
                "kwargs": {"tracking_ref": "main", "repo_url": str(remote), "refresh_interval": REFRESH}}]
    return {
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        # The checkouts (tracking repo, one folder per version) stay in this test's folder, not in /tmp.
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home_parent / "bundles"),
        # Airflow skips writing a changed DAG within 30 s of its last write (the parse that saw the
        # commit is dropped; the next one comes at min_file_process_interval): without this, each
        # commit's DAG version shows up to a minute late, which only makes the test slow.
        "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
    }


def _states(client, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in client.task_instances(DAG, run_id)}


def _parsed_at(client, sha: str) -> dict | None:
    """The DAG version the dag-processor made from commit ``sha`` (None until it parsed it)."""
    versions = client.get(f"/api/v2/dags/{DAG}/dagVersions")["dag_versions"]
    return next((v for v in versions if v["bundle_version"] == sha), None)


def _start_gated(client) -> str:
    """Trigger a run and wait until its first task runs (held at its gate)."""
    run = client.trigger(DAG)
    client.wait_until(lambda: _states(client, run).get("gate") == "running", 120, f"{run}: gate running")
    return run


def _finish(client, gates: Path, version: str, run: str) -> dict[str, str]:
    """Open ``version``'s gate, wait for the run; {task: its result (the last line its command printed)}."""
    (gates / version).touch()
    assert client.wait_for_run(DAG, run, timeout=180) == "success"
    assert _states(client, run) == {"gate": "success", "after": "success"}
    return {t: client.result(DAG, run, t) for t in ("gate", "after")}


@pytest.mark.e2e
def test_a_run_keeps_its_git_bundle_version(airflow_deployment, tmp_path: Path):
    gates = tmp_path / "gates"
    gates.mkdir()
    remote, work, sha_a = _remote(tmp_path, workflow("A", gates))
    empty = tmp_path / "dags-folder"  # [core] dags_folder: not a bundle here
    empty.mkdir()
    t0 = time.monotonic()
    af = airflow_deployment(empty, extra_env=_bundle_env(tmp_path, remote))
    client = af.client
    client.wait_for_dag(DAG, timeout=180)
    t_ready = time.monotonic()

    # Run 1 starts at version A; a valid commit B lands while it waits in its first task.
    run1 = _start_gated(client)
    assert client.dag_run(DAG, run1)["bundle_version"] == sha_a
    sha_b = _commit(work, workflow("B", gates), "version B: other commands")
    t_commit = time.monotonic()
    client.wait_until(lambda: _parsed_at(client, sha_b), 60, "the dag-processor to parse version B")
    seen_b = time.monotonic() - t_commit

    # Run 2 starts at version B; then a typo (commit C) lands while both runs are in flight.
    run2 = _start_gated(client)
    assert client.dag_run(DAG, run2)["bundle_version"] == sha_b
    sha_c = _commit(work, workflow("B", gates).replace("dependencies:", "dependncies:"), "version C: a typo")
    client.wait_until(lambda: f"{DAG}.yaml" in client.errors_by_file(), 60, "the typo's import error")
    client.wait_until(lambda: _parsed_at(client, sha_c), 60, "the dag-processor's DAG version at commit C")

    # Each run finishes on its own version, every task success: run 2 (B) first, then run 1 (A),
    # whose last task parses version A after B was the newest good one (a task must not store A).
    assert _finish(client, gates, "B", run2) == {"gate": "gate of B", "after": "after of B"}
    assert _finish(client, gates, "A", run1) == {"gate": "gate of A", "after": "after of A"}
    assert (tmp_path / "bundles" / BUNDLE / "versions" / sha_a).is_dir()  # the tasks' own checkout of A

    # A trigger while the newest commit is invalid: the run is at C and runs the last good version, B.
    run3 = client.trigger(DAG)
    assert client.dag_run(DAG, run3)["bundle_version"] == sha_c
    assert client.wait_for_run(DAG, run3, timeout=180) == "success"
    assert {t: client.result(DAG, run3, t) for t in ("gate", "after")} == {"gate": "gate of B", "after": "after of B"}
    print(f"\n[git-bundle] ready {t_ready - t0:.1f} s after start; commit B parsed {seen_b:.1f} s after the "
          f"push (refresh_interval {REFRESH} s); scenarios {time.monotonic() - t_ready:.1f} s")
