"""Installing the package registers the iflow plugin once (entry point), also with the repo's plugins/ mounted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json
from airflow import plugins_manager
plugins, sources = plugins_manager._get_plugins()
iflow = [p for p in plugins if p.name == "iflow"]
print("JSON" + json.dumps({
    "count": len(iflow),
    "source": sources.get("iflow"),
    "listeners": sorted(m.__name__ for m in iflow[0].listeners) if iflow else [],
    "fastapi": [a["url_prefix"] for a in iflow[0].fastapi_apps] if iflow else [],
    "errors": plugins_manager.get_import_errors(),
}))
"""


@pytest.mark.airflow
def test_plugin_registered_once_from_the_entry_point(airflow_env):
    proc = airflow_env.run([sys.executable, "-c", SCRIPT],
                           extra_env={"AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.split("JSON", 1)[1])
    assert seen["count"] == 1
    assert seen["listeners"] == ["iflow_airflow.runtime.listeners.dagrun_events", "iflow_airflow.runtime.listeners.lifecycle",
                                 "iflow_airflow.runtime.listeners.task_events"]
    assert seen["fastapi"] == ["/iflow"]
    assert seen["errors"] == {}


@pytest.mark.airflow
def test_monitoring_switch_drops_the_task_and_run_listeners_only(airflow_env):
    proc = airflow_env.run([sys.executable, "-c", SCRIPT], extra_env={"AIRFLOW__IFLOW__MONITORING": "false"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.split("JSON", 1)[1])
    assert seen["listeners"] == ["iflow_airflow.runtime.listeners.lifecycle"]
