"""
An in-memory stand-in for the cluster's pod API (no cluster can run here), for the backend tests.

``FakePodsApi`` answers the CoreV1Api pod calls the backend and the provider's ``PodManager``
make: create (each body is validated against the Kubernetes schema), list by label, read,
patch (with the API server's rule that ``activeDeadlineSeconds`` may only decrease) and delete.
What the scheduler and the kubelet would do is explicit: :meth:`FakePodsApi.set_state`,
:meth:`FakePodsApi.schedule`, :meth:`FakePodsApi.enforce_deadline`. ``SidecarPodManager`` is the
provider's ``PodManager`` with only the two exec calls into the XCom sidecar answered here; its
real ``extract_xcom`` checks that the sidecar is still running, as on a cluster.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager
from k8s_helpers import TRAIN_JOB, as_sent, validate
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s
from kubernetes.client.exceptions import ApiException

from airflow_provider_mlops.backends.base import JobSpec
from airflow_provider_mlops.backends.kubernetes import KubernetesComputeBackend
from airflow_provider_mlops.backends.kubernetes_pod import JOB_LABEL

SIDECAR = "airflow-xcom-sidecar"
NODE = "gpu-node-1"

SETTINGS = {"conn_id": "kubernetes_test", "namespace": "ml", "artifacts_uri": "s3://bucket/mlops", "schedule_timeout_seconds": 60, "startup_timeout_seconds": 60}
SPEC = JobSpec(
    name=TRAIN_JOB, kind="training", entrypoint="train.py", image="img:1",
    channels={"train": "s3://bucket/data/train"}, resources={"gpus": 1, "cpu": "4", "memory": "16Gi"},
)

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: test, user: {token: not-used}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
"""


def _not_found(name: str) -> ApiException:
    return ApiException(status=404, reason=f"NotFound: pods {name!r} not found")


