"""Async triggers used by deferred iflow tasks (run by Airflow's triggerer)."""

from __future__ import annotations

from iflow_airflow.triggers.wait import IflowWaitTrigger

__all__ = ["IflowWaitTrigger"]
