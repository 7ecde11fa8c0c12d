"""Pods rendered through KubernetesPodOperator.build_pod_request_obj(), validated against the Kubernetes schema."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from k8s_helpers import (
    EVAL_JOB,
    TRAIN_JOB,
    as_sent,
    evaluation_spec,
    example_configs,
    kubernetes_variant,
    training_spec,
    validate,
)

from airflow_provider_mlops.backends.base import JobSpec
from airflow_provider_mlops.backends.kubernetes_pod import (
    ATTEMPT_LABEL,
    JOB_LABEL,
    RUNNER_MODULE,
    artifact_locations,
    attempt_name,
    render_pod,
)
from airflow_provider_mlops.config.kubernetes import step_settings
from airflow_provider_mlops.config.loader import LoadedConfig, load_config
from airflow_provider_mlops.exceptions import BackendError
from airflow_provider_mlops.naming import job_name


def _base(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "base")


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def _both_pods(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    loaded = load_config(path)
    cfg = kubernetes_variant(loaded)
    train_settings, eval_settings = step_settings(cfg, "training"), step_settings(cfg, "evaluation")
    train = training_spec(loaded, cfg)
    model_uri = artifact_locations(train.name, train_settings)["model_uri"]
    evaluate = evaluation_spec(loaded, cfg, model_uri)
    return as_sent(render_pod(train, train_settings)), as_sent(render_pod(evaluate, eval_settings))


@pytest.mark.parametrize("path", example_configs(), ids=lambda p: p.parent.name)
def test_every_example_renders_schema_valid_gpu_training_and_cpu_evaluation_pods(path: Path) -> None:
    train, evaluate = _both_pods(path)
    for pod in (train, evaluate):
        validate(pod)
        assert pod["spec"]["restartPolicy"] == "Never"
        assert [c["name"] for c in pod["spec"]["containers"]] == ["base", "airflow-xcom-sidecar"]
        assert _base(pod)["command"] == ["python", "-m", RUNNER_MODULE]
        assert {"/opt/ml/input", "/opt/ml/model", "/opt/ml/output", "/airflow/xcom"} <= set(_mounts(_base(pod)))
    assert _base(train)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in _base(evaluate)["resources"].get("limits", {})
    assert train["metadata"]["name"] == TRAIN_JOB  # attempt 1 is named after the job itself
    assert evaluate["metadata"]["name"] == EVAL_JOB


def test_gpu_example_trains_on_the_gpu_node_pool(gpu_example: LoadedConfig, gpu_settings: dict[str, Any]) -> None:
    cfg = gpu_example.config
    pod = as_sent(render_pod(training_spec(gpu_example, cfg), gpu_settings["training"]))
    validate(pod)
    spec, base = pod["spec"], _base(pod)
    assert pod["metadata"]["namespace"] == "ml-training"
    assert spec["nodeSelector"] == {"karpenter.sh/nodepool": "gpu", "nvidia.com/gpu.present": "true"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["serviceAccountName"] == "mlops-trainer"
    assert spec["imagePullSecrets"] == [{"name": "ecr-pull"}]
    assert spec["activeDeadlineSeconds"] == 7200
    assert base["image"] == cfg.image
    assert base["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"},
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert volumes["pvc-mlops-data"]["persistentVolumeClaim"] == {"claimName": "mlops-data"}
    assert volumes["pvc-mlops-artifacts"]["persistentVolumeClaim"] == {"claimName": "mlops-artifacts"}
    mounts = _mounts(base)
    assert mounts["/dev/shm"]["name"] == "dshm"
    assert mounts["/opt/ml/input/data/train"] == {
        "mountPath": "/opt/ml/input/data/train", "name": "pvc-mlops-data", "readOnly": True, "subPath": "breast-cancer/train",
    }
    assert mounts["/mnt/mlops-artifacts"]["subPath"] == "models"
    env = _env(base)
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_NUM_GPUS"] == "1"
    assert env["SM_HP_MAX_ITER"] == "500"
    assert env["MLOPS_MODEL_URI"] == f"/mnt/efs/mlops-artifacts/{TRAIN_JOB}/model"
    assert env["MLOPS_MODEL_PUBLISH"] == f"/mnt/mlops-artifacts/{TRAIN_JOB}/model.tar.gz"
    assert pod["metadata"]["labels"][JOB_LABEL] == TRAIN_JOB
    assert pod["metadata"]["labels"][ATTEMPT_LABEL] == "1"


def test_gpu_example_evaluates_on_a_cpu_pool_with_its_own_resources(
    gpu_example: LoadedConfig, gpu_settings: dict[str, Any]
) -> None:
    cfg = gpu_example.config
    model_uri = artifact_locations(TRAIN_JOB, gpu_settings["training"])["model_uri"]
    pod = as_sent(render_pod(evaluation_spec(gpu_example, cfg, model_uri), gpu_settings["evaluation"]))
    validate(pod)
    spec, base = pod["spec"], _base(pod)
    assert spec["nodeSelector"] == {"karpenter.sh/nodepool": "cpu"}
    assert not spec.get("tolerations")
    assert base["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
    assert "/dev/shm" not in _mounts(base)
    # The trained model is read from the shared artifacts volume, where training published it.
    assert _mounts(base)["/opt/ml/input/data/model"] == {
        "mountPath": "/opt/ml/input/data/model", "name": "pvc-mlops-artifacts", "readOnly": True,
        "subPath": f"models/{TRAIN_JOB}/model",
    }
    assert _env(base)["MLOPS_JOB_KIND"] == "processing"


def test_attempt_names_are_deterministic_bounded_and_keep_the_job_hash() -> None:
    name = job_name("mlops__a-very-long-project-name__a-very-long-model-name__train", "manual__2026-01-01", "train")
    assert len(name) == 63
    assert attempt_name(name, 1) == name
    second, twelfth = attempt_name(name, 2), attempt_name(name, 12)
    assert second == attempt_name(name, 2) and len(second) <= 63 and len(twelfth) <= 63
    assert second.endswith(f"-{name.rsplit('-', 1)[1]}-a2") and twelfth.endswith("-a12")
    # Short names are the local backend's: <job>, <job>-a2, ...
    assert [attempt_name("short-abc", n) for n in (1, 2, 3)] == ["short-abc", "short-abc-a2", "short-abc-a3"]


def test_task_context_adds_the_providers_labels_and_the_attempt_names_the_pod(
    gpu_example: LoadedConfig, gpu_settings: dict[str, Any]
) -> None:
    ti = SimpleNamespace(dag_id="mlops__demo__breast-cancer-gpu__train", task_id="train", try_number=2, map_index=-1)
    context: Any = {"ti": ti, "run_id": "manual__2026-01-01T00:00:00+00:00", "dag": SimpleNamespace()}
    spec = training_spec(gpu_example, gpu_example.config)
    pod = as_sent(render_pod(spec, gpu_settings["training"], attempt=2, context=context))
    validate(pod)
    labels = pod["metadata"]["labels"]
    assert pod["metadata"]["name"] == f"{TRAIN_JOB}-a2"
    assert labels["try_number"] == "2" and labels["task_id"] == "train" and labels["kubernetes_pod_operator"] == "True"
    assert labels[ATTEMPT_LABEL] == "2" and labels[JOB_LABEL] == TRAIN_JOB
    # The attempt's own name keys what it writes, so a failed attempt's files never mix with the next one's.
    env = _env(_base(pod))
    assert env["MLOPS_JOB_NAME"] == f"{TRAIN_JOB}-a2"
    assert env["MLOPS_MODEL_URI"] == f"/mnt/efs/mlops-artifacts/{TRAIN_JOB}-a2/model"


def test_secrets_volumes_affinity_and_s3_artifacts(gpu_example: LoadedConfig) -> None:
    settings = {
        "namespace": "ml",
        "artifacts_uri": "s3://bucket/mlops",
        "secrets": [
            {"secret": "hf", "key": "token", "env": "HF_TOKEN"},
            {"secret": "gcp", "mount_path": "/var/secrets/gcp"},
            {"secret": "db"},
        ],
        "volumes": [
            {"name": "cache", "mount_path": "/cache", "pvc": "hf-cache"},
            {"name": "scratch", "mount_path": "/scratch", "empty_dir": "50Gi"},
            {"name": "conf", "mount_path": "/etc/conf", "config_map": "train-conf", "read_only": True},
        ],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["p4d.24xlarge"]}]}
        ]}}},
        "gpu_toleration": False,
        "image_pull_policy": "Always",
        "priority_class": "training-high",
        "annotations": {"karpenter.sh/do-not-disrupt": "true"},
    }
    spec = JobSpec(
        name=TRAIN_JOB, kind="training", entrypoint="train.py", image="img:1",
        channels={"train": "s3://bucket/data/train"}, resources={"gpus": 8, "memory": "900Gi"},
    )
    pod = as_sent(render_pod(spec, settings))
    validate(pod)
    base = _base(pod)
    env = _env(base)
    assert env["HF_TOKEN"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    assert base["envFrom"] == [{"secretRef": {"name": "db"}}]
    assert env["MLOPS_CHANNELS"] == '{"train": "s3://bucket/data/train"}'
    assert env["MLOPS_MODEL_URI"] == f"s3://bucket/mlops/{TRAIN_JOB}/model.tar.gz"
    assert env["MLOPS_OUTPUT_URI"] == f"s3://bucket/mlops/{TRAIN_JOB}/output"
    mounts = _mounts(base)
    assert "/opt/ml/input/data/train" not in mounts  # s3 channels are fetched by the runner
    assert {"/cache", "/scratch", "/etc/conf", "/var/secrets/gcp"} <= set(mounts)
    assert mounts["/etc/conf"]["readOnly"] is True
    assert base["resources"] == {"requests": {"memory": "900Gi"}, "limits": {"memory": "900Gi", "nvidia.com/gpu": "8"}}
    assert base["imagePullPolicy"] == "Always"
    assert not pod["spec"].get("tolerations")
    assert pod["spec"]["priorityClassName"] == "training-high"
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["p4d.24xlarge"]
    assert pod["metadata"]["annotations"] == {"karpenter.sh/do-not-disrupt": "true"}


def test_a_worker_path_cannot_reach_a_pod() -> None:
    spec = JobSpec(name=TRAIN_JOB, kind="training", entrypoint="train.py", image="img:1", channels={"train": "/data/train"})
    with pytest.raises(BackendError, match="cannot read; use s3:// or pvc://|a Kubernetes pod cannot read"):
        render_pod(spec, {"artifacts_uri": "s3://b/p"})


def test_no_image_is_a_clear_error() -> None:
    spec = JobSpec(name=TRAIN_JOB, kind="training", entrypoint="train.py", channels={"train": "s3://b/t"})
    with pytest.raises(BackendError, match="set 'image'"):
        render_pod(spec, {"artifacts_uri": "s3://b/p"})