class FakePodsApi:
    """The pod calls of CoreV1Api, over an in-memory store; it records what it was sent."""

    def __init__(self) -> None:
        self.api_client = ApiClient()
        self.pods: dict[tuple[str, str], k8s.V1Pod] = {}
        self.sent: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.sidecar_killed: set[str] = set()
        self.pod_logs: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
        self.log_requests: list[dict[str, Any]] = []

    # -- the API ---------------------------------------------------------------------------

    def create_namespaced_pod(self, body: dict[str, Any], namespace: str, **_: Any) -> k8s.V1Pod:
        name = body["metadata"]["name"]
        if (namespace, name) in self.pods:
            raise ApiException(status=409, reason="AlreadyExists")
        validate(body)
        self.sent.append(body)
        pod = PodGenerator.deserialize_model_dict(body)
        pod.metadata.creation_timestamp = datetime.now(UTC)
        pod.status = k8s.V1PodStatus(phase="Pending")
        self.pods[(namespace, name)] = pod
        return copy.deepcopy(pod)

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> k8s.V1PodList:
        key, _, value = label_selector.partition("=")
        items = [p for (ns, _), p in self.pods.items() if ns == namespace and (p.metadata.labels or {}).get(key) == value]
        return k8s.V1PodList(items=copy.deepcopy(items))

    def read_namespaced_pod(self, name: str, namespace: str, **_: Any) -> k8s.V1Pod:
        if (namespace, name) not in self.pods:
            raise _not_found(name)
        return copy.deepcopy(self.pods[(namespace, name)])

    def patch_namespaced_pod(self, name: str, namespace: str, body: dict[str, Any], **_: Any) -> k8s.V1Pod:
        pod = self.pods.get((namespace, name))
        if pod is None:
            raise _not_found(name)
        metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
        if set(body) - {"metadata", "spec"} or set(metadata) - {"annotations", "labels"} or set(spec) - {"activeDeadlineSeconds"}:
            raise ApiException(status=422, reason=f"pod updates may not change these fields: {body}")
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None:
            current = pod.spec.active_deadline_seconds
            if not isinstance(deadline, int) or deadline < 1 or (current is not None and deadline > current):
                raise ApiException(status=422, reason=f"spec.activeDeadlineSeconds: Invalid value: {deadline}: must be 1..{current}")
            pod.spec.active_deadline_seconds = deadline
        pod.metadata.annotations = {**(pod.metadata.annotations or {}), **(metadata.get("annotations") or {})}
        pod.metadata.labels = {**(pod.metadata.labels or {}), **(metadata.get("labels") or {})}
        validate(as_sent(pod))
        self.patches.append((name, body))
        return copy.deepcopy(pod)

    def delete_namespaced_pod(self, name: str, namespace: str, **_: Any) -> None:
        if self.pods.pop((namespace, name), None) is None:
            raise _not_found(name)
        self.deleted.append(name)

    def read_namespaced_pod_log(self, name: str, namespace: str, container: str | None = None, *, timestamps: bool = False,
                                since_seconds: int | None = None, tail_lines: int | None = None,
                                limit_bytes: int | None = None, **_: Any) -> str:
        """The kubelet's answer: a container's lines (RFC 3339 nanosecond stamps, zeros trimmed), filtered as asked."""
        self.log_requests.append({"name": name, "container": container, "since_seconds": since_seconds, "tail_lines": tail_lines})
        pod = self.pods.get((namespace, name))
        if pod is None:
            raise _not_found(name)
        if container not in {c.name for c in pod.spec.containers}:
            raise ApiException(status=400, reason=f"container {container} is not valid for pod {name}")
        if not (pod.status.container_statuses or []):
            raise ApiException(status=400, reason=f'container "{container}" in pod "{name}" is waiting to start')
        entries = self.pod_logs.get((namespace, name), [])
        if since_seconds is not None:
            entries = [e for e in entries if (datetime.now(UTC) - e[0]).total_seconds() <= since_seconds]
        if tail_lines is not None:
            entries = entries[-tail_lines:] if tail_lines else []
        text = "".join(
            (f"{at.strftime('%Y-%m-%dT%H:%M:%S')}{_nanos(at)}Z " if timestamps else "") + line + "\n" for at, line in entries
        )
        return text[:limit_bytes] if limit_bytes else text

    # -- what the scheduler and the kubelet do ---------------------------------------------

    def write_log(self, name: str, *lines: str, namespace: str = "ml", at: datetime | None = None) -> None:
        """The ``base`` container prints ``lines`` (all at ``at``, or now)."""
        stamp = at or datetime.now(UTC)
        self.pod_logs.setdefault((namespace, name), []).extend((stamp, line) for line in lines)

    def schedule(self, name: str, namespace: str = "ml") -> None:
        pod = self.pods[(namespace, name)]
        pod.spec.node_name = NODE
        self.set_state(name, namespace, running=k8s.V1ContainerStateRunning(started_at=datetime.now(UTC)))

    def set_state(self, name: str, namespace: str = "ml", **state: Any) -> None:
        pod = self.pods[(namespace, name)]
        phase = state.pop("phase", "Running")
        sidecar = k8s.V1ContainerState(
            terminated=k8s.V1ContainerStateTerminated(exit_code=137) if name in self.sidecar_killed else None,
            running=None if name in self.sidecar_killed else k8s.V1ContainerStateRunning(),
        )
        pod.status = k8s.V1PodStatus(
            phase=phase,
            reason=state.pop("reason", None),
            conditions=state.pop("conditions", None),
            container_statuses=[
                k8s.V1ContainerStatus(name="base", image="img:1", image_id="", ready=False, restart_count=0,
                                      state=k8s.V1ContainerState(**state)),
                k8s.V1ContainerStatus(name=SIDECAR, image="alpine", image_id="", ready=True, restart_count=0, state=sidecar),
            ],
        )

    def finish(self, name: str, exit_code: int, namespace: str = "ml") -> None:
        """The ``base`` container exits; the sidecar keeps the pod Running until it is killed."""
        self.set_state(name, namespace, terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code, reason="Completed" if exit_code == 0 else "Error"))

    def kill_sidecar(self, name: str, namespace: str = "ml") -> None:
        self.sidecar_killed.add(name)
        pod = self.pods.get((namespace, name))
        if pod is None:
            return
        base = pod.status.container_statuses[0].state if pod.status.container_statuses else None
        exit_code = base.terminated.exit_code if base is not None and base.terminated is not None else 137
        self.set_state(name, namespace, phase="Succeeded" if exit_code == 0 else "Failed",
                       terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code))

    def enforce_deadline(self, name: str, namespace: str = "ml") -> None:
        """The kubelet on a pod past its ``activeDeadlineSeconds``: every container killed, the pod Failed."""
        pod = self.pods[(namespace, name)]
        assert pod.spec.node_name and pod.spec.active_deadline_seconds == 1, "only a scheduled pod past its deadline ends"
        self.sidecar_killed.add(name)
        self.set_state(name, namespace, phase="Failed", reason="DeadlineExceeded",
                       terminated=k8s.V1ContainerStateTerminated(exit_code=137, reason="Error"))

    # -- what the tests look at ------------------------------------------------------------

    def names(self, job: str = TRAIN_JOB) -> list[str]:
        return sorted(p.metadata.name for p in self.pods.values() if (p.metadata.labels or {}).get(JOB_LABEL) == job)

    def live(self, job: str = TRAIN_JOB) -> list[str]:
        """Pods of ``job`` whose phase still holds a node's resources (Pending or Running)."""
        return sorted(p.metadata.name for p in self.pods.values()
                      if (p.metadata.labels or {}).get(JOB_LABEL) == job and p.status.phase in ("Pending", "Running"))


