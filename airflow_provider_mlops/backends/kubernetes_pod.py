"""
Render one job as the pod ``KubernetesPodOperator`` sends: :func:`render_pod`.

The pod follows the SageMaker container contract: ``/opt/ml/input``, ``/opt/ml/model`` and
``/opt/ml/output`` are writable ``emptyDir`` volumes, ``pvc://`` channels are mounted read-only
at ``/opt/ml/input/data/<channel>``, ``s3://`` channels are fetched there by the container
runner (:mod:`airflow_provider_mlops.backends.kubernetes_runner`), and the ``SM_*`` variables
point at them. The model is published at a deterministic URI, ``<artifacts>/<job>/model.tar.gz``.

The pod is built by ``KubernetesPodOperator.build_pod_request_obj()``, so the XCom sidecar,
secrets, labels and the pod mutation hook are exactly the provider's. A pod is one attempt of a
task's job and is named after it: ``<job>``, then ``<job>-a2``, ``-a3``, ... (:func:`attempt_name`);
its labels name the job and the attempt number, so the backend finds earlier attempts through the API.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.backends.base import JobSpec, LogBatch, newest_lines
from airflow_provider_mlops.config.kubernetes import PVC_RE
from airflow_provider_mlops.exceptions import BackendError
from airflow_provider_mlops.naming import attempt_name

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk import Context
    from kubernetes.client import CoreV1Api
    from kubernetes.client import models as k8s

#: Pod labels the backend finds its pods by: the task's job name (the same for every attempt),
#: the attempt number (1, 2, ...) and the job kind.
JOB_LABEL = "airflow-provider-mlops/job"
ATTEMPT_LABEL = "airflow-provider-mlops/attempt"
KIND_LABEL = "airflow-provider-mlops/kind"
#: Pod annotations the backend writes: the runner's result once read (so a kept pod is re-read
#: without its XCom sidecar), and why the backend ended an attempt (stopped, or could not start).
RESULT_ANNOTATION = "airflow-provider-mlops/result"
ENDED_ANNOTATION = "airflow-provider-mlops/ended"
RUNNER_MODULE = "airflow_provider_mlops.backends.kubernetes_runner"
ML_ROOT = "/opt/ml"
ARTIFACTS_MOUNT = "/mnt/mlops-artifacts"


def _volume_name(prefix: str, name: str) -> str:
    return f"{prefix}-{name}"[:63].rstrip("-")


def artifact_locations(job_name: str, settings: dict[str, Any]) -> dict[str, str]:
    """
    Where a job's results go: what the pod writes to (``*_publish``) and what the backend reports (``*_uri``).

    ``s3://`` artifacts are the same for both. ``pvc://`` artifacts are written under the pod's
    mount and reported as paths under ``artifacts_local_path`` (the same volume on the Airflow
    workers), so a local registry and endpoint read them.
    """
    artifacts = settings.get("artifacts_uri")
    if not artifacts:
        return {}
    if artifacts.startswith("s3://"):
        base = f"{artifacts.rstrip('/')}/{job_name}"
        return {"model_publish": f"{base}/model.tar.gz", "model_uri": f"{base}/model.tar.gz",
                "output_publish": f"{base}/output", "output_uri": f"{base}/output"}
    pod_base = f"{ARTIFACTS_MOUNT}/{job_name}"
    local = settings.get("artifacts_local_path")
    public = f"{local.rstrip('/')}/{job_name}" if local else f"{artifacts.rstrip('/')}/{job_name}"
    return {"model_publish": f"{pod_base}/model.tar.gz", "model_uri": f"{public}/model" if local else f"{public}/model.tar.gz",
            "output_publish": f"{pod_base}/output", "output_uri": f"{public}/output"}


def pod_location(location: str, settings: dict[str, Any]) -> str:
    """A channel location as the pod sees it: ``s3://`` and ``pvc://`` as they are; a path under
    ``artifacts_local_path`` back to its ``pvc://`` URI; anything else cannot reach a pod."""
    if location.startswith(("s3://", "pvc://")):
        return location
    local, artifacts = settings.get("artifacts_local_path"), settings.get("artifacts_uri") or ""
    if local and artifacts.startswith("pvc://"):
        path, root = PurePosixPath(location), PurePosixPath(local)
        if path == root or root in path.parents:
            return f"{artifacts.rstrip('/')}/{path.relative_to(root)}"
    raise BackendError(
        f"channel location {location!r} is on the Airflow worker, which a Kubernetes pod cannot read; "
        "use s3:// or pvc:// data (mlops validate checks this)"
    )


