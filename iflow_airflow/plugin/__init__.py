"""The iflow Airflow plugin, registered through the ``airflow.plugins`` entry point.

Installing the package is enough: Airflow loads entry-point plugins in every
component. ``plugins/`` in the repo therefore registers nothing itself.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from iflow_airflow.listeners import lifecycle


class IflowPlugin(AirflowPlugin):
    name = "iflow"
    listeners = [lifecycle]
