"""
Shared operator plumbing: the config a task runs on, failing fast, and the job-running base class.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_mlops import runtime
from airflow_provider_mlops.backends.base import COMPLETED, STOPPED, JobSpec, JobState
from airflow_provider_mlops.exceptions import BackendError, MlopsError
from airflow_provider_mlops.links.console import MlopsConsoleLink, MlopsLogsLink, push_links
from airflow_provider_mlops.naming import job_name

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_mlops.backends import ComputeBackend
    from airflow_provider_mlops.config.loader import LoadedConfig
    from airflow_provider_mlops.registry import ModelRegistry


_Method = TypeVar("_Method", bound=Callable[..., Any])

#: The methods through which Airflow runs an operator's work; :func:`fail_fast` wraps each one.
FAIL_FAST_METHODS = ("choose_branch", "execute", "execute_complete")


def fail_fast(method: _Method) -> _Method:
    """
    Turn an error no retry can fix into ``AirflowFailException``: the task fails at once, unretried.

    Which errors those are is :attr:`MlopsError.retryable` (a bad config or run conf, a missing
    file, an unknown version, a refused deploy). The message stays the same, and the original
    error is chained as the cause. Every other exception passes through unchanged.

    :param method: an operator method (``execute``, ``execute_complete``, ``choose_branch``).
    :return: the wrapped method.
    """
    if getattr(method, "__mlops_fail_fast__", False):
        return method

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except MlopsError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from exc

    wrapper.__mlops_fail_fast__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class MlopsConfigMixin:
    """
    Gives an operator the model config it runs on, loaded at run time (never at parse time).

    Every subclass's ``execute``, ``execute_complete`` and ``choose_branch`` go through
    :func:`fail_fast`, so an error no retry can fix fails the task without spending retries.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    """

    config_path: str
    config_root: str | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in FAIL_FAST_METHODS:
            method = cls.__dict__.get(name)
            if callable(method):
                setattr(cls, name, fail_fast(method))

    @cached_property
    def loaded(self) -> LoadedConfig:
        return runtime.config_at(self.config_path, self.config_root)

    @cached_property
    def registry(self) -> ModelRegistry:
        return runtime.registry_for(self.loaded)

    @property
    def group(self) -> str:
        return runtime.group_of(self.loaded)


class MlopsBaseOperator(MlopsConfigMixin, BaseOperator):
    """
    Base class of the provider's operators.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#e8f4fd"

    def __init__(self, *, config_path: str, config_root: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path
        self.config_root = config_root


class MlopsJobOperator(MlopsBaseOperator):
    """
    Run one compute job (training or evaluation) on the config's backend and wait for it.

    The job's name is derived from the DAG, the run and the task, not the try: a retry
    re-attaches to the job its first try started, and never starts a second one. While the job
    runs the task defers to :class:`JobCompletionTrigger` and holds no worker slot.
    ``on_kill`` stops the job.

    :param deferrable: wait in the triggerer (default) instead of polling in the worker.
    :param poll_interval: seconds between status checks (default: the backend's own).
    """

    step = "training"
    operator_extra_links = (MlopsConsoleLink(), MlopsLogsLink())

    def __init__(self, *, deferrable: bool = True, poll_interval: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.job_name: str | None = None

    @cached_property
    def backend(self) -> ComputeBackend:
        return runtime.compute_backend(self.loaded, self.step)

    @property
    def _poll_interval(self) -> float:
        if self.poll_interval is not None:
            return self.poll_interval
        return float(getattr(self.backend, "default_poll_interval", 10.0))

    def build_spec(self, context: Context, name: str) -> JobSpec:
        raise NotImplementedError

    def finish(self, context: Context, state: JobState) -> dict[str, Any]:
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        self.job_name = job_name(ti.dag_id, ti.run_id, ti.task_id)
        spec = self.build_spec(context, self.job_name)
        state = self.backend.submit(spec)
        # The backend may have started a later attempt (<name>-a2, ...) after a failed one: follow that.
        self.job_name = state.name
        push_links(context, state.details.get("links"))
        self.log.info("%s job %s on backend %s is %s; log: %s", self.step, state.name, self.backend.name, state.status, state.log_uri)
        if not state.terminal:
            if self.deferrable:
                from airflow_provider_mlops.triggers.job import JobCompletionTrigger

                self.defer(
                    trigger=JobCompletionTrigger(
                        backend=self.backend.name,
                        backend_kwargs=self.backend.serialize(),
                        job_name=state.name,
                        poll_interval=self._poll_interval,
                    ),
                    method_name="execute_complete",
                    timeout=timedelta(seconds=spec.resources.get("max_runtime_seconds", 86400) + 3600),
                )
            state = self._wait(state.name, state)
        return self._complete(context, state)

    def _wait(self, name: str, state: JobState) -> JobState:
        last = state.status
        while not state.terminal:
            time.sleep(self._poll_interval)
            state = self.backend.poll(name)
            if state.status != last:
                self.log.info("Job %s: %s -> %s", name, last, state.status)
                last = state.status
        return state

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: every event status is handled."""
        status = event.get("status")
        if status in ("success", "failed", "stopped"):
            return self._complete(context, JobState.from_dict(event["state"]))
        if status == "error":
            raise BackendError(f"waiting for job {event.get('job_name', self.job_name)} failed: {event.get('message')}")
        raise BackendError(f"unexpected trigger event for {self.task_id}: {event!r}")

    def _complete(self, context: Context, state: JobState) -> dict[str, Any]:
        push_links(context, state.details.get("links"))
        if state.status == STOPPED:
            raise BackendError(
                f"{self.step} job {state.name} was stopped ({state.failure_reason or 'no reason given'}); "
                "a stopped job never counts as success; the task's next try starts a new attempt"
            )
        if state.status != COMPLETED:
            raise BackendError(
                f"{self.step} job {state.name} failed: {state.failure_reason or 'no reason given'}; log: {state.log_uri}"
            )
        self.log.info("%s job %s completed; metrics: %s", self.step, state.name, state.metrics)
        return self.finish(context, state)

    def on_kill(self) -> None:
        if self.job_name:
            self.log.info("Stopping job %s", self.job_name)
            self.backend.stop(self.job_name)
