"""The last good store and the per-file time budget, without Airflow."""

from __future__ import annotations

import os
import signal
import time

import pytest

from iflow_airflow.build import budget as file_budget
from iflow_airflow.build.last_good import Entry, LastGoodStore, banner
from iflow_airflow.errors import Problem, WorkflowFileError


def entry(text: str = "workflow: {name: a}\n", **kw) -> Entry:
    return Entry("teams/a.yaml", text, (("iflow.defaults.yaml", "resources: {db: 1}\n"),), 1000.0, **kw)


def test_round_trip_and_one_file_per_workflow(tmp_path):
    store = LastGoodStore(tmp_path)
    assert store.get("teams/a.yaml") is None
    assert store.put(entry())
    assert store.get("teams/a.yaml") == entry()
    assert [p.name for p in tmp_path.iterdir()] == [LastGoodStore.name_of("teams/a.yaml")]


@pytest.mark.parametrize("damage", [lambda b: b[:-10], lambda b: b.replace(b"name: a", b"name: b"),
                                    lambda b: b"\x00\xff", lambda b: b"[]", lambda b: b""])
def test_a_torn_edited_or_foreign_entry_counts_as_none(tmp_path, damage):
    store = LastGoodStore(tmp_path)
    store.put(entry())
    path = tmp_path / LastGoodStore.name_of("teams/a.yaml")
    path.write_bytes(damage(path.read_bytes()))
    assert store.get("teams/a.yaml") is None


def test_broken_since_is_kept_once_and_a_new_good_version_clears_it(tmp_path):
    store = LastGoodStore(tmp_path)
    store.remember(entry())
    marked = store.mark_broken(store.get("teams/a.yaml"), since=2000.0)
    assert store.mark_broken(marked, since=3000.0).broken_since == 2000.0
    assert store.get("teams/a.yaml").broken_since == 2000.0
    store.remember(entry())  # the same version valid again: healthy again
    assert store.get("teams/a.yaml").broken_since is None
    mtime = os.stat(tmp_path / LastGoodStore.name_of("teams/a.yaml")).st_mtime_ns
    time.sleep(0.01)
    store.remember(entry())  # unchanged: not rewritten
    assert os.stat(tmp_path / LastGoodStore.name_of("teams/a.yaml")).st_mtime_ns == mtime


def test_a_write_leaves_no_temporary_file_and_a_read_only_store_is_not_an_error(tmp_path):
    store = LastGoodStore(tmp_path / "missing")
    assert store.put(entry()) is False  # no folder: logged, not raised
    ok = LastGoodStore(tmp_path)
    ok.put(entry())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_others_lists_entries_of_files_not_seen(tmp_path):
    store = LastGoodStore(tmp_path)
    store.put(entry())
    store.put(Entry("b.yaml", "x", (), 1.0))
    assert [e.display for e in store.others(["b.yaml"])] == ["teams/a.yaml"]
    store.forget("teams/a.yaml")
    assert store.others(["b.yaml"]) == []


def test_banner_names_since_when_and_every_problem_with_its_line():
    err = WorkflowFileError("teams/a.yaml", [Problem("teams/a.yaml", "unknown task id 'frist'",
                                                     ("workflow", "tasks", 1, "dependencies", 0), 7, 22)])
    short, md = banner(entry(broken_since=86400.0), err, "keep_last_good")
    assert short == ("⚠ running its last good version: teams/a.yaml is invalid since 1970-01-02 00:00:00 UTC "
                     "(teams/a.yaml:7:22: unknown task id 'frist').")
    assert "`teams/a.yaml:7:22` workflow.tasks[1].dependencies[0]: unknown task id 'frist'" in md
    assert "saved 1970-01-01 00:16:40 UTC" in md


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_block_over_its_budget_raises_and_the_outer_timer_is_re_armed():
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append("outer"))
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        with pytest.raises(file_budget.FileBudgetExceeded) as exc:
            with file_budget.limit(0.2):
                _spin(2.0)
        assert exc.value.shared is False and exc.value.seconds == 0.2
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        assert 4.0 < left < 4.9  # Airflow's timer goes on with what it had left
        assert signal.getsignal(signal.SIGALRM) is not None and fired == []
        with file_budget.limit(0.5):
            _spin(0.05)  # within budget: nothing raised
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_the_shared_parse_reserve_caps_each_file_and_stops_when_used_up():
    old = signal.signal(signal.SIGALRM, lambda *a: None)
    try:
        signal.setitimer(signal.ITIMER_REAL, 3.0)
        shared = file_budget.SharedParse()
        assert shared.reserve == 2.0 and 0.9 < shared.left() <= 1.0
        with pytest.raises(file_budget.FileBudgetExceeded) as exc:
            with file_budget.limit(10.0, shared):
                _spin(2.0)
        assert exc.value.shared is True
        with pytest.raises(file_budget.FileBudgetExceeded):
            with file_budget.limit(10.0, shared):
                pass  # nothing left: not even started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_read_only_store_reads_but_never_writes(tmp_path):
    LastGoodStore(tmp_path).put(entry())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    ro = LastGoodStore(tmp_path, read_only=True)
    assert ro.get("teams/a.yaml") == entry()
    assert ro.put(entry(text="workflow: {name: old}\n")) is False  # e.g. a task at an older bundle version
    assert ro.mark_broken(entry(), since=5.0).broken_since == 5.0
    ro.forget("teams/a.yaml")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