def _nanos(at: datetime) -> str:
    """The fraction of a second as the kubelet prints it (RFC3339Nano: trailing zeros trimmed)."""
    fraction = f"{at.microsecond:06d}000".rstrip("0")
    return f".{fraction}" if fraction else ""


class SidecarPodManager(PodManager):
    """The provider's PodManager; only the exec into the XCom sidecar (read, then kill) is answered from ``results``."""

    def __init__(self, api: FakePodsApi, results: dict[str, dict[str, Any]]) -> None:
        super().__init__(kube_client=api)  # type: ignore[arg-type]
        self.api = api
        self.results = results
        self.reads: list[str] = []

    def extract_xcom_json(self, pod: k8s.V1Pod) -> str:
        self.reads.append(pod.metadata.name)
        return json.dumps(self.results[pod.metadata.name])

    def extract_xcom_kill(self, pod: k8s.V1Pod) -> None:
        self.api.kill_sidecar(pod.metadata.name, pod.metadata.namespace)


def make_backend(cluster: FakePodsApi, results: dict[str, dict[str, Any]], **settings: Any) -> KubernetesComputeBackend:
    """A backend as a fresh worker or triggerer builds it: it knows nothing but what the API tells it."""
    backend = KubernetesComputeBackend({**SETTINGS, **settings})
    backend.client = cluster  # type: ignore[assignment]
    backend.pod_manager = SidecarPodManager(cluster, results)
    return backend


@contextmanager
def task_try(try_number: int) -> Iterator[None]:
    """Run the block inside try ``try_number`` of a task, through Airflow's own current-context stack."""
    from airflow.sdk.execution_time.context import set_current_context

    ti = SimpleNamespace(dag_id="mlops__demo__breast-cancer-gpu__train", task_id="train", try_number=try_number, map_index=-1,
                         run_id="manual__2026-01-01T00:00:00+00:00")
    context: Any = {"ti": ti, "run_id": ti.run_id, "dag": SimpleNamespace()}
    with set_current_context(context):
        yield
