"""The on-disk plan cache: same plans as compiling, safe against change, corruption and planted files."""

from __future__ import annotations

import os
import pickle
import stat
import threading
from pathlib import Path

import pendulum
import pytest
from tree_files import put

from iflow_airflow.compiler import compile_file, compile_folder
from iflow_airflow.plan import cache as plan_cache
from iflow_airflow.settings import IflowSettings

S = IflowSettings(allowed_modules=("iflow_airflow.examples",))

WF = """
orchestration: {retry_attempts: 2, task_timeout: 60}
workflow:
  name: {name}
  timezone: Europe/Berlin
  start_date: 2026-03-01T09:30:00
  schedule: "0 6 * * *"
  params:
    when: {default: 2026-01-01T10:00:00+02:00}
    items: {default: [1, 2.5, null, true], type: array}
  tasks:
    - {id: a, command: "echo a", priority: high}
    - {id: b, dependencies: [a], wait: {until: 2026-02-01T00:00:00+05:00}}
    - {id: c, dependencies: [a], prompt: summarise}
    - {id: d, dependencies: [b, c]}
"""


@pytest.fixture
def cache(tmp_path: Path) -> plan_cache.PlanCache:
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    return plan_cache.PlanCache(folder)


def entries(cache: plan_cache.PlanCache) -> list[Path]:
    return sorted(cache.folder.iterdir())


def test_a_cached_plan_equals_the_compiled_one(tmp_path, cache):
    path = put(tmp_path / "dags", "wf.yaml", WF.replace("{name}", "cached"))
    fresh = compile_file(path, root=tmp_path / "dags", settings=S)
    first = compile_file(path, root=tmp_path / "dags", settings=S, cache=cache)
    second = compile_file(path, root=tmp_path / "dags", settings=S, cache=cache)
    assert (cache.misses, cache.hits) == (1, 1) and len(entries(cache)) == 1
    assert fresh.plan == first.plan == second.plan
    assert second.plan is not first.plan
    assert second.plan.start_date.fold == fresh.plan.start_date.fold
    assert second.plan.start_date.timezone_name == "Europe/Berlin"
    assert isinstance(second.plan.start_date, pendulum.DateTime)
    for path_ in (("workflow", "tasks", 2), ("orchestration", "task_timeout"), ("nowhere",)):
        assert second.locate(path_) == fresh.locate(path_)


def test_any_change_is_a_new_key(tmp_path, cache):
    root = tmp_path / "dags"
    path = put(root, "team/wf.yaml", WF.replace("{name}", "k"))
    compile_file(path, root=root, settings=S, cache=cache)
    path.write_text(path.read_text() + "# a comment\n")
    compile_file(path, root=root, settings=S, cache=cache)
    put(root, "iflow.defaults.yaml", "orchestration: {retry_delay: 5}\n")
    c = compile_file(path, root=root, settings=S, cache=cache)
    assert c.plan.tasks[0].retry_delay == 5
    compile_file(path, root=root, settings=IflowSettings(pool_prefix="other_"), cache=cache)
    assert (cache.misses, cache.hits) == (4, 0) and len(entries(cache)) == 4
    put(root, "iflow.defaults.yaml", "orchestration: {retry_delay: 7}\n")
    assert compile_file(path, root=root, settings=S, cache=cache).plan.tasks[0].retry_delay == 7
    assert cache.hits == 0


def test_errors_and_callables_are_never_cached(tmp_path, cache):
    bad = put(tmp_path, "bad.yaml", "workflow:\n  name: bad\n  tasks: [{id: a, dependencies: [zz]}]\n")
    code = put(tmp_path, "code.yaml", "workflow:\n  name: code\n  tasks:\n"
                                      "    - {id: a, callable: 'iflow_airflow.examples.callables:add'}\n")
    for _ in range(2):
        assert not compile_file(bad, settings=S, cache=cache).ok
        assert compile_file(code, settings=S, cache=cache).ok
    assert entries(cache) == [] and cache.hits == 0