def _channel_env(name: str) -> str:
    return f"SM_CHANNEL_{name.upper().replace('-', '_')}"


def container_env(spec: JobSpec, settings: dict[str, Any]) -> dict[str, str]:
    """The SageMaker training-toolkit environment inside the pod, plus the runner's ``MLOPS_*`` settings."""
    locations = artifact_locations(spec.name, settings)
    channels = {name: pod_location(uri, settings) for name, uri in spec.channels.items()}
    env = {
        "SM_MODEL_DIR": f"{ML_ROOT}/model",
        "SM_OUTPUT_DIR": f"{ML_ROOT}/output",
        "SM_OUTPUT_DATA_DIR": f"{ML_ROOT}/output/data",
        "SM_INPUT_DIR": f"{ML_ROOT}/input",
        "SM_INPUT_CONFIG_DIR": f"{ML_ROOT}/input/config",
        "SM_HPS": json.dumps(spec.hyperparameters, sort_keys=True),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_CURRENT_HOST": "algo-1",
        "SM_HOSTS": json.dumps(["algo-1"]),
        "SM_NUM_GPUS": str(int(spec.resources.get("gpus") or 0)),
        "MLOPS_JOB_NAME": spec.name,
        "MLOPS_JOB_KIND": spec.kind,
        "MLOPS_ENTRYPOINT": spec.entrypoint,
        "MLOPS_CHANNELS": json.dumps(channels, sort_keys=True),
        "MLOPS_METRIC_DEFINITIONS": json.dumps(spec.metric_definitions),
        "MLOPS_XCOM_FILE": "/airflow/xcom/return.json",
    }
    for name in channels:
        env[_channel_env(name)] = f"{ML_ROOT}/input/data/{name}"
    for key, value in spec.hyperparameters.items():
        env[f"SM_HP_{key.upper()}"] = str(value)
    for key in ("model_publish", "model_uri", "output_publish", "output_uri"):
        if key in locations:
            env[f"MLOPS_{key.upper()}"] = locations[key]
    env.update(spec.environment)
    return env


def _volumes(spec: JobSpec, settings: dict[str, Any]) -> tuple[list[k8s.V1Volume], list[k8s.V1VolumeMount]]:
    from kubernetes.client import models as k8s

    volumes: dict[str, k8s.V1Volume] = {}
    mounts: list[k8s.V1VolumeMount] = []

    def claim_volume(claim: str) -> str:
        name = _volume_name("pvc", claim)
        volumes.setdefault(
            name, k8s.V1Volume(name=name, persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=claim))
        )
        return name

    for sub in ("input", "model", "output"):
        name = f"ml-{sub}"
        volumes[name] = k8s.V1Volume(name=name, empty_dir=k8s.V1EmptyDirVolumeSource())
        mounts.append(k8s.V1VolumeMount(name=name, mount_path=f"{ML_ROOT}/{sub}"))
    for channel, location in spec.channels.items():
        uri = pod_location(location, settings)
        match = PVC_RE.fullmatch(uri)
        if uri.startswith("pvc://") and match is None:
            raise BackendError(f"job {spec.name}: channel {channel!r} location {uri!r} is not pvc://<claim>[/path]")
        if match:
            mounts.append(k8s.V1VolumeMount(
                name=claim_volume(match["claim"]), mount_path=f"{ML_ROOT}/input/data/{channel}",
                sub_path=(match["path"] or "").strip("/") or None, read_only=True,
            ))
    artifacts = PVC_RE.fullmatch(settings.get("artifacts_uri") or "")
    if artifacts:
        mounts.append(k8s.V1VolumeMount(
            name=claim_volume(artifacts["claim"]), mount_path=ARTIFACTS_MOUNT,
            sub_path=(artifacts["path"] or "").strip("/") or None,
        ))
    if settings.get("shm_size"):
        volumes["dshm"] = k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=settings["shm_size"]))
        mounts.append(k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"))
    for item in settings.get("volumes") or []:
        source: dict[str, Any] = {}
        if item.get("pvc"):
            source["persistent_volume_claim"] = k8s.V1PersistentVolumeClaimVolumeSource(claim_name=item["pvc"])
        elif item.get("secret"):
            source["secret"] = k8s.V1SecretVolumeSource(secret_name=item["secret"])
        elif item.get("config_map"):
            source["config_map"] = k8s.V1ConfigMapVolumeSource(name=item["config_map"])
        else:
            size = None if item["empty_dir"] == "unbounded" else item["empty_dir"]
            source["empty_dir"] = k8s.V1EmptyDirVolumeSource(size_limit=size)
        volumes[item["name"]] = k8s.V1Volume(name=item["name"], **source)
        mounts.append(k8s.V1VolumeMount(
            name=item["name"], mount_path=item["mount_path"], read_only=item.get("read_only") or None, sub_path=item.get("sub_path"),
        ))
    return list(volumes.values()), mounts


def _resources(spec: JobSpec, settings: dict[str, Any]) -> k8s.V1ResourceRequirements:
    from kubernetes.client import models as k8s

    res = spec.resources
    requests = {k: res[k] for k in ("cpu", "memory") if res.get(k)}
    limits = {k: settings.get(f"{k}_limit") or res.get(k) for k in ("cpu", "memory")}
    limits = {k: v for k, v in limits.items() if v}
    if res.get("gpus"):
        limits[settings.get("gpu_resource") or "nvidia.com/gpu"] = str(res["gpus"])
    return k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None)


