"""
The Kubernetes compute backend: a job is a pod, rendered by ``KubernetesPodOperator``.

The pod comes from :func:`~airflow_provider_mlops.backends.kubernetes_pod.render_pod`
(``KubernetesPodOperator.build_pod_request_obj()``); the cncf provider's ``KubernetesHook``
and ``PodManager`` create, read, exec into and delete it.

Attempts, as on every backend: a task's job name is fixed per DAG run and task, and each pod is
one attempt of it, named ``<job>``, ``<job>-a2``, ``-a3``, ... and labelled with the job and the
attempt number. ``submit`` lists the job's pods through the API (never local memory):

- an attempt still Pending or Running is re-attached: it is neither deleted nor joined by another;
- a Succeeded attempt is re-attached and its result used: the job does not run again;
- after a Failed or Stopped attempt (or none) the next attempt's pod is created. A failed or
  stopped pod stays until then, for its logs and as the record of its attempt; once its successor
  exists, ``on_finish_action: delete_pod`` deletes it (the other actions keep it).

So a task never has two live pods. ``poll`` reads the ``base`` container's state. When it has
ended, the metrics and artifact URIs come back through the XCom sidecar (``/airflow/xcom/return.json``,
written by :mod:`~airflow_provider_mlops.backends.kubernetes_runner`) and are kept on the pod as an
annotation; a succeeded pod is then deleted per ``on_finish_action``. A pod that cannot be scheduled
within ``schedule_timeout_seconds``, or start within ``startup_timeout_seconds``, fails its attempt.
``stop`` (the operator's ``on_kill``) ends the live attempt (see :meth:`KubernetesComputeBackend.stop`).

Waiting is deferrable through the operators' ``JobCompletionTrigger``, which calls ``poll``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.backends import base
from airflow_provider_mlops.backends.base import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    STOPPED,
    JobSpec,
    JobState,
    LogBatch,
)
from airflow_provider_mlops.backends.kubernetes_pod import (
    ATTEMPT_LABEL,
    ENDED_ANNOTATION,
    JOB_LABEL,
    KIND_LABEL,
    RESULT_ANNOTATION,
    pod_log_since,
    render_pod,
)
from airflow_provider_mlops.exceptions import BackendError, BackendNotAvailableError
from airflow_provider_mlops.naming import MAX_ATTEMPTS

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager
    from airflow.sdk import Context
    from kubernetes.client import CoreV1Api
    from kubernetes.client import models as k8s

log = logging.getLogger(__name__)

BASE_CONTAINER = "base"
#: What the pod's RBAC must allow, for error messages.
RBAC_HINT = "pods: create, get, list, patch, delete; pods/exec: create"
#: An annotation holds at most 256 KiB in all; a result larger than this is not kept on the pod.
MAX_KEPT_RESULT = 200_000


def _task_context() -> Context | None:
    """The running task's context (for the provider's pod labels), if any."""
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


def _base_status(pod: k8s.V1Pod) -> k8s.V1ContainerStatus | None:
    from airflow.providers.cncf.kubernetes.utils.container import get_container_status

    return get_container_status(pod, BASE_CONTAINER)


def _annotation(pod: k8s.V1Pod, key: str) -> dict[str, Any] | None:
    raw = (pod.metadata.annotations or {}).get(key)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _live(pod: k8s.V1Pod) -> bool:
    """Pending or Running with its ``base`` container not ended, and neither ended by the backend nor being deleted."""
    if pod.metadata.deletion_timestamp is not None or ENDED_ANNOTATION in (pod.metadata.annotations or {}):
        return False
    if (pod.status.phase if pod.status else None) in ("Succeeded", "Failed"):
        return False
    status = _base_status(pod)
    return not (status is not None and status.state is not None and status.state.terminated is not None)


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

    @property
    def on_finish_action(self) -> str:
        return str(self.settings.get("on_finish_action") or "delete_pod")

    def pods(self, job_name: str) -> list[k8s.V1Pod]:
        """Every attempt's pod of the task's job ``job_name`` in this namespace, by label, oldest attempt first."""
        found = self.client.list_namespaced_pod(self.namespace, label_selector=f"{JOB_LABEL}={job_name}").items
        return sorted(found, key=_attempt)

    def submit(self, spec: JobSpec) -> JobState:
        """
        Re-attach to the job's live or succeeded attempt, or start its next attempt after a failed or
        stopped one (or none); return the attempt's state, named after its pod.
        """
        pods = self.pods(spec.name)
        live = [pod for pod in reversed(pods) if _live(pod)]
        # Only the newest attempt can have succeeded: a successor starts only after a failure.
        candidates = live + [pod for pod in pods[-1:] if pod not in live]
        for pod in candidates:
            state = self._state(pod)
            if state.status in (IN_PROGRESS, COMPLETED):
                log.info("Re-attaching to pod %s/%s, attempt %s of job %s (%s): not starting another",
                         self.namespace, pod.metadata.name, _attempt(pod), spec.name, state.status)
                return state
        attempt = max((_attempt(pod) for pod in pods), default=0) + 1
        if attempt > MAX_ATTEMPTS:
            raise BackendError(
                f"kubernetes job {spec.name} failed {MAX_ATTEMPTS} attempts (pods labelled {JOB_LABEL}={spec.name} "
                f"in namespace {self.namespace}); read their logs, fix the cause, then delete those pods to start again"
            )
        state = self._create(spec, attempt)
        if self.on_finish_action == "delete_pod":
            for old in pods:  # the earlier, ended attempts: the new pod's attempt label now carries the count
                log.info("Deleting pod %s/%s of ended attempt %s of job %s", self.namespace, old.metadata.name, _attempt(old), spec.name)
                self.pod_manager.delete_pod(old)
        return state

    def _create(self, spec: JobSpec, attempt: int) -> JobState:
        from kubernetes.client.exceptions import ApiException

        pod = render_pod(spec, self.settings, attempt=attempt, context=_task_context(), dry_run=False)
        try:
            # Not create_pod: the provider retries a 409 with backoff, and here 409 means the attempt exists.
            # Any other error fails this try; its retry lists the pods again and re-attaches or starts.
            self.pod_manager.run_pod_async(pod)
        except ApiException as exc:
            if exc.status == 409:  # created by a concurrent submit of the same attempt
                return self.poll(pod.metadata.name)
            raise BackendError(
                f"could not create pod {self.namespace}/{pod.metadata.name} for job {spec.name}: "
                f"{exc.status} {exc.reason}; check the connection {self.settings.get('conn_id')!r} and its RBAC ({RBAC_HINT})"
            ) from exc
        log.info("Started attempt %s of job %s as pod %s/%s", attempt, spec.name, self.namespace, pod.metadata.name)
        return JobState(name=pod.metadata.name, status=IN_PROGRESS, log_uri=self._log_uri(pod), details=self._where(pod))

    def _read_pod(self, name: str) -> k8s.V1Pod | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.client.read_namespaced_pod(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def poll(self, name: str) -> JobState:
        """The state of the attempt ``name`` (its pod's name); given a job's name, of its newest attempt."""
        pod = self._read_pod(name)
        if pod is None:
            newest = self.pods(name)[-1:]  # a job's name, e.g. from a trigger of an earlier release
            pod = newest[0] if newest else None
        if pod is None:
            return JobState(
                name=name,
                status=FAILED,
                failure_reason=(
                    f"no pod {name} in namespace {self.namespace}: it was deleted before its result was read; "
                    "clear the task to run the job's next attempt"
                ),
            )
        return self._state(pod)

    def logs_since(
        self, name: str, cursor: str | None, max_lines: int = base.LOG_LINES_PER_POLL,
        max_bytes: int = base.LOG_BYTES_PER_POLL,
    ) -> LogBatch:
        """The ``base`` container's log lines of the attempt ``name`` (its pod) after ``cursor``."""
        return pod_log_since(self.client, name, self.namespace, BASE_CONTAINER, cursor, max_lines, max_bytes)

    def stop(self, name: str) -> None:
        """
        End the live attempt: the pod ``name``, or the live pod of the job ``name``. A pod on a node
        gets ``activeDeadlineSeconds: 1`` (the kubelet ends its containers, which frees the GPU) and is
        kept, marked Stopped, for its logs and so a retry starts the next attempt; a pod not yet on a
        node is deleted. Ended and unknown pods are left alone.
        """
        targets = {pod.metadata.name: pod for pod in self.pods(name)}
        named = self._read_pod(name)
        if named is not None:
            targets[name] = named
        for pod in targets.values():
            if _live(pod):
                self._end(pod, STOPPED, "stopped on request (the task was killed, cleared or marked failed)")

    def _end(self, pod: k8s.V1Pod, status: str, reason: str) -> None:
        """End a live pod and record why on it (see :meth:`stop`); a pod not on a node is deleted."""
        from kubernetes.client.exceptions import ApiException

        where = f"{self.namespace}/{pod.metadata.name}"
        if pod.spec is None or not pod.spec.node_name:
            log.info("Deleting pod %s, which no node runs: %s", where, reason)
            self.pod_manager.delete_pod(pod)
            return
        body = {"metadata": {"annotations": {ENDED_ANNOTATION: json.dumps({"status": status, "reason": reason})}},
                "spec": {"activeDeadlineSeconds": 1}}
        try:
            self.client.patch_namespaced_pod(pod.metadata.name, self.namespace, body)
        except ApiException as exc:
            if exc.status == 404:
                return
            log.warning("Could not end pod %s in place (%s %s; RBAC needs %s): deleting it instead",
                        where, exc.status, exc.reason, RBAC_HINT)
            self.pod_manager.delete_pod(pod)
            return
        log.info("Ended pod %s (activeDeadlineSeconds=1; kept for its logs): %s", where, reason)

    def _state(self, pod: k8s.V1Pod) -> JobState:
        name = pod.metadata.name
        ended = _annotation(pod, ENDED_ANNOTATION)
        if ended is not None:
            return JobState(name=name, status=STOPPED if ended.get("status") == STOPPED else FAILED,
                            failure_reason=str(ended.get("reason") or ""), log_uri=self._log_uri(pod), details=self._where(pod))
        status = _base_status(pod)
        terminated = status.state.terminated if status and status.state else None
        if terminated is not None:
            return self._finish(pod, exit_code=int(terminated.exit_code), detail=terminated.reason or terminated.message)
        phase = pod.status.phase if pod.status else None
        if phase in ("Failed", "Succeeded") or pod.metadata.deletion_timestamp is not None:
            why = "is being deleted" if phase not in ("Failed", "Succeeded") else f"is {phase}"
            reason = f"pod {name} {why}: {pod.status.reason or ''} {pod.status.message or ''}".strip()
            return JobState(name=name, status=FAILED, failure_reason=reason, log_uri=self._log_uri(pod), details=self._where(pod))
        if phase in (None, "Pending"):
            problem = self._startup_problem(pod)
            if problem:
                self._end(pod, FAILED, problem)
                return JobState(name=name, status=FAILED, failure_reason=problem, log_uri=self._log_uri(pod), details=self._where(pod))
        waiting = status.state.waiting if status and status.state else None
        progress = (waiting.reason if waiting else None) or phase or "Pending"
        details = {**self._where(pod), "secondary_status": progress}
        return JobState(name=name, status=IN_PROGRESS, log_uri=self._log_uri(pod), details=details)

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

    def _finish(self, pod: k8s.V1Pod, *, exit_code: int, detail: str | None) -> JobState:
        result, kept = self._read_result(pod)
        succeeded = exit_code == 0
        training = (pod.metadata.labels or {}).get(KIND_LABEL) == "training"
        reason = None
        if not succeeded:
            reason = result.get("failure_reason") or f"container {BASE_CONTAINER} exited with code {exit_code} ({detail})"
        state = JobState(
            name=pod.metadata.name,
            status=COMPLETED if succeeded else FAILED,
            failure_reason=reason,
            metrics={k: float(v) for k, v in (result.get("metrics") or {}).items()},
            model_uri=result.get("model_uri") if training else None,
            output_uri=result.get("output_uri"),
            log_uri=self._log_uri(pod),
            details={**self._where(pod), **(result.get("details") or {})},
        )
        if succeeded and state.model_uri is None and training:
            state = JobState(**{**state.to_dict(), "status": FAILED, "failure_reason": (
                f"training pod {pod.metadata.name} ended without reporting a model URI through "
                "/airflow/xcom/return.json; the image must run the command the pod spec gives "
                "(python -m airflow_provider_mlops.backends.kubernetes_runner)"
            )})
        if state.status == COMPLETED and self.on_finish_action in ("delete_pod", "delete_succeeded_pod"):
            self.pod_manager.delete_pod(pod)
        elif result and not kept:
            # The pod stays (a failed attempt until its successor starts, or by on_finish_action): keep its
            # result on it, since the sidecar that served it is gone.
            self._keep_result(pod, result)
        return state

    def _read_result(self, pod: k8s.V1Pod) -> tuple[dict[str, Any], bool]:
        """
        The runner's result, and whether it was already kept on the pod: from the pod's annotation,
        else from the XCom sidecar (which is then stopped); empty when unreadable.
        """
        from airflow.providers.cncf.kubernetes.utils.pod_manager import EMPTY_XCOM_RESULT

        kept = _annotation(pod, RESULT_ANNOTATION)
        if kept is not None:
            return kept, True
        try:
            raw = self.pod_manager.extract_xcom(pod)
        except Exception as exc:  # a lost result fails the job below; the reason is logged
            log.warning("Could not read the XCom result of pod %s: %s", pod.metadata.name, exc)
            return {}, False
        if not raw or raw.strip() == EMPTY_XCOM_RESULT:
            return {}, False
        result: dict[str, Any] = json.loads(raw)
        return result, False

    def _keep_result(self, pod: k8s.V1Pod, result: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        text = json.dumps(result, sort_keys=True)
        if len(text) > MAX_KEPT_RESULT:
            log.warning("Not keeping the result of pod %s on it: %d characters is over %d", pod.metadata.name, len(text), MAX_KEPT_RESULT)
            return
        try:
            self.client.patch_namespaced_pod(pod.metadata.name, self.namespace, {"metadata": {"annotations": {RESULT_ANNOTATION: text}}})
        except ApiException as exc:  # the state is already known; only a later re-read loses it
            log.warning("Could not keep the result on pod %s/%s: %s %s (RBAC needs %s)",
                        self.namespace, pod.metadata.name, exc.status, exc.reason, RBAC_HINT)

    def _where(self, pod: k8s.V1Pod) -> dict[str, Any]:
        return {"pod": pod.metadata.name, "namespace": self.namespace}

    def _log_uri(self, pod: k8s.V1Pod) -> str:
        return f"kubectl logs -n {self.namespace} {pod.metadata.name} -c {BASE_CONTAINER}"
