# The official Airflow 3.3 image plus the iflow-airflow package (used by docker-compose.yaml).
#
#   docker compose build
#
# The package is installed (not editable) from this repository; the iflow workflow
# files and the loader `iflow_dags.py` come from ./dags, mounted at run time.
FROM apache/airflow:3.3.2

ARG AIRFLOW_VERSION=3.3.2

# Only what the package build needs (keeps the layer cache independent of dags/, tests/ ...).
COPY --chown=airflow:root pyproject.toml README* /opt/iflow-airflow/
COPY --chown=airflow:root iflow_airflow /opt/iflow-airflow/iflow_airflow

# Pin apache-airflow to the image's version so pip never up- or downgrades it.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/iflow-airflow