def _tolerations(spec: JobSpec, settings: dict[str, Any]) -> list[k8s.V1Toleration]:
    from kubernetes.client import models as k8s

    items = [dict(t) for t in settings.get("tolerations") or []]
    gpu_resource = settings.get("gpu_resource") or "nvidia.com/gpu"
    if spec.resources.get("gpus") and settings.get("gpu_toleration", True) and all(t.get("key") != gpu_resource for t in items):
        # GPU node pools are tainted so CPU pods stay off them (EKS and GKE both use this key).
        items.append({"key": gpu_resource, "operator": "Exists", "effect": "NoSchedule"})
    return [k8s.V1Toleration(**{k: v for k, v in t.items() if v is not None}) for t in items]


def _affinity(settings: dict[str, Any]) -> k8s.V1Affinity | None:
    if not settings.get("affinity"):
        return None
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    # The provider's own deserializer turns pod-spec YAML (camelCase) into client models.
    pod = PodGenerator.deserialize_model_dict({"spec": {"containers": [], "affinity": settings["affinity"]}})
    return pod.spec.affinity


def _secrets(settings: dict[str, Any]) -> list[Any]:
    from airflow.providers.cncf.kubernetes.secret import Secret

    secrets = []
    for item in settings.get("secrets") or []:
        if item.get("mount_path"):
            secrets.append(Secret("volume", item["mount_path"], item["secret"], item.get("key")))
        elif item.get("env"):
            secrets.append(Secret("env", item["env"], item["secret"], item["key"]))
        else:
            secrets.append(Secret("env", None, item["secret"]))
    return secrets


def build_operator(spec: JobSpec, settings: dict[str, Any], *, attempt: int = 1, task_id: str | None = None) -> KubernetesPodOperator:
    """
    The ``KubernetesPodOperator`` that describes the pod of one attempt of ``spec`` (it is never
    executed: the backend uses it to render the pod and the provider's hook and pod manager to run it).

    :param spec: the job, under the task's job name.
    :param settings: the step's merged ``kubernetes:`` settings (:func:`~airflow_provider_mlops.config.kubernetes.step_settings`).
    :param attempt: the attempt (1, 2, ...): it names the pod, the job inside it and its artifacts
        (:func:`attempt_name`).
    :param task_id: the Airflow task id, for the provider's log lines.
    """
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    if not spec.image:
        raise BackendError(f"job {spec.name}: the kubernetes backend runs a container image; set 'image' in mlops.yaml")
    labels = {**(settings.get("labels") or {}), JOB_LABEL: spec.name, ATTEMPT_LABEL: str(attempt), KIND_LABEL: spec.kind}
    spec = replace(spec, name=attempt_name(spec.name, attempt))
    volumes, mounts = _volumes(spec, settings)
    return KubernetesPodOperator(
        task_id=task_id or f"mlops-{spec.kind}",
        kubernetes_conn_id=settings.get("conn_id", "kubernetes_default"),
        namespace=settings.get("namespace") or "default",
        name=spec.name,
        random_name_suffix=False,
        image=spec.image,
        image_pull_policy=settings.get("image_pull_policy"),
        cmds=[settings.get("python") or "python", "-m", RUNNER_MODULE],
        env_vars=container_env(spec, settings),
        container_resources=_resources(spec, settings),
        node_selector=settings.get("node_selector") or None,
        tolerations=_tolerations(spec, settings) or None,
        affinity=_affinity(settings),
        service_account_name=settings.get("service_account"),
        image_pull_secrets=[k8s.V1LocalObjectReference(name=n) for n in settings.get("image_pull_secrets") or []] or None,
        secrets=_secrets(settings),
        volumes=volumes,
        volume_mounts=mounts,
        labels=labels,
        annotations=settings.get("annotations") or None,
        priority_class_name=settings.get("priority_class"),
        active_deadline_seconds=int(spec.resources.get("max_runtime_seconds") or 86400),
        startup_timeout_seconds=int(settings.get("startup_timeout_seconds") or 600),
        schedule_timeout_seconds=int(settings.get("schedule_timeout_seconds") or 3600),
        on_finish_action=settings.get("on_finish_action") or "delete_pod",
        on_kill_action="delete_pod",
        do_xcom_push=True,
        get_logs=True,
        deferrable=True,
    )


