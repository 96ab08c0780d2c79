"""gc_pause: the collector is paused around the loader and the dashboard queries, and always restored."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest

from iflow_airflow.build import loader as importer
from iflow_airflow.gc_pause import collector_paused

WORKFLOW = "workflow:\n  name: gc_wf\n  tasks:\n    - {id: a, command: 'true'}\n"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("AIRFLOW__IFLOW__PLAN_CACHE", "off")
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    return tmp_path


def test_paused_during_the_load_and_enabled_after(folder, monkeypatch):
    seen: list[bool] = []
    real = importer.load_folder
    monkeypatch.setattr(importer, "load_folder", lambda *a, **k: (seen.append(gc.isenabled()), real(*a, **k))[1])
    assert gc.isenabled()
    namespace: dict = {}
    importer.load_workflows(namespace, folder)
    assert seen == [False]
    assert gc.isenabled()
    assert "iflow__gc_wf" in namespace


def test_a_collector_that_was_off_stays_off(folder):
    gc.disable()
    try:
        importer.load_workflows({}, folder)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_restored_when_the_load_raises(folder, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("compile failed")

    monkeypatch.setattr(importer, "load_folder", boom)
    with pytest.raises(RuntimeError):
        importer.load_workflows({}, folder)
    assert gc.isenabled()


def test_overlapping_pauses_enable_the_collector_when_the_last_one_ends():
    """Two requests of the api-server overlap: the first to finish must not switch the collector on."""
    assert gc.isenabled()
    first, second = collector_paused(), collector_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_pauses_in_threads():
    inside = threading.Barrier(3)
    leave = threading.Event()
    seen: list[bool] = []

    def request() -> None:
        with collector_paused():
            inside.wait(5)
            leave.wait(5)
            seen.append(gc.isenabled())

    threads = [threading.Thread(target=request) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait(5)
    assert not gc.isenabled()
    leave.set()
    for t in threads:
        t.join(5)
    assert seen == [False, False] and gc.isenabled()
