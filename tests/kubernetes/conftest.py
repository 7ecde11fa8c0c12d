"""Fixtures for the Kubernetes backend tests (helpers live in k8s_helpers.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from k8s_cluster import KUBECONFIG
from k8s_helpers import GPU_EXAMPLE

from airflow_provider_mlops.config.kubernetes import step_settings
from airflow_provider_mlops.config.loader import LoadedConfig, load_config


@pytest.fixture
def gpu_example() -> LoadedConfig:
    return load_config(GPU_EXAMPLE)


@pytest.fixture
def gpu_settings(gpu_example: LoadedConfig) -> dict[str, dict[str, Any]]:
    cfg = gpu_example.config
    return {"training": step_settings(cfg, "training"), "evaluation": step_settings(cfg, "evaluation")}


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig the provider's hook can load (it is never contacted: the pods API is in memory)."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": str(path)}}
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_TEST", json.dumps(connection))
    return path
