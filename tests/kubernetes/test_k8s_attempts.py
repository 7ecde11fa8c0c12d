"""
Job attempts on the Kubernetes backend (issue 13): a retry re-attaches to its job's running or
succeeded pod instead of restarting the GPU work, starts ``<job>-a2``, ``-a3`` after a failed or
stopped one, and a task never has two live pods.

Each try runs inside Airflow's own current-context stack with its try number, and builds a fresh
backend, as a new worker does: the only memory between tries is what the pods API holds.
"""

from __future__ import annotations

from typing import Any

import pytest
from k8s_cluster import SPEC, FakePodsApi, SidecarPodManager, make_backend, task_try
from k8s_helpers import TRAIN_JOB, validate
from kubernetes.client.exceptions import ApiException

from airflow_provider_mlops.backends.base import COMPLETED, FAILED, IN_PROGRESS, STOPPED, JobState
from airflow_provider_mlops.backends.kubernetes_pod import ATTEMPT_LABEL, ENDED_ANNOTATION, JOB_LABEL

pytestmark = pytest.mark.usefixtures("kubeconfig")

A2, A3 = f"{TRAIN_JOB}-a2", f"{TRAIN_JOB}-a3"
MODEL = f"s3://bucket/mlops/{TRAIN_JOB}/model.tar.gz"


@pytest.fixture
def cluster() -> FakePodsApi:
    return FakePodsApi()


@pytest.fixture
def results() -> dict[str, dict[str, Any]]:
    return {}


def _try(number: int, cluster: FakePodsApi, results: dict[str, Any], **settings: Any) -> JobState:
    """Try ``number`` of the task submits its job from a fresh worker; never two live pods after it."""
    with task_try(number):
        state = make_backend(cluster, results, **settings).submit(SPEC)
    assert len(cluster.live()) <= 1, f"two live pods for one task: {cluster.live()}"
    return state


def _fail(cluster: FakePodsApi, results: dict[str, Any], pod: str, reason: str = "CUDA out of memory") -> None:
    cluster.schedule(pod)
    cluster.finish(pod, exit_code=3)
    results[pod] = {"exit_code": 3, "metrics": {}, "failure_reason": f"the entrypoint exited with code 3: {reason}"}


def test_a_retry_while_the_pod_runs_reattaches_without_deleting_or_creating(cluster: FakePodsApi, results: dict[str, Any]) -> None:
    first = _try(1, cluster, results)
    pod = first.details["pod"]
    cluster.schedule(pod)
    again = _try(2, cluster, results)
    assert cluster.deleted == [] and cluster.patches == []
    assert [body["metadata"]["name"] for body in cluster.sent] == [pod]
    assert again.status == IN_PROGRESS and again.details == {**first.details, "secondary_status": "Running"}
    assert first.name == again.name == pod == TRAIN_JOB
    assert cluster.live() == [TRAIN_JOB]


def test_a_retry_after_the_pod_succeeded_uses_its_result_and_starts_nothing(cluster: FakePodsApi, results: dict[str, Any]) -> None:
    pod = _try(1, cluster, results).details["pod"]
    cluster.schedule(pod)
    cluster.finish(pod, exit_code=0)  # try 1's worker died before it read the result
    results[pod] = {"exit_code": 0, "metrics": {"train_accuracy": 0.98}, "details": {}, "model_uri": MODEL}
    state = _try(2, cluster, results)
    assert len(cluster.sent) == 1
    assert state.status == COMPLETED and state.name == pod == TRAIN_JOB
    assert state.metrics == {"train_accuracy": 0.98} and state.model_uri == MODEL
    assert cluster.deleted == [TRAIN_JOB]  # on_finish_action: delete_pod, once its result is read


def test_a_kept_succeeded_pod_is_reused_by_every_later_try_from_its_annotation(cluster: FakePodsApi, results: dict[str, Any]) -> None:
    pod = _try(1, cluster, results, on_finish_action="keep_pod").details["pod"]
    cluster.schedule(pod)
    cluster.finish(pod, exit_code=0)
    results[pod] = {"exit_code": 0, "metrics": {"train_accuracy": 0.98}, "details": {}, "model_uri": MODEL}
    read = _try(2, cluster, results, on_finish_action="keep_pod")
    # The sidecar that served the result is gone now: a later try reads the result kept on the pod.
    with task_try(3):
        backend = make_backend(cluster, results, on_finish_action="keep_pod")
        reread = backend.submit(SPEC)
    assert read.status == reread.status == COMPLETED and read.model_uri == reread.model_uri == MODEL
    assert reread.metrics == {"train_accuracy": 0.98}
    assert isinstance(backend.pod_manager, SidecarPodManager) and backend.pod_manager.reads == []
    assert len(cluster.sent) == 1 and cluster.deleted == []


