"""The iflow Airflow plugin, registered through the ``airflow.plugins`` entry point.

Installing the package is enough: Airflow loads entry-point plugins in every
component. ``plugins/`` in the repo therefore registers nothing itself.

* ``listeners``: ``lifecycle`` starts the resource keeper in the scheduler;
  ``task_events`` (worker) and ``dagrun_events`` (scheduler) log, measure and
  alert (see ``docs/monitoring.md``).
* ``fastapi_apps``: the iflow page and its JSON API at ``/iflow`` on the
  api-server (built on first request, so other components never import it);
  ``external_views``: its entry in the Airflow UI's navigation.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from iflow_airflow import settings
from iflow_airflow.runtime.listeners import dagrun_events, lifecycle, task_events
from iflow_airflow.runtime.plugin.lazy import LazyApp

URL_PREFIX = "/iflow"
# `[iflow] monitoring = false` keeps the resource keeper (pools) but drops the
# task and run listeners (events, metrics, alerts): the listener-overhead
# benchmark compares both, and an operator may want the switch.
MONITORING = settings.get("monitoring").strip().lower() not in ("false", "0", "no", "off")


class IflowPlugin(AirflowPlugin):
    name = "iflow"
    listeners = [lifecycle, task_events, dagrun_events] if MONITORING else [lifecycle]
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "iflow workflows"}]
    external_views = [{
        "name": "iflow",
        "href": f"{URL_PREFIX}/",
        "destination": "nav",
        "url_route": "iflow",
        "nav_top_level": True,
        "icon": f"{URL_PREFIX}/static/icon.svg",
    }]
