"""The JSON Schema of mlops.yaml, for editors (yaml-language-server) and CI."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_mlops.config.models import MlopsConfig

SCHEMA_ID = "https://github.com/airflow-provider-mlops/airflow-provider-mlops/schema/mlops.schema.json"


def json_schema() -> dict[str, Any]:
    schema = MlopsConfig.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