@pytest.mark.parametrize(
    ("on_finish_action", "left"),
    [("delete_pod", [A3]), ("delete_succeeded_pod", [TRAIN_JOB, A2, A3])],
)
def test_a_retry_after_a_failed_pod_starts_the_next_attempt(
    cluster: FakePodsApi, results: dict[str, Any], on_finish_action: str, left: list[str]
) -> None:
    pod = _try(1, cluster, results, on_finish_action=on_finish_action).details["pod"]
    _fail(cluster, results, pod)
    failed = make_backend(cluster, results, on_finish_action=on_finish_action).poll(pod)
    assert failed.status == FAILED and "CUDA out of memory" in (failed.failure_reason or "")
    assert cluster.names() == [pod] == [TRAIN_JOB]  # kept for its logs, and as the record of attempt 1

    second = _try(2, cluster, results, on_finish_action=on_finish_action)
    assert second.name == A2 and second.status == IN_PROGRESS and second.details["pod"] == A2
    sent = cluster.sent[-1]
    validate(sent)
    assert sent["metadata"]["labels"][JOB_LABEL] == TRAIN_JOB and sent["metadata"]["labels"][ATTEMPT_LABEL] == "2"
    env = {e["name"]: e.get("value") for e in sent["spec"]["containers"][0]["env"]}
    assert env["MLOPS_MODEL_URI"] == f"s3://bucket/mlops/{A2}/model.tar.gz"  # never mixed with attempt 1's files

    _fail(cluster, results, A2)
    third = _try(3, cluster, results, on_finish_action=on_finish_action)
    assert third.name == A3 and [body["metadata"]["name"] for body in cluster.sent] == [TRAIN_JOB, A2, A3]
    assert cluster.names() == left and cluster.live() == [A3]
    # The failed attempts still report why, from the result kept on each pod (their sidecars are gone).
    if A2 in left:
        again = make_backend(cluster, results, on_finish_action=on_finish_action).poll(A2)
        assert again.status == FAILED and "CUDA out of memory" in (again.failure_reason or "")


def test_stop_ends_the_live_attempt_in_place_and_the_retry_starts_the_next(cluster: FakePodsApi, results: dict[str, Any]) -> None:
    first = _try(1, cluster, results).details["pod"]
    _fail(cluster, results, first)
    live = _try(2, cluster, results).details["pod"]
    cluster.schedule(live)
    # on_kill, from a fresh worker or the triggerer: by the attempt's name, or by the task's job name.
    make_backend(cluster, results).stop(TRAIN_JOB)
    assert cluster.names() == [live] and cluster.deleted == [first]  # attempt 1's pod went when attempt 2 started
    assert live == A2
    [(patched, body)] = [(name, body) for name, body in cluster.patches if "spec" in body]
    assert patched == A2 and body["spec"] == {"activeDeadlineSeconds": 1} and ENDED_ANNOTATION in body["metadata"]["annotations"]
    cluster.enforce_deadline(A2)
    assert cluster.live() == []
    stopped = make_backend(cluster, results).poll(A2)
    assert stopped.status == STOPPED and "stopped on request" in (stopped.failure_reason or "")
    patches = len(cluster.patches)
    make_backend(cluster, results).stop(A2)  # stopping an ended attempt changes nothing
    assert len(cluster.patches) == patches and cluster.names() == [A2]

    third = _try(3, cluster, results)
    assert third.name == A3 and third.status == IN_PROGRESS
    assert cluster.names() == [A3]


def test_a_stop_the_api_refuses_in_place_deletes_the_pod_instead(
    cluster: FakePodsApi, results: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = _try(1, cluster, results).details["pod"]
    cluster.schedule(pod)

    def forbidden(*_: Any, **__: Any) -> None:
        raise ApiException(status=403, reason="Forbidden: pods is forbidden: cannot patch resource")

    monkeypatch.setattr(cluster, "patch_namespaced_pod", forbidden)
    make_backend(cluster, results).stop(TRAIN_JOB)
    assert cluster.deleted == [pod] and cluster.live() == []


def test_racing_submits_of_the_same_attempt_make_one_pod(cluster: FakePodsApi, results: dict[str, Any]) -> None:
    pod = _try(1, cluster, results).details["pod"]
    _fail(cluster, results, pod)
    make_backend(cluster, results).poll(pod)
    list_pods = cluster.list_namespaced_pod
    raced: list[JobState] = []
    racing = False

    def list_then_race(namespace: str, label_selector: str) -> Any:
        nonlocal racing
        listed = list_pods(namespace, label_selector)
        if not racing:  # another worker submits between this one's list and its create
            racing = True
            raced.append(make_backend(cluster, results).submit(SPEC))
        return listed

    cluster.list_namespaced_pod = list_then_race  # type: ignore[method-assign]
    with task_try(2):
        state = make_backend(cluster, results).submit(SPEC)
    assert raced[0].name == state.name == A2 and state.status == IN_PROGRESS
    assert [body["metadata"]["name"] for body in cluster.sent] == [TRAIN_JOB, A2]
    assert cluster.live() == [A2]
