"""Stable import path of the DAG loader: ``dags/iflow_dags.py`` and 3.4's ``dag_importer_configs`` name it.

The code lives in :mod:`iflow_airflow.build.loader`; this module only keeps the
path that users' dags folders and Airflow configurations store.
"""

from iflow_airflow.build.loader import IflowYamlImporter, load_workflows, to_import_errors

__all__ = ["IflowYamlImporter", "load_workflows", "to_import_errors"]
