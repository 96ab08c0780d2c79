"""iflow-airflow: iflow workflow files (YAML) as Apache Airflow 3 DAGs."""

__version__ = "0.1.0"
