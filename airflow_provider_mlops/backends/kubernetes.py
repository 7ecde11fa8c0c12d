"""
The Kubernetes compute backend: a job is a pod, rendered by ``KubernetesPodOperator``.

The pod comes from :func:`~airflow_provider_mlops.backends.kubernetes_pod.render_pod`
(``KubernetesPodOperator.build_pod_request_obj()``); the cncf provider's ``KubernetesHook``
and ``PodManager`` create, read, exec into and delete it. Nothing here manages pods by hand.

- ``submit`` is idempotent. The pod is named ``<job>-try<N>`` after the task try: a pod of
  that name is re-attached, and pods of earlier tries are deleted first, so a retry never
  leaves the previous pod running (or holding its GPU).
- ``poll`` reads the ``base`` container's state. When it has ended, the metrics and artifact
  URIs come back through the XCom sidecar (``/airflow/xcom/return.json``, written by
  :mod:`~airflow_provider_mlops.backends.kubernetes_runner`), then ``on_finish_action`` applies.
  A pod that cannot be scheduled within ``schedule_timeout_seconds``, or start within
  ``startup_timeout_seconds``, fails the job and is deleted.
- ``stop`` (the operator's ``on_kill``) deletes the job's pods.

Waiting is deferrable through the operators' ``JobCompletionTrigger``, which calls ``poll``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.backends.base import COMPLETED, FAILED, IN_PROGRESS, JobSpec, JobState
from airflow_provider_mlops.backends.kubernetes_pod import ATTEMPT_LABEL, JOB_LABEL, KIND_LABEL, render_pod
from airflow_provider_mlops.exceptions import BackendError, BackendNotAvailableError

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager
    from airflow.sdk import Context
    from kubernetes.client import CoreV1Api
    from kubernetes.client import models as k8s

log = logging.getLogger(__name__)

BASE_CONTAINER = "base"


def _task_context() -> Context | None:
    """The running task's context (for the try number and the provider's pod labels), if any."""
    try:
        from airflow.sdk import get_current_context

        return get_current_context()
    except Exception:  # outside a task (CLI, tests) there is no context
        return None


def _attempt(pod: k8s.V1Pod) -> int:
    try:
        return int((pod.metadata.labels or {}).get(ATTEMPT_LABEL, "0"))
    except ValueError:
        return 0


class KubernetesComputeBackend:
    """
    Runs jobs as pods on the cluster behind an Airflow Kubernetes connection.

    :param settings: the step's merged ``kubernetes:`` settings
        (:func:`airflow_provider_mlops.config.kubernetes.step_settings`): connection,
        namespace, node pool, volumes, timeouts, artifacts location.
    """

    name = "kubernetes"
    default_poll_interval = 15.0

    def __init__(self, settings: dict[str, Any]) -> None:
        if importlib.util.find_spec("airflow.providers.cncf.kubernetes") is None:
            raise BackendNotAvailableError(
                "backend kubernetes needs the cncf-kubernetes provider: pip install 'airflow-provider-mlops[kubernetes]'"
            )
        self.settings = dict(settings)
        self.namespace: str = self.settings.get("namespace") or "default"

    def serialize(self) -> dict[str, Any]:
        return {"settings": self.settings}

    @cached_property
    def client(self) -> CoreV1Api:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.settings.get("conn_id", "kubernetes_default")).core_v1_client

    @cached_property
    def pod_manager(self) -> PodManager:
        from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager

        return PodManager(kube_client=self.client)

    def pods(self, job_name: str) -> list[k8s.V1Pod]:
        """The job's pods in this namespace, oldest try first."""
        found = self.client.list_namespaced_pod(self.namespace, label_selector=f"{JOB_LABEL}={job_name}").items
        return sorted(found, key=_attempt)

    def submit(self, spec: JobSpec) -> JobState:
        context = _task_context()
        attempt = int(context["ti"].try_number or 1) if context else 1
        return self.submit_attempt(spec, attempt, context=context)

    def submit_attempt(self, spec: JobSpec, attempt: int, *, context: Context | None = None, dry_run: bool = False) -> JobState:
        """
        Start try ``attempt`` of the job as pod ``<job>-try<attempt>``, or re-attach to it.

        :param spec: the job.
        :param attempt: the task try number (``submit`` reads it from the running task).
        :param context: the task context, for the provider's pod labels.
        :param dry_run: render without asking the cluster whether Airflow runs in it.
        """
        pod = render_pod(spec, self.settings, attempt=attempt, context=context, dry_run=dry_run)
        existing = self.pods(spec.name)
        for old in existing:
            if old.metadata.name != pod.metadata.name:
                log.info("Deleting pod %s of an earlier try of job %s", old.metadata.name, spec.name)
                self.pod_manager.delete_pod(old)
        if any(old.metadata.name == pod.metadata.name for old in existing):
            log.info("Re-attaching to pod %s/%s", self.namespace, pod.metadata.name)
            return self.poll(spec.name)
        from kubernetes.client.exceptions import ApiException

        try:
            self.pod_manager.create_pod(pod)
        except ApiException as exc:
            if exc.status == 409:  # created by a concurrent submit of the same try
                return self.poll(spec.name)
            raise BackendError(
                f"could not create pod {self.namespace}/{pod.metadata.name} for job {spec.name}: "
                f"{exc.status} {exc.reason}; check the connection {self.settings.get('conn_id')!r} and its RBAC "
                "(pods: create, get, list, delete; pods/exec: create)"
            ) from exc
        return JobState(name=spec.name, status=IN_PROGRESS, log_uri=self._log_uri(pod), details=self._where(pod))

    def poll(self, name: str) -> JobState:
        pods = self.pods(name)
        if not pods:
            return JobState(
                name=name,
                status=FAILED,
                failure_reason=(
                    f"no pod of job {name} in namespace {self.namespace}: it was deleted before its result was read; "
                    "clear the task to run it again"
                ),
            )
        pod = pods[-1]
        status = self._base_status(pod)
        terminated = status.state.terminated if status and status.state else None
        if terminated is not None:
            return self._finish(name, pod, exit_code=int(terminated.exit_code), detail=terminated.reason or terminated.message)
        phase = pod.status.phase if pod.status else None
        if phase in ("Failed", "Succeeded"):
            reason = f"pod {pod.metadata.name} is {phase}: {pod.status.reason or ''} {pod.status.message or ''}".strip()
            return self._fail(name, pod, reason)
        if phase in (None, "Pending"):
            problem = self._startup_problem(pod)
            if problem:
                return self._fail(name, pod, problem)
        waiting = status.state.waiting if status and status.state else None
        progress = (waiting.reason if waiting else None) or phase or "Pending"
        details = {**self._where(pod), "secondary_status": progress}
        return JobState(name=name, status=IN_PROGRESS, log_uri=self._log_uri(pod), details=details)

    def stop(self, name: str) -> None:
        for pod in self.pods(name):
            log.info("Deleting pod %s/%s", self.namespace, pod.metadata.name)
            self.pod_manager.delete_pod(pod)

    @staticmethod
    def _base_status(pod: k8s.V1Pod) -> k8s.V1ContainerStatus | None:
        from airflow.providers.cncf.kubernetes.utils.container import get_container_status

        return get_container_status(pod, BASE_CONTAINER)

    def _startup_problem(self, pod: k8s.V1Pod) -> str | None:
        """Why a pending pod will never start: a permanent image error, or a timeout."""
        from airflow.providers.cncf.kubernetes.utils.pod_manager import detect_pod_terminate_early_issues

        issue = detect_pod_terminate_early_issues(pod)
        if issue:
            return f"pod {pod.metadata.name} cannot start: {issue}"
        created = pod.metadata.creation_timestamp
        if created is None:
            return None
        age = (datetime.now(UTC) - created).total_seconds()
        conditions = {c.type: c for c in (pod.status.conditions or [])} if pod.status else {}
        scheduled = conditions.get("PodScheduled")
        schedule_timeout = int(self.settings.get("schedule_timeout_seconds") or 3600)
        startup_timeout = int(self.settings.get("startup_timeout_seconds") or 600)
        if scheduled is None or scheduled.status != "True":
            if age > schedule_timeout:
                why = scheduled.message if scheduled is not None and scheduled.message else "no node fits"
                return (
                    f"pod {pod.metadata.name} was not scheduled within schedule_timeout_seconds={schedule_timeout}: {why}; "
                    "check node_selector, tolerations and that the node pool has free GPUs (nvidia.com/gpu capacity)"
                )
            return None
        since = scheduled.last_transition_time or created
        if (datetime.now(UTC) - since).total_seconds() > startup_timeout:
            return (
                f"pod {pod.metadata.name} did not start within startup_timeout_seconds={startup_timeout} of being scheduled "
                "(image pull, volume mount or init); see kubectl describe pod"
            )
        return None

    def _finish(self, name: str, pod: k8s.V1Pod, *, exit_code: int, detail: str | None) -> JobState:
        result = self._read_result(pod)
        succeeded = exit_code == 0
        reason = None
        if not succeeded:
            reason = result.get("failure_reason") or f"container {BASE_CONTAINER} exited with code {exit_code} ({detail})"
        state = JobState(
            name=name,
            status=COMPLETED if succeeded else FAILED,
            failure_reason=reason,
            metrics={k: float(v) for k, v in (result.get("metrics") or {}).items()},
            model_uri=result.get("model_uri") if (pod.metadata.labels or {}).get(KIND_LABEL) == "training" else None,
            output_uri=result.get("output_uri"),
            log_uri=self._log_uri(pod),
            details={**self._where(pod), **(result.get("details") or {})},
        )
        if succeeded and state.model_uri is None and (pod.metadata.labels or {}).get(KIND_LABEL) == "training":
            state = JobState(**{**state.to_dict(), "status": FAILED, "failure_reason": (
                f"training pod {pod.metadata.name} ended without reporting a model URI through "
                "/airflow/xcom/return.json; the image must run the command the pod spec gives "
                "(python -m airflow_provider_mlops.backends.kubernetes_runner)"
            )})
        self._after_finish(pod, state.status == COMPLETED)
        return state

    def _fail(self, name: str, pod: k8s.V1Pod, reason: str) -> JobState:
        self._after_finish(pod, succeeded=False)
        return JobState(name=name, status=FAILED, failure_reason=reason, log_uri=self._log_uri(pod), details=self._where(pod))

    def _read_result(self, pod: k8s.V1Pod) -> dict[str, Any]:
        """The runner's result from the XCom sidecar (which is then stopped); empty when unreadable."""
        from airflow.providers.cncf.kubernetes.utils.pod_manager import EMPTY_XCOM_RESULT

        try:
            raw = self.pod_manager.extract_xcom(pod)
        except Exception as exc:  # a lost result fails the job below; the reason is logged
            log.warning("Could not read the XCom result of pod %s: %s", pod.metadata.name, exc)
            return {}
        if not raw or raw.strip() == EMPTY_XCOM_RESULT:
            return {}
        result: dict[str, Any] = json.loads(raw)
        return result

    def _after_finish(self, pod: k8s.V1Pod, succeeded: bool) -> None:
        action = self.settings.get("on_finish_action") or "delete_pod"
        if action == "delete_pod" or (action == "delete_succeeded_pod" and succeeded):
            self.pod_manager.delete_pod(pod)

    def _where(self, pod: k8s.V1Pod) -> dict[str, Any]:
        return {"pod": pod.metadata.name, "namespace": self.namespace}

    def _log_uri(self, pod: k8s.V1Pod) -> str:
        return f"kubectl logs -n {self.namespace} {pod.metadata.name} -c {BASE_CONTAINER}"
