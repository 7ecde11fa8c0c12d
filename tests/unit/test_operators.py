"""Operators: template fields, deferral, every execute_complete branch, on_kill, the trigger."""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

from airflow_provider_mlops.backends import COMPUTE_BACKENDS
from airflow_provider_mlops.backends.base import COMPLETED, FAILED, IN_PROGRESS, STOPPED, JobState
from airflow_provider_mlops.backends.fake import FakeComputeBackend
from airflow_provider_mlops.exceptions import BackendError, InputError, MissingFileError
from airflow_provider_mlops.factory.render import OPERATORS
from airflow_provider_mlops.operators import MlopsGatePassedOperator, MlopsTrainOperator
from airflow_provider_mlops.operators.base import FAIL_FAST_METHODS, MlopsConfigMixin
from airflow_provider_mlops.triggers.job import JobCompletionTrigger

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "examples" / "breast-cancer" / "mlops.yaml")
RUN_ID = "manual__2026-01-01T00:00:00+00:00"


@pytest.fixture(autouse=True)
def _fake_backend() -> None:
    FakeComputeBackend.reset()
    assert "fake" in COMPUTE_BACKENDS


def _train_operator() -> MlopsTrainOperator:
    operator = MlopsTrainOperator(task_id="train", config_path=CONFIG)
    operator.backend = FakeComputeBackend()  # the cached_property slot: the explicit fake backend
    return operator


def _context() -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="mlops__demo__breast-cancer__train", run_id=RUN_ID, task_id="train")
    return {"ti": ti, "dag_run": SimpleNamespace(conf={"commit": "abcdef1"})}


OURS = sorted(k for k, v in OPERATORS.items() if v.__module__.startswith("airflow_provider_mlops"))


@pytest.mark.parametrize("name", OURS)
def test_template_fields_are_a_sorted_tuple(name: str) -> None:
    fields = OPERATORS[name].template_fields
    assert isinstance(fields, (tuple, list)) and list(fields) == sorted(fields)


def test_a_finished_job_returns_without_deferring() -> None:
    result = _train_operator().execute(_context())
    assert result["metrics"] == {"f1": 0.9} and result["commit"] == "abcdef1"
    json.dumps(result)  # XCom values are small JSON


def test_a_running_job_defers_to_the_trigger_and_a_retry_reattaches() -> None:
    FakeComputeBackend.next_state = {"status": IN_PROGRESS}
    with pytest.raises(TaskDeferred) as deferred:
        _train_operator().execute(_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, JobCompletionTrigger) and deferred.value.method_name == "execute_complete"
    with pytest.raises(TaskDeferred):
        _train_operator().execute(_context())  # the retry
    assert len(FakeComputeBackend.submitted) == 1, "a retry must re-attach, not start a second job"


def _event(status: str, job_status: str, reason: str | None = None) -> dict[str, Any]:
    return {"status": status, "state": JobState(name="j", status=job_status, failure_reason=reason, metrics={"f1": 0.95}).to_dict()}


def test_execute_complete_success() -> None:
    assert _train_operator().execute_complete(_context(), _event("success", COMPLETED))["metrics"] == {"f1": 0.95}


def test_execute_complete_failed_carries_the_reason() -> None:
    with pytest.raises(BackendError, match="failed: OOM"):
        _train_operator().execute_complete(_context(), _event("failed", FAILED, "OOM"))


def test_execute_complete_stopped_is_never_success() -> None:
    with pytest.raises(BackendError, match="was stopped"):
        _train_operator().execute_complete(_context(), _event("stopped", STOPPED, "user"))


def test_execute_complete_error_and_unknown_events() -> None:
    with pytest.raises(BackendError, match="polling failed"):
        _train_operator().execute_complete(_context(), {"status": "error", "message": "polling failed"})
    with pytest.raises(BackendError, match="unexpected trigger event"):
        _train_operator().execute_complete(_context(), {"status": "weird"})


def test_on_kill_stops_the_job() -> None:
    FakeComputeBackend.next_state = {"status": IN_PROGRESS}
    operator = _train_operator()
    with pytest.raises(TaskDeferred):
        operator.execute(_context())
    operator.on_kill()
    assert FakeComputeBackend.jobs[operator.job_name].status == STOPPED


def test_trigger_serialization_round_trip() -> None:
    trigger = JobCompletionTrigger("fake", {}, "job-1", poll_interval=0.01, max_consecutive_errors=2)
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    json.dumps(kwargs)


