"""Model registries, picked by name from an explicit dict."""

from __future__ import annotations

from typing import Any

from airflow_provider_mlops.backends import load_class
from airflow_provider_mlops.exceptions import BackendNotAvailableError
from airflow_provider_mlops.registry.base import APPROVED, PENDING, REJECTED, ModelRegistry, ModelVersion

REGISTRIES: dict[str, str] = {
    "local": "airflow_provider_mlops.registry.local.LocalModelRegistry",
    "sagemaker": "airflow_provider_mlops.registry.sagemaker.SageMakerModelRegistry",
}

#: Registries named but not usable in this release, with what to use instead. Empty: the config
#: schema offers only what :data:`REGISTRIES` holds (an MLflow registry may come later).
NOT_YET_AVAILABLE: dict[str, str] = {}


def get_registry(name: str, **kwargs: Any) -> ModelRegistry:
    if name in REGISTRIES:
        registry: ModelRegistry = load_class(REGISTRIES[name])(**kwargs)
        return registry
    raise BackendNotAvailableError(NOT_YET_AVAILABLE.get(name, f"unknown registry {name!r}; known: {sorted(REGISTRIES)}"))


__all__ = ["APPROVED", "PENDING", "REGISTRIES", "REJECTED", "ModelRegistry", "ModelVersion", "get_registry"]
