"""Serving backends, picked by name from an explicit dict."""

from __future__ import annotations

from typing import Any

from airflow_provider_mlops.backends import load_class
from airflow_provider_mlops.exceptions import BackendNotAvailableError

SERVING_BACKENDS: dict[str, str] = {
    "local": "airflow_provider_mlops.serving.local.LocalServing",
}

NOT_YET_AVAILABLE = {
    "sagemaker": "SageMaker endpoints are not available in this release; use deployment.backend: local",
}


def get_serving(name: str, **kwargs: Any) -> Any:
    if name in SERVING_BACKENDS:
        return load_class(SERVING_BACKENDS[name])(**kwargs)
    raise BackendNotAvailableError(NOT_YET_AVAILABLE.get(name, f"unknown serving backend {name!r}; known: {sorted(SERVING_BACKENDS)}"))
