"""
Job attempts on the local backend: a retry re-attaches to a running or completed job, starts the
next attempt (<name>-a2, ...) after a failed or stopped one, replaces a half-written folder, and
losing the wrapper ends the whole job. Each case is one that used to be a dead end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from test_local_backend import _spec, _wait

from airflow_provider_mlops.backends.base import COMPLETED, FAILED, IN_PROGRESS, STOPPED
from airflow_provider_mlops.backends.local import LocalComputeBackend, attempt_name


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    return False


def test_a_retry_after_a_failed_job_starts_the_next_attempt(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    backend.submit(_spec(workspace, fail=1))
    assert _wait(backend, "job-1").status == FAILED
    # The cause is fixed (here: the data), and the task's next try runs the job again.
    retried = backend.submit(_spec(workspace, fail=1))
    assert retried.name == attempt_name("job-1", 2) == "job-1-a2"
    assert _wait(backend, "job-1-a2").status == FAILED
    assert (workspace / "counter.txt").read_text().count("started") == 2


def test_a_retry_after_a_stop_starts_the_next_attempt(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    backend.submit(_spec(workspace, sleep=60))
    backend.stop("job-1")
    assert backend.poll("job-1").status == STOPPED
    retried = backend.submit(_spec(workspace, sleep=60))
    assert retried.name == "job-1-a2" and retried.status == IN_PROGRESS
    backend.stop("job-1-a2")


def test_a_running_or_completed_job_is_reattached_never_restarted(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    first = backend.submit(_spec(workspace))
    again = backend.submit(_spec(workspace))
    assert first.name == again.name == "job-1"
    assert _wait(backend, "job-1").status == COMPLETED
    assert backend.submit(_spec(workspace)).name == "job-1"
    assert (workspace / "counter.txt").read_text().count("started") == 1


def test_killing_the_wrapper_ends_the_training_and_the_retry_reruns_it(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    backend.submit(_spec(workspace, sleep=60))
    run_dir = backend.run_dir("job-1")
    wrapper = json.loads((run_dir / "job.json").read_text())["pid"]
    deadline = time.monotonic() + 10
    while "started" not in (workspace / "counter.txt").read_text() if (workspace / "counter.txt").exists() else True:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == wrapper]
    assert children, "the wrapper runs the entrypoint as its child"
    os.kill(wrapper, signal.SIGKILL)  # only the wrapper: the training itself keeps running
    assert _gone(wrapper)
    state = backend.poll("job-1")
    assert state.status == FAILED and "died" in (state.failure_reason or "")
    assert all(_gone(child) for child in children), "the orphaned training process was ended"
    retried = backend.submit(_spec(workspace, sleep=0))
    assert retried.name == "job-1-a2"


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_half_written_folder_is_replaced_by_a_fresh_attempt(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    (backend.jobs_dir / "job-1").mkdir(parents=True)  # a setup that died before writing anything
    state = backend.submit(_spec(workspace))
    assert state.name == "job-1-a2"
    assert _wait(backend, "job-1-a2").status == COMPLETED
    closed = backend.poll("job-1")
    assert closed.status == FAILED and "half-written" in (closed.failure_reason or "")


def test_a_spec_without_a_process_never_reads_in_progress_forever(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    run_dir = backend.jobs_dir / "job-1"
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(json.dumps(_spec(workspace).to_dict()))
    state = backend.poll("job-1")
    assert state.status == FAILED and "setup never finished" in (state.failure_reason or "")


def test_truncated_state_files_are_closed_and_the_next_attempt_runs(workspace: Path) -> None:
    backend = LocalComputeBackend(workspace / "home")
    backend.submit(_spec(workspace))
    assert _wait(backend, "job-1").status == COMPLETED
    (backend.run_dir("job-1") / "status.json").write_text('{"status": "Comp')
    (backend.run_dir("job-1") / "spec.json").write_text('{"name": ')
    state = backend.submit(_spec(workspace))
    assert state.name == "job-1-a2"
    assert "status.json" in (backend.poll("job-1").failure_reason or ""), "the reason names the torn file"
