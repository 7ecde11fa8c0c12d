"""
Kubernetes job output in the task log: the ``base`` container's log through
``read_namespaced_pod_log`` (the in-memory pods API of k8s_cluster.py), copied by the trigger as
the pod runs, each line once (also lines that share a timestamp), and its tail for failures.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from k8s_cluster import SPEC, FakePodsApi, make_backend
from k8s_helpers import TRAIN_JOB
from kubernetes.client import models as k8s

from airflow_provider_mlops import backends
from airflow_provider_mlops.backends.kubernetes import KubernetesComputeBackend
from airflow_provider_mlops.triggers.job import JobCompletionTrigger

pytestmark = pytest.mark.usefixtures("kubeconfig")


@pytest.fixture
def cluster() -> FakePodsApi:
    return FakePodsApi()


@pytest.fixture
def backend(cluster: FakePodsApi, monkeypatch: pytest.MonkeyPatch) -> KubernetesComputeBackend:
    """The backend on the in-memory API; a trigger asking for ``kubernetes`` gets this one."""
    results: dict[str, dict[str, Any]] = {TRAIN_JOB: {"exit_code": 0, "metrics": {"acc": 0.9}, "details": {},
                                                      "model_uri": "s3://bucket/m.tar.gz", "output_uri": "s3://bucket/out"}}
    built = make_backend(cluster, results)
    monkeypatch.setattr(backends, "get_compute_backend", lambda name, **_: built)
    return built


def test_pod_log_lines_reach_the_trigger_log_while_the_pod_runs(cluster: FakePodsApi, backend: KubernetesComputeBackend,
                                                               trigger_log: Any) -> None:
    backend.submit(SPEC)
    assert backend.logs_since(TRAIN_JOB, None).lines == []  # Pending: the container has not started
    cluster.schedule(TRAIN_JOB)
    same = datetime.now(UTC)
    cluster.write_log(TRAIN_JOB, "epoch 1", "epoch 1 done", at=same)
    trigger = JobCompletionTrigger("kubernetes", backend.serialize(), TRAIN_JOB, poll_interval=0.05)
    trigger._log = trigger_log.logger

    async def drive() -> dict[str, Any]:
        run = asyncio.ensure_future(trigger_log.first_event(trigger))
        await trigger_log.until("epoch 1 done")
        cluster.write_log(TRAIN_JOB, "epoch 1 late line", at=same)  # the same timestamp as lines already read
        cluster.write_log(TRAIN_JOB, "epoch 2")
        await trigger_log.until("epoch 2")
        cluster.finish(TRAIN_JOB, 0)
        return await run

    event = asyncio.run(asyncio.wait_for(drive(), timeout=60))
    assert event["status"] == "success"
    lines = [m for m in trigger_log.messages if m.startswith(f"[{TRAIN_JOB}]")]
    assert lines == [f"[{TRAIN_JOB}] {text}" for text in ("epoch 1", "epoch 1 done", "epoch 1 late line", "epoch 2")]
    asked = [r for r in cluster.log_requests if r["since_seconds"] is not None]
    assert asked and all(r["container"] == "base" for r in cluster.log_requests)


def test_the_tail_of_a_failed_pods_log_and_a_bounded_read(cluster: FakePodsApi, backend: KubernetesComputeBackend) -> None:
    backend.submit(SPEC)
    cluster.schedule(TRAIN_JOB)
    cluster.write_log(TRAIN_JOB, *[f"line {i}" for i in range(50)], "RuntimeError: CUDA out of memory")
    cluster.set_state(TRAIN_JOB, terminated=k8s.V1ContainerStateTerminated(exit_code=1, reason="Error"))
    tail = backend.logs_since(TRAIN_JOB, None, 3, 4096)
    assert tail.lines == ["line 48", "line 49", "RuntimeError: CUDA out of memory"]
    first = backend.logs_since(TRAIN_JOB, None, 10, 4096)
    cluster.write_log(TRAIN_JOB, *[f"more {i}" for i in range(30)])
    bounded = backend.logs_since(TRAIN_JOB, first.cursor, 10, 4096)
    assert bounded.lines == [f"more {i}" for i in range(20, 30)] and bounded.skipped == -1
    assert backend.logs_since(TRAIN_JOB, bounded.cursor, 10, 4096).lines == []
    cluster.delete_namespaced_pod(TRAIN_JOB, "ml")
    assert backend.logs_since(TRAIN_JOB, bounded.cursor).lines == []  # a deleted pod has no log left: not an error
