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


LOADER = "from iflow_airflow.importer import load_workflows\nload_workflows(globals())\n"


def _units(root: Path) -> SimpleNamespace:
    bundle = _tree(root)
    (root / "team" / "iflow_dags.py").write_text(LOADER)  # team/ is its own parse unit
    (root / "team" / "etl").mkdir()
    (root / "team" / "etl" / "c.yaml").write_text("workflow: {name: c}\n")
    return bundle


def _looked(upkeep: Upkeep, clock: Clock, bundle, busy=lambda info: False) -> list:
    clock.now += 1.0
    return upkeep.changed_loaders([bundle], lambda rel, b: str(rel), busy=busy)


def test_an_edit_queues_only_the_loader_of_its_own_unit(tmp_path):
    bundle, clock = _units(tmp_path), Clock()
    upkeep = Upkeep(clock=clock, watch_interval=1.0)
    assert _looked(upkeep, clock, bundle) == []
    (tmp_path / "team" / "etl" / "c.yaml").write_text("workflow: {name: c, description: edited}\n")
    assert _looked(upkeep, clock, bundle) == ["team/iflow_dags.py"]
    (tmp_path / "a.yaml").write_text("workflow: {name: a, description: edited}\n")
    assert _looked(upkeep, clock, bundle) == ["iflow_dags.py"]
    (tmp_path / "iflow.defaults.yaml").write_text("retries: 2\n")  # defaults reach every unit below
    assert _looked(upkeep, clock, bundle) == ["iflow_dags.py", "team/iflow_dags.py"]


def test_a_unit_being_parsed_when_its_file_changed_is_queued_again_after_that_parse(tmp_path):
    bundle, clock = _units(tmp_path), Clock()
    upkeep = Upkeep(clock=clock, watch_interval=1.0)
    _looked(upkeep, clock, bundle)
    (tmp_path / "team" / "b.yml").write_text("workflow: {name: b, description: edited}\n")
    parsing = {"team/iflow_dags.py"}
    assert _looked(upkeep, clock, bundle, busy=lambda info: info in parsing) == []  # Airflow would drop it
    assert _looked(upkeep, clock, bundle, busy=lambda info: info in parsing) == []
    parsing.clear()
    assert _looked(upkeep, clock, bundle) == ["team/iflow_dags.py"]
    assert _looked(upkeep, clock, bundle) == []


def test_units_with_errors_are_parsed_again_after_any_change(tmp_path):
    bundle, clock = _units(tmp_path), Clock()
    upkeep = Upkeep(clock=clock, watch_interval=1.0)
    _looked(upkeep, clock, bundle)
    upkeep.note_errors("dags-folder", tmp_path, "iflow_dags.py", True)
    (tmp_path / "team" / "b.yml").unlink()  # e.g. frees a name a root-unit file wants
    assert _looked(upkeep, clock, bundle) == ["iflow_dags.py", "team/iflow_dags.py"]
    upkeep.note_errors("dags-folder", tmp_path, "iflow_dags.py", False)
    (tmp_path / "team" / "etl" / "c.yaml").unlink()
    assert _looked(upkeep, clock, bundle) == ["team/iflow_dags.py"]


def test_an_unchanged_loader_is_fresh_until_the_reparse_interval(tmp_path):
    from datetime import datetime, timedelta, timezone

    _units(tmp_path)
    loader = tmp_path / "iflow_dags.py"
    parsed = datetime.fromtimestamp(os.stat(loader).st_mtime + 5, tz=timezone.utc)
    upkeep = Upkeep(clock=Clock(), watch_interval=1.0, reparse_interval=600)
    assert upkeep.fresh(loader, parsed, parsed + timedelta(seconds=599))
    assert not upkeep.fresh(loader, parsed, parsed + timedelta(seconds=600))
    assert not upkeep.fresh(loader, None, parsed)  # never parsed
    assert not upkeep.fresh(tmp_path / "plain_dag.py", parsed, parsed)  # not ours: Airflow's schedule
    os.utime(loader, (parsed.timestamp() + 1, parsed.timestamp() + 1))  # the loader itself changed
    assert not upkeep.fresh(loader, parsed, parsed + timedelta(seconds=10))
    assert not Upkeep(watch_interval=0, reparse_interval=600).fresh(tmp_path / "team" / "iflow_dags.py", parsed,
                                                                    parsed)  # no watch: nothing sees changes


def test_with_yaml_units_a_changed_yaml_file_is_queued_itself(tmp_path):
    bundle, clock = _units(tmp_path), Clock()
    upkeep = Upkeep(clock=clock, watch_interval=1.0, yaml_units=True)  # Airflow 3.4's IflowYamlImporter
    _looked(upkeep, clock, bundle)
    (tmp_path / "team" / "etl" / "c.yaml").write_text("workflow: {name: c, description: edited}\n")
    (tmp_path / "a.yaml").unlink()  # gone: nothing to parse (Airflow removes its DAG)
    assert _looked(upkeep, clock, bundle) == ["iflow_dags.py", "team/etl/c.yaml", "team/iflow_dags.py"]
    from datetime import datetime, timedelta, timezone

    yml = tmp_path / "team" / "b.yml"
    parsed = datetime.fromtimestamp(os.stat(yml).st_mtime + 5, tz=timezone.utc)
    upkeep.reparse_interval = 600
    assert upkeep.fresh(yml, parsed, parsed + timedelta(seconds=1))  # a YAML unit, unchanged: left out
    assert not Upkeep(watch_interval=1.0, reparse_interval=600).fresh(yml, parsed, parsed)  # 3.3: not a unit


def test_a_loader_added_or_removed_queues_its_unit_and_the_unit_above(tmp_path):
    bundle, clock = _units(tmp_path), Clock()
    upkeep = Upkeep(clock=clock, watch_interval=1.0)
    _looked(upkeep, clock, bundle)
    (tmp_path / "team" / "iflow_dags.py").unlink()  # team's files go back to the root unit
    assert _looked(upkeep, clock, bundle) == ["iflow_dags.py"]
    (tmp_path / "team" / "etl" / "iflow_dags.py").write_text(LOADER)  # etl/ becomes a unit
    assert _looked(upkeep, clock, bundle) == ["iflow_dags.py", "team/etl/iflow_dags.py"]
    (tmp_path / "team" / "etl" / "helper.py").write_text("x = 1\n")  # not a loader: no change
    assert _looked(upkeep, clock, bundle) == []


def test_a_changed_unit_is_parsed_once_more_after_airflows_serialization_interval(tmp_path):
    bundle, clock = _units(tmp_path), Clock()
    upkeep = Upkeep(clock=clock, watch_interval=1.0, again_after=31.0)
    _looked(upkeep, clock, bundle)
    (tmp_path / "team" / "b.yml").write_text("workflow: {name: b, description: second edit}\n")
    assert _looked(upkeep, clock, bundle) == ["team/iflow_dags.py"]  # at once (Airflow may skip its write)
    clock.now += 20
    assert _looked(upkeep, clock, bundle) == []
    clock.now += 11
    assert _looked(upkeep, clock, bundle) == ["team/iflow_dags.py"]  # once more, when Airflow stores it
    clock.now += 60
    assert _looked(upkeep, clock, bundle) == []
