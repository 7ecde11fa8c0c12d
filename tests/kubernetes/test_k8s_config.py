"""The kubernetes: block and the rules for mixing Kubernetes steps with local and SageMaker ones."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_helpers import GPU_EXAMPLE, write_config

from airflow_provider_mlops.config.kubernetes import step_settings
from airflow_provider_mlops.config.loader import load_config
from airflow_provider_mlops.exceptions import ConfigError


def _gpu_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(GPU_EXAMPLE.read_text())
    data["training"].pop("source_dir", None)
    data["deployment"]["smoke_test"] = {"payload": "{}"}
    return data


def _error(tmp_path: Path, data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, data), root=tmp_path)
    errors = getattr(info.value, "errors", [info.value])
    assert len(errors) == 1, errors
    return errors[0]


def test_the_gpu_example_is_valid_and_merges_step_settings_over_the_block() -> None:
    cfg = load_config(GPU_EXAMPLE).config
    training, evaluation = step_settings(cfg, "training"), step_settings(cfg, "evaluation")
    assert training["namespace"] == evaluation["namespace"] == "ml-training"
    assert training["node_selector"]["karpenter.sh/nodepool"] == "gpu"
    assert evaluation["node_selector"] == {"karpenter.sh/nodepool": "cpu"}
    assert training["shm_size"] == "8Gi" and "shm_size" not in evaluation
    assert training["startup_timeout_seconds"] == 900 and training["gpu_toleration"] is True
    assert cfg.training.resources.gpus == 1 and cfg.evaluation.resources is not None and cfg.evaluation.resources.gpus == 0


def test_local_training_data_is_rejected_with_the_field_and_fix(tmp_path: Path) -> None:
    data = _gpu_data()
    data["training"]["channels"]["train"] = "data/train"
    error = _error(tmp_path, data)
    assert error.field == "training.channels.train"
    assert "a Kubernetes pod cannot read" in str(error) and "pvc://" in str(error)
    assert error.line is not None


def test_s3_artifacts_with_a_local_registry_are_rejected(tmp_path: Path) -> None:
    data = _gpu_data()
    data["kubernetes"]["artifacts_uri"] = "s3://bucket/models"
    error = _error(tmp_path, data)
    assert error.field == "kubernetes.artifacts_uri"
    assert "registry.backend, deployment.backend local read(s)" in str(error)


def test_pvc_artifacts_need_the_workers_mount_for_local_readers(tmp_path: Path) -> None:
    data = _gpu_data()
    del data["kubernetes"]["artifacts_local_path"]
    assert _error(tmp_path, data).field == "kubernetes.artifacts_local_path"


def test_pvc_artifacts_cannot_feed_a_sagemaker_registry(tmp_path: Path) -> None:
    data = _gpu_data()
    data["registry"] = {"backend": "sagemaker"}
    data["deployment"]["backend"] = "sagemaker"
    data["aws"] = {"role_arn": "arn:aws:iam::123456789012:role/sagemaker", "artifacts_uri": "s3://bucket/sagemaker"}
    error = _error(tmp_path, data)
    assert error.field == "kubernetes.artifacts_uri" and "s3://" in str(error)


def test_kubernetes_training_with_sagemaker_registry_and_serving(tmp_path: Path) -> None:
    data = _gpu_data()
    data["registry"] = {"backend": "sagemaker"}
    data["deployment"]["backend"] = "sagemaker"
    data["aws"] = {"role_arn": "arn:aws:iam::123456789012:role/sagemaker", "artifacts_uri": "s3://bucket/sagemaker"}
    data["kubernetes"]["artifacts_uri"] = "s3://bucket/models"
    del data["kubernetes"]["artifacts_local_path"]
    data["training"]["channels"] = {"train": "s3://bucket/data/train", "test": "s3://bucket/data/test"}
    cfg = load_config(write_config(tmp_path, data), root=tmp_path).config
    assert (cfg.training_backend, cfg.registry_backend, cfg.serving_backend) == ("kubernetes", "sagemaker", "sagemaker")


def test_local_evaluation_after_kubernetes_training_reads_the_shared_volume(tmp_path: Path) -> None:
    data = _gpu_data()
    data["evaluation"]["backend"] = "local"
    data["training"]["channels"] = {"train": "pvc://data/train"}
    data["evaluation"]["data"] = "data/test"
    del data["evaluation"]["kubernetes"]
    cfg = load_config(write_config(tmp_path, data), root=tmp_path).config
    assert cfg.evaluation_backend == "local"


def test_kubernetes_evaluation_needs_kubernetes_training(tmp_path: Path) -> None:
    data = _gpu_data()
    data["training"]["backend"] = "local"
    data["training"]["channels"] = {"train": "data/train", "test": "pvc://data/test"}
    del data["training"]["kubernetes"]
    error = _error(tmp_path, data)
    assert error.field == "evaluation.backend" and "set training.backend: kubernetes" in str(error)


def test_missing_artifacts_location(tmp_path: Path) -> None:
    data = _gpu_data()
    del data["kubernetes"]["artifacts_uri"]
    assert _error(tmp_path, data).field == "kubernetes.artifacts_uri"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"shm_size": "lots"}, "training.kubernetes.shm_size"),
        ({"tolerations": [{"key": "gpu", "effect": "Sometimes"}]}, "training.kubernetes.tolerations.0.effect"),
        ({"node_selecter": {"a": "b"}}, "training.kubernetes.node_selecter"),
        ({"affinity": {"node_affinity": {}}}, "training.kubernetes"),
        ({"volumes": [{"name": "v", "mount_path": "/v", "pvc": "a", "secret": "b"}]}, "training.kubernetes.volumes.0"),
        ({"secrets": [{"secret": "hf", "env": "HF_TOKEN"}]}, "training.kubernetes.secrets.0"),
    ],
)
def test_bad_step_keys_name_their_field(tmp_path: Path, patch: dict[str, Any], field: str) -> None:
    data = _gpu_data()
    data["training"]["kubernetes"] = {**copy.deepcopy(data["training"]["kubernetes"]), **patch}
    assert _error(tmp_path, data).field == field


def test_a_malformed_pvc_uri_is_rejected(tmp_path: Path) -> None:
    data = _gpu_data()
    data["training"]["channels"]["train"] = "pvc://Bad_Claim/train"
    error = _error(tmp_path, data)
    assert error.field == "training.channels.train" and "lowercase claim name" in str(error)
