"""Component lifecycle hooks: the resource keeper in the scheduler, the upkeep in the dag-processor.

Every Airflow process calls these, every task process included, so the keeper's
module (and the compiler behind it) is imported only by a job (scheduler,
triggerer, dag-processor ``Job``), never by a task.
"""

from __future__ import annotations

import logging
import sys

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)


@hookimpl
def on_starting(component):
    if type(component).__name__ != "Job":  # a task runner, api-server, ...: nothing to keep
        return
    if "airflow.dag_processing.manager" in sys.modules:  # `airflow dag-processor` imported it to run it
        from iflow_airflow.runtime import dag_processor

        dag_processor.install()
    try:
        from iflow_airflow.runtime import keeper as resource_keeper

        resource_keeper.start_if_scheduler(component)
    except Exception:  # monitoring and upkeep never take a component down
        log.exception("iflow: could not start the resource keeper")


@hookimpl
def before_stopping(component):
    resource_keeper = sys.modules.get("iflow_airflow.runtime.keeper")
    if resource_keeper is None:  # never started in this process
        return
    try:
        resource_keeper.stop()
    except Exception:
        log.exception("iflow: could not stop the resource keeper")