def render_pod(
    spec: JobSpec,
    settings: dict[str, Any],
    *,
    attempt: int = 1,
    context: Context | None = None,
    dry_run: bool = True,
) -> k8s.V1Pod:
    """
    The pod of ``attempt`` of ``spec`` exactly as ``KubernetesPodOperator.build_pod_request_obj()`` builds it.

    :param dry_run: skip the one label that needs cluster credentials (``airflow_kpo_in_cluster``);
        the backend renders with ``dry_run=False``.
    :return: the ``V1Pod`` to create.
    """
    task_id = context["ti"].task_id if context else None
    operator = build_operator(spec, settings, attempt=attempt, task_id=task_id)
    return operator.build_pod_request_obj(context, dry_run=dry_run)


def _log_time(stamp: str) -> tuple[str, int]:
    """An RFC 3339 timestamp of the kubelet (``...T12:00:00.5Z``, nanoseconds trimmed) as a sortable key."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return whole, int((fraction or "0").ljust(9, "0")[:9])


def pod_log_since(
    client: CoreV1Api, name: str, namespace: str, container: str, cursor: str | None, max_lines: int, max_bytes: int
) -> LogBatch:
    """
    A container's log lines after ``cursor`` through ``read_namespaced_pod_log`` (``timestamps``,
    ``since_seconds``, ``tail_lines``). The cursor is the last line's timestamp and how many lines
    carried it (``-1``: all of them), so lines are neither repeated nor lost across reads. A pod
    with no log yet (not started, or deleted) gives no lines. When more than ``max_lines`` lines
    are new, the newest come, and ``skipped`` is ``-1``: the API does not say how many were left out.
    """
    from datetime import UTC, datetime

    from kubernetes.client.exceptions import ApiException

    last = json.loads(cursor) if cursor else None
    seen_at, seen = (tuple(last["ts"]), int(last["n"])) if last else (None, 0)
    request: dict[str, Any] = {"container": container, "timestamps": True, "tail_lines": max_lines + max(seen, 0)}
    if seen_at:
        then = datetime.fromisoformat(f"{seen_at[0]}+00:00")
        request["since_seconds"] = max(1, int((datetime.now(UTC) - then).total_seconds()) + 2)
    try:
        text = client.read_namespaced_pod_log(name, namespace, **request)
    except ApiException as exc:
        if exc.status in (400, 404):  # the container has not started, or the pod is gone
            return LogBatch([], cursor)
        raise
    entries = [(_log_time(stamp), line) for stamp, _, line in (raw.partition(" ") for raw in str(text or "").splitlines())]
    full = len(entries) >= request["tail_lines"]  # the window may have cut lines off: their count is unknown
    if seen_at:
        same = [e for e in entries if e[0] == seen_at]
        entries = (same[seen:] if seen >= 0 else []) + [e for e in entries if e[0] > seen_at]
    if not entries:
        return LogBatch([], cursor)
    newest = entries[-1][0]
    count = sum(1 for e in entries if e[0] == newest) + (seen if newest == seen_at and seen >= 0 else 0)
    lines, dropped = newest_lines([line for _, line in entries], max_lines, max_bytes)
    return LogBatch(lines, json.dumps({"ts": list(newest), "n": -1 if full else count}), -1 if full else dropped)
