"""
Helpers for the Kubernetes backend tests: configs, job specs built as the operators
build them, and the pod as the API server would receive it.

No cluster runs here: pods are rendered by ``KubernetesPodOperator.build_pod_request_obj()`` and
checked against the Kubernetes OpenAPI schema.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from airflow_provider_mlops.backends.base import JobSpec
from airflow_provider_mlops.config.loader import LoadedConfig
from airflow_provider_mlops.config.models import MlopsConfig
from airflow_provider_mlops.operators.train import evaluation_job_spec, training_job_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
GPU_EXAMPLE = EXAMPLES / "breast-cancer-gpu" / "mlops.yaml"
#: The newest Kubernetes release kubernetes-validate ships that this test suite pins to.
K8S_VERSION = "1.33.0"
TRAIN_JOB = "demo-breast-cancer-gpu-train-0123456789"
EVAL_JOB = "demo-breast-cancer-gpu-evaluate-0123456789"


def example_configs() -> list[Path]:
    return sorted(EXAMPLES.glob("*/mlops.yaml"))


def kubernetes_variant(loaded: LoadedConfig) -> MlopsConfig:
    """The config as it is when it already trains on Kubernetes, else a GPU-training Kubernetes variant of it."""
    cfg = loaded.config
    if "kubernetes" in (cfg.training_backend, cfg.evaluation_backend):
        return cfg
    data = copy.deepcopy(cfg.model_dump(mode="json", exclude_none=True))
    data["training"]["backend"] = "kubernetes"  # registry and serving stay where the example has them
    data["evaluation"]["backend"] = "kubernetes"
    data["image"] = data.get("image") or f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{cfg.project}/{cfg.model}:1.0.0"
    data["training"]["channels"] = {name: f"pvc://mlops-data/{cfg.model}/{name}" for name in [*cfg.training.channels, cfg.evaluation.channel]}
    data["training"]["resources"] = {**data["training"].get("resources", {}), "gpus": 1, "cpu": "4", "memory": "16Gi"}
    data["evaluation"]["resources"] = {"gpus": 0, "cpu": "1", "memory": "2Gi"}
    data["evaluation"].pop("data", None)
    if (data.get("schedule") or {}).get("retrain_on_new_data"):
        # The retrain decision cannot see when pvc:// data changed, and config validation says so.
        data["schedule"]["retrain_on_new_data"] = False
    if cfg.registry_backend == "sagemaker" or cfg.serving_backend == "sagemaker":
        data["kubernetes"] = {"artifacts_uri": "s3://mlops-artifacts/models", "namespace": "ml"}
    else:
        data["kubernetes"] = {"artifacts_uri": "pvc://mlops-artifacts/models", "artifacts_local_path": "/mnt/mlops-artifacts", "namespace": "ml"}
    return MlopsConfig.model_validate(data)


def training_spec(loaded: LoadedConfig, cfg: MlopsConfig, name: str = TRAIN_JOB) -> JobSpec:
    """The training JobSpec, built by the same function ``MlopsTrainOperator.build_spec`` uses."""
    return training_job_spec(loaded, name, config=cfg)


def evaluation_spec(loaded: LoadedConfig, cfg: MlopsConfig, model_uri: str, name: str = EVAL_JOB) -> JobSpec:
    """The evaluation JobSpec, built by the same function ``MlopsEvaluateOperator.build_spec`` uses."""
    return evaluation_job_spec(loaded, name, model_uri=model_uri, image=cfg.image, config=cfg)


def as_sent(pod: Any) -> dict[str, Any]:
    """The pod as JSON, exactly as ``PodManager.run_pod_async`` sends it to the API server."""
    from kubernetes.client import ApiClient

    result: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    return result


def validate(pod_json: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(pod_json, K8S_VERSION, strict=True)


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "mlops.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
