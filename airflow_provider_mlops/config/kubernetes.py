"""
The ``kubernetes:`` block of ``mlops.yaml``: where and how a step's pod runs.

The top-level ``kubernetes:`` block holds what every step shares (connection, namespace,
artifacts location); ``training.kubernetes`` and ``evaluation.kubernetes`` override any pod
key for one step, so training can take a GPU node pool and evaluation a CPU one. Pure pydantic:
no kubernetes import, so the CLI, the Lambda and the DAG loader share it.

:func:`kubernetes_problems` holds the cross-field rules that decide which mixes of a
Kubernetes step with local or SageMaker steps can work.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from airflow_provider_mlops.config.models import MlopsConfig

#: A Kubernetes object name (DNS-1123 label).
K8S_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
K8sName = Annotated[str, Field(pattern=K8S_NAME)]
Quantity = Annotated[str, Field(pattern=r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|K|M|G|T)?$")]
PVC_RE = re.compile(r"^pvc://(?P<claim>[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(?P<path>/[^\s]*)?$")


class _Model(BaseModel):
    # A field's docstring is its description in the JSON Schema (editors show it on hover).
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True)


class Toleration(_Model):
    """One pod toleration, as in a pod spec (``toleration_seconds`` for ``NoExecute``)."""

    key: str | None = None
    """The taint key this tolerates; empty with operator Exists tolerates every taint."""
    operator: Literal["Equal", "Exists"] = "Equal"
    """Equal: the taint's value must be ``value``; Exists: any value."""
    value: str | None = None
    """The taint value to match (operator Equal)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint effect to tolerate; empty tolerates every effect."""
    toleration_seconds: Annotated[int, Field(ge=0)] | None = None
    """For NoExecute: how long the pod stays on a node after the taint appears."""


class SecretRef(_Model):
    """
    A Kubernetes secret given to the step's container.

    ``{secret, key, env}`` sets one variable from one key; ``{secret, mount_path}`` mounts the
    secret as files; ``{secret}`` alone exposes every key as a variable.
    """

    secret: K8sName
    """The Kubernetes secret's name, in the step's namespace."""
    key: str | None = None
    """The secret's key that sets one variable (with ``env``)."""
    env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    """The environment variable that gets ``key``'s value, e.g. HF_TOKEN."""
    mount_path: Annotated[str, Field(pattern=r"^/")] | None = None
    """Mount the secret's keys as files in this folder instead."""

    @model_validator(mode="after")
    def _one_target(self) -> SecretRef:
        if self.env and self.mount_path:
            raise ValueError("give either env (one variable) or mount_path (files), not both")
        if bool(self.env) != bool(self.key) and not self.mount_path:
            raise ValueError("a secret given as one variable needs both key and env, for example {key: token, env: HF_TOKEN}")
        return self


