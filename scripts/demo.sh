#!/usr/bin/env bash
# The main job: the example model's full pipeline, locally, on real Airflow DAGs (SQLite, local backend).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/mlops demo "$@"