def _first_event(trigger: JobCompletionTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return asyncio.run(asyncio.wait_for(first(), timeout=10))


@pytest.mark.parametrize(("job_status", "event_status"), [(COMPLETED, "success"), (FAILED, "failed"), (STOPPED, "stopped")])
def test_trigger_events_for_each_terminal_state(job_status: str, event_status: str) -> None:
    FakeComputeBackend.jobs["job-1"] = JobState(name="job-1", status=job_status)
    event = _first_event(JobCompletionTrigger("fake", {}, "job-1", poll_interval=0.01))
    assert event["status"] == event_status and event["state"]["status"] == job_status


def test_trigger_gives_up_after_repeated_poll_errors() -> None:
    event = _first_event(JobCompletionTrigger("fake", {}, "no-such-job", poll_interval=0.01, max_consecutive_errors=3))
    assert event["status"] == "error" and "3 times" in event["message"]


def test_killing_a_deferred_task_stops_its_job() -> None:
    """Airflow 3.3 calls the trigger's on_kill when a user kills a deferred task."""
    FakeComputeBackend.jobs["job-1"] = JobState(name="job-1", status=IN_PROGRESS)
    asyncio.run(JobCompletionTrigger("fake", {}, "job-1").on_kill())
    assert FakeComputeBackend.jobs["job-1"].status == STOPPED


FAIL_FAST = sorted(k for k in OURS if issubclass(OPERATORS[k], MlopsConfigMixin))


@pytest.mark.parametrize("name", FAIL_FAST)
def test_every_provider_operator_fails_fast(name: str) -> None:
    """Each way Airflow runs an operator's work goes through the one fail-fast wrapper."""
    cls = OPERATORS[name]
    ours = []
    for method in FAIL_FAST_METHODS:
        owner = next((base for base in cls.__mro__ if method in vars(base)), None)
        if owner is not None and issubclass(owner, MlopsConfigMixin):  # written in this provider
            ours.append(method)
            assert getattr(getattr(cls, method), "__mlops_fail_fast__", False), f"{cls.__name__}.{method}"
    assert "execute" in ours or "choose_branch" in ours


def test_a_bad_run_conf_fails_the_task_without_retries_with_the_same_message() -> None:
    context = {**_context(), "dag_run": SimpleNamespace(conf={"hyperparameter": {"C": 1}})}
    with pytest.raises(AirflowFailException) as failed:
        _train_operator().execute(context)
    assert isinstance(failed.value.__cause__, InputError)
    assert str(failed.value) == str(failed.value.__cause__)
    assert "'hyperparameter'" in str(failed.value) and "Allowed keys" in str(failed.value)
    assert FakeComputeBackend.submitted == [], "nothing starts on a conf that can never be valid"


def test_errors_a_retry_may_fix_are_left_to_airflows_retries() -> None:
    with pytest.raises(BackendError) as failed:
        _train_operator().execute_complete(_context(), _event("failed", FAILED, "OOM"))
    assert not isinstance(failed.value, AirflowFailException)


def test_a_missing_config_file_fails_at_once(tmp_path: Path) -> None:
    operator = MlopsTrainOperator(task_id="train", config_path=str(tmp_path / "gone" / "mlops.yaml"))
    with pytest.raises(AirflowFailException, match="does not exist") as failed:
        operator.execute(_context())
    assert isinstance(failed.value.__cause__, MissingFileError)


def _registered(passed: bool) -> dict[str, Any]:
    rows = [{"metric": "f1", "candidate": 0.8123, "passed": passed,
             "checks": [{"rule": ">= 0.9", "passed": passed}, {"rule": "delta >= -0.01", "passed": True}]},
            {"metric": "accuracy", "candidate": 0.95, "passed": True, "checks": [{"rule": ">= 0.8", "passed": True}]}]
    return {"group": "demo--breast-cancer", "semver": "1.0.1", "status": "PendingManualApproval" if passed else "Rejected",
            "gate": {"passed": passed, "rows": rows}}


def test_gate_passed_succeeds_when_the_candidate_passed() -> None:
    ti = SimpleNamespace(xcom_pull=lambda task_ids: _registered(True) if task_ids == "register" else None)
    result = MlopsGatePassedOperator(task_id="gate_passed", config_path=CONFIG).execute({"ti": ti})
    assert result == {"passed": True, "semver": "1.0.1"}


def test_gate_passed_is_skipped_with_the_failed_rules_when_the_gate_failed() -> None:
    ti = SimpleNamespace(xcom_pull=lambda task_ids: _registered(False) if task_ids == "register" else None)
    with pytest.raises(AirflowSkipException) as skipped:
        MlopsGatePassedOperator(task_id="gate_passed", config_path=CONFIG).execute({"ti": ti})
    assert str(skipped.value) == (
        "demo--breast-cancer 1.0.1 failed the evaluation gate: f1 0.8123 (>= 0.9). "
        "It is registered as Rejected and won't be deployed"
    )


def test_every_error_the_hierarchy_marks_unretryable_is_so() -> None:
    """The exceptions module's tree marks with ``*`` the errors no retry can fix: each class must say so."""
    import re

    from airflow_provider_mlops import exceptions

    tree = (exceptions.__doc__ or "").split("``*``")[0]
    marked = set(re.findall(r"(\w+Error)s? \*", tree))
    assert marked, "the hierarchy in the module docstring marks no error"
    for name in sorted(marked):
        assert getattr(exceptions, name).retryable is False, name
    unmarked = set(re.findall(r"(\w+Error)\s+[a-z]", tree)) - marked
    for name in sorted(unmarked):
        assert getattr(exceptions, name).retryable is True, name