def test_a_broken_defaults_file_is_not_cached(tmp_path, cache):
    put(tmp_path, "iflow.defaults.yaml", "orchestration: [\n")
    path = put(tmp_path, "wf.yaml", WF.replace("{name}", "d"))
    for _ in range(2):
        assert not compile_file(path, root=tmp_path, settings=S, cache=cache).ok
    assert entries(cache) == []


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty", "directory"])
def test_a_damaged_entry_is_a_miss_and_gets_replaced(tmp_path, cache, damage):
    path = put(tmp_path, "wf.yaml", WF.replace("{name}", "dmg"))
    good = compile_file(path, settings=S, cache=cache).plan
    (entry,) = entries(cache)
    data = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        entry.write_bytes(os.urandom(len(data)))
    elif damage == "flip":
        entry.write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    elif damage == "empty":
        entry.write_bytes(b"")
    else:
        entry.unlink()
        entry.mkdir()
    again = compile_file(path, settings=S, cache=cache)
    assert again.ok and again.plan == good and cache.hits == 0
    if damage != "directory":
        assert plan_cache.loads(entry.read_bytes()) == good  # rewritten whole


def test_a_planted_pickle_runs_nothing(tmp_path, cache):
    path = put(tmp_path, "wf.yaml", WF.replace("{name}", "planted"))
    compile_file(path, settings=S, cache=cache)
    (entry,) = entries(cache)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps(Evil())
    import hashlib

    entry.write_bytes(plan_cache.MAGIC + hashlib.sha256(payload).digest() + payload)
    with pytest.raises(pickle.UnpicklingError):
        plan_cache.loads(entry.read_bytes())
    c = compile_file(path, settings=S, cache=cache)
    assert c.ok and not marker.exists() and cache.hits == 0


def test_concurrent_writers_leave_one_whole_entry(tmp_path, cache):
    path = put(tmp_path, "wf.yaml", WF.replace("{name}", "race"))
    plan = compile_file(path, settings=S).plan
    key = "k" * 64
    errors: list[BaseException] = []

    def write():
        try:
            for _ in range(30):
                assert cache.put(key, plan)
                got = cache.get(key)
                assert got is None or got == plan
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [p.name for p in entries(cache)] == [f"{key}.plan"]
    assert cache.get(key) == plan


def test_folder_checks_and_off(tmp_path, monkeypatch):
    plan_cache._from_config.clear()
    monkeypatch.setenv("AIRFLOW__IFLOW__PLAN_CACHE", "off")
    assert plan_cache.from_config() is None
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("AIRFLOW__IFLOW__PLAN_CACHE", str(shared))
    assert plan_cache.from_config() is None
    mine = tmp_path / "deep" / "mine"
    monkeypatch.setenv("AIRFLOW__IFLOW__PLAN_CACHE", str(mine))
    got = plan_cache.from_config()
    assert got is not None and got.folder == mine
    assert stat.S_IMODE(mine.stat().st_mode) & 0o077 == 0
    monkeypatch.setenv("AIRFLOW__IFLOW__PLAN_CACHE", "")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    default = plan_cache.from_config()
    assert default is not None and default.folder.name == "iflow-cache"
    plan_cache._from_config.clear()


def test_cross_file_problems_are_located_the_same_from_the_cache(tmp_path, cache):
    put(tmp_path, "team/iflow.defaults.yaml", "# shared\nresources:\n  db: 2\n")
    put(tmp_path, "team/a.yaml", "workflow:\n  name: a\n  tasks: [{id: a, resource: db}]\n")
    put(tmp_path, "b.yaml", "resources: {db: 5}\nworkflow:\n  name: b\n  tasks: [{id: a, resource: db}]\n")
    put(tmp_path, "c.yaml", "# c\nworkflow:\n  name: b\n  tasks: [{id: a}]\n")

    def errors(results):
        return {c.display: [(p.file, p.key_path, p.line, p.column, p.message) for p in c.error.problems]
                for c in results if c.error is not None}

    plain = errors(compile_folder(tmp_path, S))
    first = errors(compile_folder(tmp_path, S, cache=cache))
    second = errors(compile_folder(tmp_path, S, cache=cache))
    assert cache.hits == 3
    assert plain == first == second and set(plain) == {"team/a.yaml", "b.yaml", "c.yaml"}


def test_old_entries_are_pruned_on_a_miss(tmp_path, cache):
    old = cache.folder / ("0" * 64 + ".plan")
    old.write_bytes(b"x")
    os.utime(old, (1, 1))
    path = put(tmp_path, "wf.yaml", WF.replace("{name}", "prune"))
    compile_file(path, settings=S, cache=cache)
    assert not old.exists() and len(entries(cache)) == 1