class Volume(_Model):
    """A volume mounted into the step's container: exactly one of pvc, secret, config_map, empty_dir."""

    name: K8sName
    """The volume's name in the pod."""
    mount_path: Annotated[str, Field(pattern=r"^/")]
    """Where it is mounted in the container (an absolute path)."""
    read_only: bool = False
    """Mount it read-only."""
    sub_path: str | None = None
    """Mount only this path inside the volume."""
    pvc: K8sName | None = None
    """A PersistentVolumeClaim's name."""
    secret: K8sName | None = None
    """A secret mounted as files."""
    config_map: K8sName | None = None
    """A ConfigMap mounted as files."""
    empty_dir: Quantity | Literal["unbounded"] | None = None
    """A scratch folder of this size limit (e.g. 10Gi), or unbounded."""

    @model_validator(mode="after")
    def _one_source(self) -> Volume:
        sources = [k for k in ("pvc", "secret", "config_map", "empty_dir") if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError(f"volume {self.name!r} needs exactly one of pvc, secret, config_map, empty_dir (got {sources})")
        return self


class KubernetesStep(_Model):
    """
    Pod settings for one step; every key overrides the top-level ``kubernetes:`` block.

    ``cpu``, ``memory`` and ``gpus`` stay in the step's ``resources`` (they are the requests);
    ``cpu_limit``/``memory_limit`` default to the requests.
    """

    namespace: K8sName | None = None
    """The namespace the pod runs in (default: the connection's)."""
    service_account: K8sName | None = None
    """The pod's service account (IRSA on EKS gives it S3 access)."""
    image_pull_secrets: list[K8sName] | None = None
    """Secrets used to pull the model image from a private registry."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """When the node pulls the image."""
    node_selector: dict[str, str] | None = None
    """Node labels the pod must run on, e.g. a GPU node pool."""
    tolerations: list[Toleration] | None = None
    """Taints the pod tolerates (e.g. a GPU pool's)."""
    affinity: dict[str, Any] | None = None
    """Pod-spec affinity (nodeAffinity, podAffinity, podAntiAffinity), as in a pod spec."""
    secrets: list[SecretRef] | None = None
    """Kubernetes secrets given to the container, as variables or files."""
    volumes: list[Volume] | None = None
    """Extra volumes mounted into the container."""
    shm_size: Quantity | None = None
    """Size of /dev/shm (PyTorch data loaders need more than the default 64Mi)."""
    cpu_limit: Quantity | None = None
    """The CPU limit; default: the step's resources.cpu request."""
    memory_limit: Quantity | None = None
    """The memory limit; default: the step's resources.memory request."""
    gpu_resource: str | None = None
    """The extended resource that counts GPUs (default nvidia.com/gpu)."""
    gpu_toleration: bool | None = None
    """When the step asks for GPUs, tolerate the GPU resource's NoSchedule taint (default true)."""
    priority_class: K8sName | None = None
    """The pod's PriorityClass."""
    labels: dict[str, str] | None = None
    """Extra pod labels (the provider's own labels always win)."""
    annotations: dict[str, str] | None = None
    """Extra pod annotations."""
    startup_timeout_seconds: Annotated[int, Field(ge=1, le=86400)] | None = None
    """How long the pod may take to start its container (image pull included) before it is ended."""
    schedule_timeout_seconds: Annotated[int, Field(ge=1, le=86400)] | None = None
    """How long the pod may wait for a node before it is ended."""

    @model_validator(mode="after")
    def _affinity_shape(self) -> KubernetesStep:
        allowed = {"nodeAffinity", "podAffinity", "podAntiAffinity"}
        if self.affinity is not None and not set(self.affinity) <= allowed:
            raise ValueError(
                f"affinity keys {sorted(set(self.affinity) - allowed)} are not pod-spec affinity keys; "
                f"use {sorted(allowed)} as in a pod spec (camelCase)"
            )
        return self


class KubernetesSettings(KubernetesStep):
    """
    The top-level ``kubernetes:`` block.

    :param conn_id: the Airflow Kubernetes connection (kubeconfig, in-cluster or EKS).
    :param artifacts_uri: where pods write ``<job>/model.tar.gz`` and ``<job>/output/``:
        ``s3://bucket/prefix`` (for a SageMaker registry) or ``pvc://claim/sub/path``.
    :param artifacts_local_path: where the ``pvc://`` artifacts volume is mounted on the
        Airflow workers (EFS, for example), so a local registry and endpoint can read models.
    :param on_finish_action: ``delete_pod``, ``delete_succeeded_pod`` or ``keep_pod``.
    :param xcom_sidecar: read metrics from the XCom sidecar (``/airflow/xcom/return.json``).
    :param python: the interpreter in the image that runs the container runner.
    """

    conn_id: str = "kubernetes_default"
    """The Airflow Kubernetes connection (kubeconfig, in-cluster or EKS)."""
    artifacts_uri: Annotated[str, Field(pattern=r"^(s3|pvc)://")] | None = None
    """Where pods write <job>/model.tar.gz and <job>/output/: s3:// or pvc://<claim>/<path>."""
    artifacts_local_path: Annotated[str, Field(pattern=r"^/")] | None = None
    """Where the pvc:// artifacts volume is mounted on the Airflow workers (for a local registry or endpoint)."""
    on_finish_action: Literal["delete_pod", "delete_succeeded_pod", "keep_pod"] = "delete_pod"
    """What happens to a finished pod (a failed one is kept until the next attempt starts)."""
    python: str = "python"
    """The interpreter in the image that runs the container runner."""


#: Defaults for keys neither the block nor the step sets.
POD_DEFAULTS: dict[str, Any] = {
    "namespace": "default",
    "gpu_resource": "nvidia.com/gpu",
    "gpu_toleration": True,
    "startup_timeout_seconds": 600,
    "schedule_timeout_seconds": 3600,
}


def step_settings(config: MlopsConfig, step: str) -> dict[str, Any]:
    """
    The merged pod settings of ``step`` (``training`` or ``evaluation``), as primitives.

    Step keys win over the top-level block, which wins over :data:`POD_DEFAULTS`. The result
    travels in trigger kwargs, so it holds JSON types only.
    """
    top = config.kubernetes
    step_block = config.evaluation.kubernetes if step == "evaluation" else config.training.kubernetes
    merged: dict[str, Any] = {**POD_DEFAULTS, **top.model_dump(mode="json", exclude_none=True)}
    if step_block is not None:
        merged.update(step_block.model_dump(mode="json", exclude_none=True))
    if "artifacts_uri" not in merged and config.aws.artifacts_uri and config.aws.artifacts_uri.startswith("s3://"):
        merged["artifacts_uri"] = config.aws.artifacts_uri
    merged["step"] = step
    return merged


def _remote(location: str) -> bool:
    return location.startswith("s3://") or bool(PVC_RE.fullmatch(location))


def kubernetes_problems(config: MlopsConfig) -> list[str]:
    """
    Why this config's mix of Kubernetes and other backends cannot work; empty when it can.

    Pods cannot read the Airflow worker's disk, so a Kubernetes step's data must be ``s3://`` or
    ``pvc://``. Local registries, endpoints and evaluation read model folders from the worker's
    disk, so after Kubernetes training they need the artifacts on a shared volume
    (``pvc://`` + ``artifacts_local_path``); SageMaker needs them in S3.
    """
    problems: list[str] = []
    train_k8s = config.training_backend == "kubernetes"
    eval_k8s = config.evaluation_backend == "kubernetes"
    if not (train_k8s or eval_k8s):
        if config.training.kubernetes or config.evaluation.kubernetes:
            problems.append("kubernetes: training.kubernetes or evaluation.kubernetes is set, but no step uses backend: kubernetes")
        return problems
    if train_k8s:
        for name, location in config.training.channels.items():
            if not _remote(location):
                problems.append(
                    f"training.channels.{name}: {location!r} is a path on the Airflow worker that a Kubernetes pod "
                    "cannot read; use s3://bucket/prefix or pvc://<claim>/<path> (a lowercase claim name)"
                )
    if eval_k8s:
        held_out = config.evaluation.channel
        location = config.evaluation.data or config.training.channels.get(held_out) or f"data/{held_out}"
        if not _remote(location):
            problems.append(
                f"evaluation.data: the evaluation data ({held_out}: {location!r}) must be s3:// or pvc:// for a Kubernetes pod; "
                f"set evaluation.data or training.channels.{held_out}"
            )
        if not train_k8s:
            problems.append(
                "evaluation.backend: kubernetes reads the model from Kubernetes training artifacts, but training runs on "
                f"{config.training_backend}; set training.backend: kubernetes, or evaluation.backend: {config.training_backend}"
            )
    if not train_k8s:
        return problems
    settings = step_settings(config, "training")
    artifacts = settings.get("artifacts_uri")
    if not artifacts:
        problems.append("kubernetes.artifacts_uri: kubernetes training needs it (s3://bucket/prefix or pvc://claim/path) for the model")
        return problems
    if artifacts.startswith("pvc://") and not PVC_RE.fullmatch(artifacts):
        problems.append(f"kubernetes.artifacts_uri: {artifacts!r} is not pvc://<claim>[/path] with a lowercase claim name")
    local_readers = [
        what
        for what, backend in (
            ("registry.backend", config.registry_backend),
            ("deployment.backend", config.serving_backend),
            ("evaluation.backend", config.evaluation_backend),
        )
        if backend == "local"
    ]
    if artifacts.startswith("s3://") and local_readers:
        problems.append(
            f"kubernetes.artifacts_uri: {', '.join(local_readers)} local read(s) the model from the Airflow worker's disk, "
            "but kubernetes training "
            f"writes it to {artifacts}; use kubernetes.artifacts_uri: pvc://<claim>/<path> with artifacts_local_path "
            "(the same volume mounted on the workers, e.g. EFS), or the sagemaker registry and deployment"
        )
    if artifacts.startswith("pvc://"):
        if local_readers and not settings.get("artifacts_local_path"):
            problems.append(
                f"kubernetes.artifacts_local_path: {', '.join(local_readers)} local read(s) the model from the worker's disk: set "
                "kubernetes.artifacts_local_path to where the artifacts volume is mounted on the workers"
            )
        if config.registry_backend == "sagemaker" or config.serving_backend == "sagemaker":
            problems.append(
                f"kubernetes.artifacts_uri: SageMaker registers and serves model.tar.gz from S3, but kubernetes training writes to {artifacts}; "
                "set kubernetes.artifacts_uri to s3://bucket/prefix"
            )
    return problems
