"""The loader pauses Python's cyclic collector while it compiles and builds, and always restores it."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from iflow_airflow import importer

WORKFLOW = "workflow:\n  name: gc_wf\n  tasks:\n    - {id: a, command: 'true'}\n"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("AIRFLOW__IFLOW__PLAN_CACHE", "off")
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    return tmp_path


def test_paused_during_the_load_and_enabled_after(folder, monkeypatch):
    seen: list[bool] = []
    real = importer.compile_folder
    monkeypatch.setattr(importer, "compile_folder", lambda *a, **k: (seen.append(gc.isenabled()), real(*a, **k))[1])
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

    monkeypatch.setattr(importer, "compile_folder", boom)
    with pytest.raises(RuntimeError):
        importer.load_workflows({}, folder)
    assert gc.isenabled()
