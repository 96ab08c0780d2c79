"""The one file a user puts in the Airflow dags folder.

Every iflow workflow file (``*.yaml``/``*.yml`` with a top-level ``workflow:``)
in this folder and below becomes one Airflow DAG. A broken file shows in the
UI's import errors under its own name and never hides the others.
"""

from iflow_airflow.importer import load_workflows

load_workflows(globals())
