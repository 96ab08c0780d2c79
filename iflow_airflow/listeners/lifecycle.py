"""Component lifecycle hooks: start the resource keeper inside the scheduler."""

from __future__ import annotations

import logging

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)


@hookimpl
def on_starting(component):
    try:
        from iflow_airflow import resource_keeper

        resource_keeper.start_if_scheduler(component)
    except Exception:  # monitoring and upkeep never take a component down
        log.exception("iflow: could not start the resource keeper")


@hookimpl
def before_stopping(component):
    try:
        from iflow_airflow import resource_keeper

        resource_keeper.stop()
    except Exception:
        log.exception("iflow: could not stop the resource keeper")
