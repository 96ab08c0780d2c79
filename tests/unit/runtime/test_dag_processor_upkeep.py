"""The dag-processor upkeep's file rules, without a dag-processor (the e2e tests run it for real)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from iflow_airflow.runtime.dag_processor import Upkeep


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _tree(root: Path) -> SimpleNamespace:
    (root / "team").mkdir(parents=True)
    (root / "iflow_dags.py").write_text("from iflow_airflow.importer import load_workflows\nload_workflows(globals())\n")
    (root / "plain_dag.py").write_text("from airflow.sdk import DAG\n")
    (root / "a.yaml").write_text("workflow: {name: a}\n")
    (root / "team" / "b.yml").write_text("workflow: {name: b}\n")
    (root / ".git").mkdir()
    (root / ".git" / "x.yaml").write_text("ignored: hidden folders\n")
    return SimpleNamespace(name="dags-folder", path=root)


def test_existing_yaml_lists_the_bundles_yaml_files_outside_hidden_folders(tmp_path):
    _tree(tmp_path)
    assert Upkeep.existing_yaml(tmp_path) == {"a.yaml", "team/b.yml"}
    assert Upkeep.existing_yaml(None) == set()


def test_a_yaml_change_queues_the_loader_files_only_once_per_change(tmp_path):
    bundle, clock = _tree(tmp_path), Clock()
    upkeep = Upkeep(clock=clock, watch_interval=1.0)
    info = lambda rel, b: (str(rel), b.name)  # noqa: E731
    assert upkeep.changed_loaders([bundle], info) == []  # first look: a baseline, nothing queued
    clock.now = 1.0
    assert upkeep.changed_loaders([bundle], info) == []  # nothing changed
    (tmp_path / "a.yaml").write_text("workflow: {name: a, description: edited}\n")
    clock.now = 1.5
    assert upkeep.changed_loaders([bundle], info) == []  # not time to look yet
    clock.now = 2.0
    assert upkeep.changed_loaders([bundle], info) == [("iflow_dags.py", "dags-folder")]
    clock.now = 3.0
    assert upkeep.changed_loaders([bundle], info) == []
    (tmp_path / "team" / "b.yml").unlink()  # a removed file is a change too
    clock.now = 4.0
    assert upkeep.changed_loaders([bundle], info) == [("iflow_dags.py", "dags-folder")]


def test_watch_interval_zero_turns_the_watch_off(tmp_path):
    bundle = _tree(tmp_path)
    upkeep = Upkeep(clock=Clock(), watch_interval=0)
    upkeep.changed_loaders([bundle], lambda rel, b: rel)
    (tmp_path / "a.yaml").write_text("changed\n")
    assert upkeep.changed_loaders([bundle], lambda rel, b: rel) == []


def test_is_loader_rereads_a_file_only_when_its_mtime_changes(tmp_path):
    _tree(tmp_path)
    upkeep = Upkeep()
    assert upkeep.is_loader(tmp_path / "iflow_dags.py") and not upkeep.is_loader(tmp_path / "plain_dag.py")
    path = tmp_path / "plain_dag.py"
    path.write_text("from iflow_airflow.importer import load_workflows\n")
    os.utime(path, (1, 1))
    assert upkeep.is_loader(path)
    assert not upkeep.is_loader(tmp_path / "missing.py")
