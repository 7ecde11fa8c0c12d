"""
Compute backends, picked by name from an explicit dict (grep for a backend's class here).

The classes load on first use, so a DAG file that names ``sagemaker`` imports no boto3.
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow_provider_mlops.backends.base import ComputeBackend, JobSpec, JobState
from airflow_provider_mlops.exceptions import BackendNotAvailableError

COMPUTE_BACKENDS: dict[str, str] = {
    "local": "airflow_provider_mlops.backends.local.LocalComputeBackend",
    "fake": "airflow_provider_mlops.backends.fake.FakeComputeBackend",
    "sagemaker": "airflow_provider_mlops.backends.sagemaker.SageMakerComputeBackend",
    "kubernetes": "airflow_provider_mlops.backends.kubernetes.KubernetesComputeBackend",
}

#: The local backend's runtimes (``local.runtime`` in mlops.yaml): ``get_compute_backend("local", runtime=...)``.
LOCAL_RUNTIMES: dict[str, str] = {
    "process": COMPUTE_BACKENDS["local"],
    "container": "airflow_provider_mlops.backends.local_container.LocalContainerBackend",
}

#: Backends the config accepts but this release cannot run yet, with what to do instead.
NOT_YET_AVAILABLE: dict[str, str] = {}


def load_class(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def get_compute_backend(name: str, **kwargs: Any) -> ComputeBackend:
    """Build the compute backend called ``name`` with ``kwargs`` (see each class; ``local`` takes a ``runtime``)."""
    if name == "local" and "runtime" in kwargs:
        runtime = kwargs.pop("runtime")
        if runtime not in LOCAL_RUNTIMES:
            raise BackendNotAvailableError(f"unknown local runtime {runtime!r}; known: {sorted(LOCAL_RUNTIMES)}")
        local: ComputeBackend = load_class(LOCAL_RUNTIMES[runtime])(**kwargs)
        return local
    if name in COMPUTE_BACKENDS:
        backend: ComputeBackend = load_class(COMPUTE_BACKENDS[name])(**kwargs)
        return backend
    if name in NOT_YET_AVAILABLE:
        raise BackendNotAvailableError(NOT_YET_AVAILABLE[name])
    raise BackendNotAvailableError(f"unknown compute backend {name!r}; known: {sorted(COMPUTE_BACKENDS)}")


__all__ = ["COMPUTE_BACKENDS", "LOCAL_RUNTIMES", "ComputeBackend", "JobSpec", "JobState", "get_compute_backend", "load_class"]
