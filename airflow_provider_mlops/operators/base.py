"""
Shared operator plumbing: the config a task runs on (pinned per DAG run), failing fast, and the
job-running base class.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_mlops import runtime
from airflow_provider_mlops.backends.base import COMPLETED, STOPPED, JobSpec, JobState
from airflow_provider_mlops.exceptions import BackendError, ConfigError, MlopsError
from airflow_provider_mlops.links.console import MlopsConsoleLink, MlopsLogsLink, push_links
from airflow_provider_mlops.naming import job_name

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_mlops.backends import ComputeBackend
    from airflow_provider_mlops.config.loader import LoadedConfig
    from airflow_provider_mlops.config.snapshot import PinnedConfig
    from airflow_provider_mlops.registry import ModelRegistry


_Method = TypeVar("_Method", bound=Callable[..., Any])

#: The methods through which Airflow runs an operator's work; :func:`fail_fast` wraps each one.
FAIL_FAST_METHODS = ("choose_branch", "execute", "execute_complete")
#: The XCom key under which the first task of a run keeps the snapshot of the config it read.
CONFIG_SNAPSHOT_KEY = "mlops_config"
#: Upstream task states that mean the task ran (and so pinned the run's config before its work).
_RAN_STATES = frozenset({"success", "failed"})


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


def on_pinned_config(method: _Method) -> _Method:
    """
    Pin the task's config to its DAG run before ``method`` runs (see :meth:`MlopsConfigMixin.pin_config`).

    :param method: an operator method whose first argument is the task's context.
    :return: the wrapped method.
    """
    if getattr(method, "__mlops_pinned__", False):
        return method

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        context = kwargs.get("context", args[0] if args else None)
        if context is not None:
            self.pin_config(context)
        return method(self, *args, **kwargs)

    wrapper.__mlops_pinned__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class MlopsConfigMixin:
    """
    Gives an operator the model config it runs on, loaded at run time (never at parse time).

    A DAG run is pinned to one config: the first task of the run that needs it reads
    ``mlops.yaml`` (with its defaults layers) and pushes a snapshot of it as the XCom
    :data:`CONFIG_SNAPSHOT_KEY`; every later task of the run (and the same task resuming after a
    deferral) rebuilds the config from that snapshot and reads no file, so a config published
    while the run is in flight changes nothing in it. A task whose upstream MLOps tasks already
    ran but whose snapshot is gone fails, instead of reading a config the run did not start with.

    Every subclass's ``execute``, ``execute_complete`` and ``choose_branch`` pin the config
    first, and go through :func:`fail_fast`, so an error no retry can fix fails the task without
    spending retries. An operator outside a DAG (called directly) has no run to pin to: it reads
    the file.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    """

    config_path: str
    config_root: str | None
    task_id: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in FAIL_FAST_METHODS:
            method = cls.__dict__.get(name)
            if callable(method):
                setattr(cls, name, fail_fast(on_pinned_config(method)))

    @cached_property
    def loaded(self) -> LoadedConfig:
        context = self._running_context()
        if context is not None:
            return self.pin_config(context)
        return runtime.config_at(self.config_path, self.config_root)

    @cached_property
    def registry(self) -> ModelRegistry:
        return runtime.registry_for(self.loaded)

    @property
    def group(self) -> str:
        return runtime.group_of(self.loaded)

    def _running_context(self) -> Context | None:
        """The context of the task run this operator is executing in, if it is in one."""
        if not self._in_a_dag():
            return None
        from airflow.sdk import get_current_context

        try:
            context = get_current_context()
        except RuntimeError:  # not inside a running task
            return None
        return context if getattr(context.get("ti"), "task_id", None) == self.task_id else None

    def _in_a_dag(self) -> bool:
        has_dag = getattr(self, "has_dag", None)
        return bool(has_dag()) if callable(has_dag) else False

    def pin_config(self, context: Context) -> LoadedConfig:
        """
        The config of this task's DAG run: its snapshot when a task of the run took one, else the
        file, read now and snapshotted for the rest of the run.

        Logs ``config <path> sha256:<12 hex> (pinned by <task> at <time>)`` once per task run.

        :param context: the task's context.
        :return: the config; also what :attr:`loaded` returns from now on.
        :raises ConfigError: the snapshot is gone although upstream tasks of the run ran with it,
            or it is damaged.
        """
        if not self._in_a_dag():
            return self.loaded
        ti = context["ti"]
        run = (ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), getattr(ti, "try_number", None))
        if self.__dict__.get("_mlops_pinned_run") == run and "loaded" in self.__dict__:
            return self.__dict__["loaded"]
        from airflow_provider_mlops.config.snapshot import PinnedConfig, take_snapshot

        pinned = self._pinned_by_the_run(ti)
        if pinned is None:
            loaded = runtime.config_at(self.config_path, self.config_root)
            pinned = PinnedConfig(loaded, ti.task_id, datetime.now(UTC).isoformat(timespec="seconds"))
            ti.xcom_push(key=CONFIG_SNAPSHOT_KEY, value=take_snapshot(pinned))
        self.__dict__["loaded"] = pinned.loaded
        self.__dict__["_mlops_pinned_run"] = run
        self.log.info("%s", pinned.describe())  # type: ignore[attr-defined]
        return pinned.loaded

    def _config_tasks_upstream(self) -> list[str]:
        """The upstream tasks that run on this task's config, roots first."""
        operator: Any = self
        dag = operator.dag
        same: list[Any] = []
        for task_id in operator.get_flat_relative_ids(upstream=True):
            task = dag.get_task(task_id)
            if isinstance(task, MlopsConfigMixin) and (task.config_path, task.config_root) == (
                self.config_path, self.config_root
            ):
                same.append(task)
        # An ancestor has fewer ancestors than its descendants: this order puts roots first.
        same.sort(key=lambda t: (len(t.get_flat_relative_ids(upstream=True)), t.task_id))
        return [t.task_id for t in same]

    def _pinned_by_the_run(self, ti: Any) -> PinnedConfig | None:
        """The run's pinned config from the XCom of an upstream task (or this one, resuming); None when first."""
        from airflow_provider_mlops.config.snapshot import restore_snapshot

        upstream = self._config_tasks_upstream()
        fix = (f"clear the run {ti.run_id} of {ti.dag_id} from its first task ({(upstream or [ti.task_id])[0]}) "
               "with its downstream tasks, so that the whole run starts again on one config")
        for task_id in [*upstream, ti.task_id]:
            value = ti.xcom_pull(task_ids=task_id, key=CONFIG_SNAPSHOT_KEY)
            if value is not None:
                source = f"XCom '{CONFIG_SNAPSHOT_KEY}' of task {task_id} in run {ti.run_id} of {ti.dag_id}"
                return restore_snapshot(value, source=source, fix=fix)
        if not upstream:
            return None
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=upstream, run_ids=[ti.run_id]).get(ti.run_id, {})
        ran = [task_id for task_id in upstream if str(states.get(task_id)) in _RAN_STATES]
        if ran:
            raise ConfigError(
                f"task {ti.task_id} of run {ti.run_id} of {ti.dag_id} found no snapshot of the config the run started "
                f"with (XCom '{CONFIG_SNAPSHOT_KEY}'), although its upstream task(s) {', '.join(ran)} already ran "
                "with it; the file is not read again, because it may have changed since",
                path=self.config_path, fix=fix,
            )
        return None


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
            state = self._wait(state.name, state, secrets=self._secret_environment(spec))
        return self._complete(context, state)

    @staticmethod
    def _secret_environment(spec: JobSpec) -> list[str]:
        """The values of the job's environment that Airflow's masker would hide by their name (``*_TOKEN``, ...)."""
        from airflow.sdk._shared.secrets_masker import should_hide_value_for_key

        return [value for key, value in spec.environment.items() if value and should_hide_value_for_key(key)]

    def _wait(self, name: str, state: JobState, secrets: Sequence[str] = ()) -> JobState:
        """Poll in the worker until the job ends, copying its new output into the task log at each poll."""
        from airflow_provider_mlops.triggers.job import JobLogStream

        output = JobLogStream(self.backend, name, secrets=secrets, log_uri=state.log_uri)
        output.pump(self.log)
        last = state.status
        while not state.terminal:
            time.sleep(self._poll_interval)
            state = self.backend.poll(name)
            if state.status != last:
                self.log.info("Job %s: %s -> %s", name, last, state.status)
                last = state.status
            output.log_uri = state.log_uri
            output.pump(self.log)
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
            from airflow_provider_mlops.triggers.job import JobLogStream

            tail = JobLogStream(self.backend, state.name).failure_tail()
            output = f"\nits last {len(tail)} lines of output:\n" + "\n".join(tail) if tail else ""
            raise BackendError(
                f"{self.step} job {state.name} failed: {state.failure_reason or 'no reason given'}; log: {state.log_uri}{output}"
            )
        self.log.info("%s job %s completed; metrics: %s", self.step, state.name, state.metrics)
        return self.finish(context, state)

    def on_kill(self) -> None:
        if self.job_name:
            self.log.info("Stopping job %s", self.job_name)
            self.backend.stop(self.job_name)
