"""Outside Airflow: the REST client, the engine API (``WorkflowEngine``), progress and the CLI."""
