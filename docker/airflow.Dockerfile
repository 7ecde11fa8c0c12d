# Airflow 3.3 with this provider installed, for docker-compose.yaml (a local stack only).
# Build context: the repository root.  docker compose build
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root pyproject.toml README.md /opt/mlops/src/
COPY --chown=airflow:root airflow_provider_mlops /opt/mlops/src/airflow_provider_mlops

# Pin the image's own Airflow so that no extra can move it.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/mlops/src[aws,slack,kubernetes,examples]"
