"""
Serving backends, picked by name from an explicit dict.

The protocol (:class:`ServingBackend`): ``deploy(endpoint, version, loaded)`` creates or
updates the endpoint without dropping traffic and returns a small JSON dict (``endpoint``,
``url``, ``version``, ``previous_version``, ``unchanged``); ``invoke(deployed, payload,
content_type)`` sends one request; ``stop(endpoint)`` takes it down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_mlops.backends import load_class
from airflow_provider_mlops.exceptions import BackendNotAvailableError

if TYPE_CHECKING:
    from airflow_provider_mlops.config.loader import LoadedConfig
    from airflow_provider_mlops.registry.base import ModelVersion


class ServingBackend(Protocol):
    name: str

    def deploy(self, endpoint: str, version: ModelVersion, loaded: LoadedConfig) -> dict[str, Any]: ...

    def invoke(self, deployed: dict[str, Any], payload: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]: ...

    def stop(self, endpoint: str) -> None: ...


SERVING_BACKENDS: dict[str, str] = {
    "local": "airflow_provider_mlops.serving.local.LocalServing",
    "sagemaker": "airflow_provider_mlops.serving.sagemaker.SageMakerServing",
}

NOT_YET_AVAILABLE: dict[str, str] = {}


def get_serving(name: str, **kwargs: Any) -> ServingBackend:
    if name in SERVING_BACKENDS:
        backend: ServingBackend = load_class(SERVING_BACKENDS[name])(**kwargs)
        return backend
    raise BackendNotAvailableError(NOT_YET_AVAILABLE.get(name, f"unknown serving backend {name!r}; known: {sorted(SERVING_BACKENDS)}"))
