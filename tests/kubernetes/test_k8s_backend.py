"""
KubernetesComputeBackend against an in-memory pods API (no cluster can run here).

``FakePodsApi`` (k8s_cluster.py) stands in for the cluster's CoreV1Api pod calls and
``SidecarPodManager`` for the exec into the XCom sidecar; the backend, the provider's PodManager
and the pod rendering under test are the real ones. Attempts and retries: test_k8s_attempts.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from k8s_cluster import SETTINGS, SPEC, FakePodsApi, make_backend
from k8s_helpers import TRAIN_JOB, validate
from kubernetes.client import models as k8s

from airflow_provider_mlops import runtime
from airflow_provider_mlops.backends import get_compute_backend
from airflow_provider_mlops.backends.base import COMPLETED, FAILED, IN_PROGRESS
from airflow_provider_mlops.backends.kubernetes import KubernetesComputeBackend
from airflow_provider_mlops.config.loader import LoadedConfig
from airflow_provider_mlops.triggers.job import JobCompletionTrigger

pytestmark = pytest.mark.usefixtures("kubeconfig")


@pytest.fixture
def cluster() -> FakePodsApi:
    return FakePodsApi()


@pytest.fixture
def results() -> dict[str, dict[str, Any]]:
    return {}


def _backend(cluster: FakePodsApi, results: dict[str, dict[str, Any]], **settings: Any) -> KubernetesComputeBackend:
    return make_backend(cluster, results, **settings)


def test_submit_creates_one_schema_valid_pod_and_resubmit_reattaches(cluster: FakePodsApi, results: dict[str, Any]) -> None:
    backend = _backend(cluster, results)
    first = backend.submit(SPEC)
    again = backend.submit(SPEC)
    assert first.status == again.status == IN_PROGRESS
    assert [body["metadata"]["name"] for body in cluster.sent] == [TRAIN_JOB]
    validate(cluster.sent[0])
    assert first.details == {"pod": TRAIN_JOB, "namespace": "ml"}


def test_a_finished_pod_reports_metrics_from_the_xcom_sidecar_then_is_deleted(
    cluster: FakePodsApi, results: dict[str, Any]
) -> None:
    backend = _backend(cluster, results)
    backend.submit(SPEC)
    pod = TRAIN_JOB
    cluster.set_state(pod, terminated=k8s.V1ContainerStateTerminated(exit_code=0, reason="Completed"))
    results[pod] = {"exit_code": 0, "metrics": {"train_accuracy": 0.98}, "details": {},
                    "model_uri": f"s3://bucket/mlops/{TRAIN_JOB}/model.tar.gz", "output_uri": f"s3://bucket/mlops/{TRAIN_JOB}/output"}
    state = backend.poll(TRAIN_JOB)
    assert state.status == COMPLETED
    assert state.metrics == {"train_accuracy": 0.98}
    assert state.model_uri == f"s3://bucket/mlops/{TRAIN_JOB}/model.tar.gz"
    assert cluster.deleted == [pod]


def test_a_failed_pod_reports_the_runners_reason_and_delete_succeeded_pod_keeps_it(
    cluster: FakePodsApi, results: dict[str, Any]
) -> None:
    backend = _backend(cluster, results, on_finish_action="delete_succeeded_pod")
    backend.submit(SPEC)
    pod = TRAIN_JOB
    cluster.set_state(pod, terminated=k8s.V1ContainerStateTerminated(exit_code=3, reason="Error"))
    results[pod] = {"exit_code": 3, "metrics": {}, "failure_reason": "the entrypoint exited with code 3: CUDA out of memory"}
    state = backend.poll(TRAIN_JOB)
    assert state.status == FAILED and state.failure_reason is not None and "CUDA out of memory" in state.failure_reason
    assert cluster.deleted == []


def test_success_without_a_model_uri_fails_with_the_contract(cluster: FakePodsApi, results: dict[str, Any]) -> None:
    backend = _backend(cluster, results, on_finish_action="keep_pod")
    backend.submit(SPEC)
    pod = TRAIN_JOB
    cluster.set_state(pod, terminated=k8s.V1ContainerStateTerminated(exit_code=0))
    results[pod] = {"exit_code": 0, "metrics": {}}
    state = backend.poll(TRAIN_JOB)
    assert state.status == FAILED and "kubernetes_runner" in (state.failure_reason or "")
    assert cluster.deleted == []


def test_an_unschedulable_pod_fails_after_the_schedule_timeout_and_is_deleted(
    cluster: FakePodsApi, results: dict[str, Any]
) -> None:
    backend = _backend(cluster, results)
    backend.submit(SPEC)
    pod = TRAIN_JOB
    unschedulable = k8s.V1PodCondition(
        type="PodScheduled", status="False", reason="Unschedulable", message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    )
    cluster.set_state(pod, phase="Pending", conditions=[unschedulable], waiting=k8s.V1ContainerStateWaiting(reason="ContainerCreating"))
    waiting = backend.poll(TRAIN_JOB)
    assert waiting.status == IN_PROGRESS and waiting.details["secondary_status"] == "ContainerCreating"
    cluster.pods[("ml", pod)].metadata.creation_timestamp = datetime.now(UTC) - timedelta(seconds=61)
    state = backend.poll(TRAIN_JOB)
    assert state.status == FAILED
    assert "schedule_timeout_seconds=60" in (state.failure_reason or "") and "Insufficient nvidia.com/gpu" in (state.failure_reason or "")
    assert cluster.deleted == [pod]


def test_a_bad_image_fails_at_once(cluster: FakePodsApi, results: dict[str, Any]) -> None:
    backend = _backend(cluster, results)
    backend.submit(SPEC)
    cluster.set_state(TRAIN_JOB, phase="Pending", waiting=k8s.V1ContainerStateWaiting(reason="InvalidImageName", message="bad ref"))
    state = backend.poll(TRAIN_JOB)
    assert state.status == FAILED and "InvalidImageName" in (state.failure_reason or "")


def test_stop_deletes_a_pod_no_node_runs_yet_and_tolerates_unknown_jobs(cluster: FakePodsApi, results: dict[str, Any]) -> None:
    backend = _backend(cluster, results)
    backend.submit(SPEC)
    backend.stop(TRAIN_JOB)
    backend.stop("no-such-job")
    assert cluster.deleted == [TRAIN_JOB]
    gone = backend.poll(TRAIN_JOB)
    assert gone.status == FAILED and "clear the task" in (gone.failure_reason or "")


def test_backend_and_trigger_serialize_round_trip() -> None:
    backend = KubernetesComputeBackend(SETTINGS)
    rebuilt = get_compute_backend("kubernetes", **backend.serialize())
    assert isinstance(rebuilt, KubernetesComputeBackend) and rebuilt.settings == backend.settings
    trigger = JobCompletionTrigger(backend="kubernetes", backend_kwargs=backend.serialize(), job_name=TRAIN_JOB, poll_interval=15)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_mlops.triggers.job.JobCompletionTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs


def test_runtime_builds_a_backend_per_step(gpu_example: LoadedConfig) -> None:
    training = runtime.compute_backend(gpu_example, "training")
    evaluation = runtime.compute_backend(gpu_example, "evaluation")
    assert isinstance(training, KubernetesComputeBackend) and isinstance(evaluation, KubernetesComputeBackend)
    assert training.settings["node_selector"]["karpenter.sh/nodepool"] == "gpu"
    assert evaluation.settings["node_selector"] == {"karpenter.sh/nodepool": "cpu"}
    assert training.namespace == "ml-training"


def test_parsing_a_kubernetes_config_imports_neither_kubernetes_nor_cncf() -> None:
    code = (
        "import sys\n"
        "from airflow_provider_mlops.config.loader import load_config\n"
        "from airflow_provider_mlops.factory.plan import plan_model\n"
        "from airflow_provider_mlops.factory.render import render_dag\n"
        "specs = plan_model(load_config('examples/breast-cancer-gpu/mlops.yaml'))\n"
        "dags = [render_dag(spec) for spec in specs]\n"
        "assert len(dags) == 3 and dags[0].get_task('train'), dags\n"
        # Airflow's own airflow.exceptions imports the provider's tiny exceptions module.
        "core = ('airflow.providers.cncf', 'airflow.providers.cncf.kubernetes',\n"
        "        'airflow.providers.cncf.kubernetes.exceptions', 'airflow.providers.cncf.kubernetes.get_provider_info')\n"
        "bad = [m for m in sys.modules if m.startswith(('kubernetes', 'airflow.providers.cncf')) and m not in core]\n"
        "assert not bad, bad\n"
    )
    from k8s_helpers import REPO

    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
