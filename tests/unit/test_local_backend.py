"""The local compute backend: the SageMaker container layout, re-attach on retry, every terminal state."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from airflow_provider_mlops.backends.base import COMPLETED, FAILED, IN_PROGRESS, STOPPED, JobSpec
from airflow_provider_mlops.backends.local import LocalComputeBackend
from airflow_provider_mlops.exceptions import BackendError, MissingFileError


def _spec(ws: Path, name: str = "job-1", **hps: object) -> JobSpec:
    return JobSpec(
        name=name,
        kind="training",
        entrypoint="train.py",
        source_dir=str(ws / "code"),
        hyperparameters={"lr": 0.5, **hps},
        channels={"train": str(ws / "data")},
        metric_definitions=[{"name": "loss", "regex": r"loss=([0-9.]+)"}],
        environment={"COUNTER": str(ws / "counter.txt")},
    )


def _wait(backend: LocalComputeBackend, name: str, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = backend.poll(name)
        if state.terminal:
            return state
        time.sleep(0.1)
    raise AssertionError(f"{name} did not finish in {timeout}s")


def test_job_runs_with_the_container_contract(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    backend.submit(_spec(workspace))
    state = _wait(backend, "job-1")
    assert state.status == COMPLETED
    assert state.metrics == {"loss": 1.0, "rows": 3.0}
    assert Path(state.model_uri, "model.txt").read_text() == "3"
    run_dir = backend.run_dir("job-1")
    assert json.loads((run_dir / "input/config/hyperparameters.json").read_text()) == {"lr": "0.5"}
    assert "['--lr', '0.5']" in Path(state.log_uri).read_text()  # script-mode arguments too


def test_resubmitting_reattaches_instead_of_starting_a_second_job(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    backend.submit(_spec(workspace, sleep=1))
    second = backend.submit(_spec(workspace, sleep=1))  # a retried task
    assert second.status in (IN_PROGRESS, COMPLETED)
    assert _wait(backend, "job-1").status == COMPLETED
    assert backend.submit(_spec(workspace, sleep=1)).status == COMPLETED  # a re-run after completion
    assert (workspace / "counter.txt").read_text().count("started") == 1


def test_a_different_spec_under_the_same_name_is_refused(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    backend.submit(_spec(workspace))
    with pytest.raises(BackendError, match="different spec"):
        backend.submit(_spec(workspace, lr=0.1))


def test_a_failed_job_reports_its_failure_reason(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    backend.submit(_spec(workspace, fail=1))
    state = _wait(backend, "job-1")
    assert state.status == FAILED and state.failure_reason == "boom: the data is bad"


def test_stop_ends_the_process_and_the_job_reads_stopped(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    backend.submit(_spec(workspace, sleep=60))
    pid = json.loads((backend.run_dir("job-1") / "job.json").read_text())["pid"]
    backend.stop("job-1")
    assert backend.poll("job-1").status == STOPPED
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            os.waitpid(pid, os.WNOHANG)
        except (ProcessLookupError, ChildProcessError):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the job's process is still running after stop()")


def test_a_job_whose_process_died_is_failed_not_waited_on_forever(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    backend.submit(_spec(workspace, sleep=60))
    pid = json.loads((backend.run_dir("job-1") / "job.json").read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)
    state = _wait(backend, "job-1", timeout=10)
    assert state.status == FAILED and "died" in (state.failure_reason or "")


def test_missing_channel_folder_is_a_clear_error_no_retry_can_fix(workspace: Path) -> None:
    spec = _spec(workspace)
    broken = JobSpec(**{**spec.to_dict(), "channels": {"train": str(workspace / "nope")}})
    with pytest.raises(MissingFileError, match="channel 'train' folder .* does not exist") as raised:
        LocalComputeBackend(workspace / "home").submit(broken)
    assert not raised.value.retryable
