"""Resources -> desired pools, and resource-size conflicts between files (SPEC §3, issue 3)."""

from __future__ import annotations

from pathlib import Path

from iflow_airflow.compiler import compile_folder
from iflow_airflow.runtime.pools import MANAGED_MARK, desired_pools
from iflow_airflow.settings import IflowSettings

SETTINGS = IflowSettings()


def _wf(name: str, resources: str, task_resource: str) -> str:
    return (f"resources: {resources}\nworkflow:\n  name: {name}\n  tasks:\n"
            f"    - {{id: t, resource: {task_resource}, command: 'true'}}\n")


def test_each_resource_is_one_pool_shared_by_every_workflow(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(_wf("a", "{db: 1, gpu: {slots: 2, max_slots: 4, description: cards}}", "db"))
    (tmp_path / "b.yaml").write_text(_wf("b", "{db: 1}", "db"))
    pools = desired_pools(compile_folder(tmp_path, SETTINGS))
    assert set(pools) == {"iflow_db", "iflow_gpu"}
    assert (pools["iflow_db"].slots, pools["iflow_db"].workflows) == (1, ("a", "b"))
    assert (pools["iflow_gpu"].slots, pools["iflow_gpu"].max_slots) == (2, 4)
    assert pools["iflow_gpu"].pool_description == f"{MANAGED_MARK} resource gpu: cards"


def test_size_conflict_is_an_error_on_both_files_but_takes_no_workflow_down(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(_wf("a", "{db: 1}", "db"))
    (tmp_path / "b.yaml").write_text(_wf("b", "{db: 3}", "db"))
    results = {c.display: c for c in compile_folder(tmp_path, SETTINGS)}
    for name in ("a.yaml", "b.yaml"):
        c = results[name]
        assert c.plan is not None and not c.ok
        [problem] = c.error.problems
        assert (problem.code, problem.key_path, problem.line) == ("resource_conflict", "resources.db", 1)
        assert "slots=1 in a.yaml; slots=3 in b.yaml" in problem.message
    assert desired_pools(results.values())["iflow_db"].slots == 1  # the smallest size until they agree


def test_a_file_without_a_plan_asks_for_no_pool(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(_wf("a", "{db: 1}", "dbx"))  # unknown resource: no plan
    assert desired_pools(compile_folder(tmp_path, SETTINGS)) == {}


def test_duplicate_workflow_name_gets_no_second_dag(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(_wf("same", "{db: 1}", "db"))
    (tmp_path / "b.yaml").write_text(_wf("same", "{db: 1}", "db"))
    results = {c.display: c for c in compile_folder(tmp_path, SETTINGS)}
    assert results["a.yaml"].ok
    assert results["b.yaml"].plan is None and results["b.yaml"].error.problems[0].code == "duplicate_workflow"


def test_folder_scanner_recompiles_only_changed_files_with_the_plan_cache(tmp_path: Path):
    """The scheduler's keeper rescans on every change: unchanged files come from the loader's cache."""
    import os

    from iflow_airflow.plan.cache import PlanCache
    from iflow_airflow.runtime.pools import FolderScanner

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "a.yaml").write_text(_wf("a", "{db: 1}", "db"))
    (dags / "b.yaml").write_text(_wf("b", "{db: 1}", "db"))
    (tmp_path / "cache").mkdir(mode=0o700)
    cache = PlanCache(tmp_path / "cache")
    scanner = FolderScanner(dags, SETTINGS, cache=cache)
    results, changed = scanner.scan()
    assert changed and sorted(c.plan.dag_id for c in results) == ["a", "b"]
    assert (cache.hits, cache.misses) == (0, 2)
    assert scanner.scan()[1] is False and (cache.hits, cache.misses) == (0, 2)  # nothing changed: no compile
    (dags / "b.yaml").write_text(_wf("b", "{db: 1, gpu: 2}", "db"))
    os.utime(dags / "b.yaml", ns=(1, 1))  # a different stamp even on a coarse clock
    results, changed = scanner.scan()
    assert changed and (cache.hits, cache.misses) == (0, 3)  # a.yaml not even read again (the memo), b.yaml compiled
    assert set(desired_pools(results)) == {"iflow_db", "iflow_gpu"}
    (dags / "iflow.defaults.yaml").write_text("resources: {db: 1}\n")  # may change every file: all compiled
    assert scanner.scan()[1] and (cache.hits, cache.misses) == (0, 5)


def test_folder_scanner_memo_keeps_results_as_compiled_before_the_cross_file_checks(tmp_path: Path):
    """A name clash takes one file's DAG away in one scan; once it is gone, that file is whole again."""
    from iflow_airflow.runtime.pools import FolderScanner

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "a.yaml").write_text(_wf("a", "{db: 1}", "db"))
    scanner = FolderScanner(dags, SETTINGS)
    scanner.scan()
    (dags / "z_copy.yaml").write_text(_wf("a", "{db: 1}", "db"))
    by_file = {c.display: c for c in scanner.scan()[0]}
    assert by_file["z_copy.yaml"].plan is None and by_file["a.yaml"].plan is not None
    (dags / "a.yaml").unlink()
    by_file = {c.display: c for c in scanner.scan()[0]}
    assert set(by_file) == {"z_copy.yaml"} and by_file["z_copy.yaml"].plan is not None
    assert by_file["z_copy.yaml"].error is None


def test_pool_usage_counts_as_airflow_counts_a_pool():
    """One rule for the keeper and the page: running/queued hold slots, deferred only where the pool says so."""
    from iflow_airflow.runtime.pools import pool_usage

    rows = [("db", "running", 2, 3), ("db", "queued", 1, 1), ("db", "scheduled", 4, 4), ("db", "deferred", 1, 2),
            ("gpu", "deferred", 2, 2), ("gpu", "running", 1, 1)]
    usage = pool_usage(rows, {"db": False, "gpu": True})
    assert usage["db"] == {"busy": 4, "waiting": 4, "running": 2, "queued": 1}
    assert usage["gpu"] == {"busy": 3, "waiting": 0, "running": 1, "queued": 0}
    assert "other" not in usage
