# The official Airflow 3.3 image plus the iflow-airflow wheel (used by docker-compose.yaml).
#
#   docker compose build
#
# The first stage builds the wheel exactly as `make dist` does (`pip wheel --no-deps -w dist .`);
# the image installs that wheel, as any Airflow deployment would (`pip install iflow_airflow-*.whl`).
# The iflow workflow files and the loader `iflow_dags.py` come from ./dags, and the [iflow]
# settings from ./config/iflow.cfg, both mounted at run time.
ARG AIRFLOW_VERSION=3.3.2

FROM apache/airflow:${AIRFLOW_VERSION} AS wheel
# Only what the package build needs (keeps the layer cache independent of dags/, tests/ ...).
COPY --chown=airflow:root pyproject.toml README* /opt/iflow-airflow/
COPY --chown=airflow:root iflow_airflow /opt/iflow-airflow/iflow_airflow
RUN pip wheel --no-cache-dir --no-deps -w /opt/iflow-airflow/dist /opt/iflow-airflow

FROM apache/airflow:${AIRFLOW_VERSION}
ARG AIRFLOW_VERSION
COPY --from=wheel /opt/iflow-airflow/dist /opt/iflow-airflow/dist
# Pin apache-airflow to the image's version so pip never up- or downgrades it.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/iflow-airflow/dist/*.whl
