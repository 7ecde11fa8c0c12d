"""
Job output in the task log, local backend: streamed while the job runs (worker and trigger),
bounded, redacted, resumed without repeats, and the last lines of a failed job in its error.

Each job is a real subprocess under the local backend; it prints a line, then waits for a
"release" file the test creates only after it has seen that line in the task log while the job
was still running.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_mlops.backends.base import IN_PROGRESS, JobSpec, JobState
from airflow_provider_mlops.backends.local import LocalComputeBackend
from airflow_provider_mlops.exceptions import BackendError
from airflow_provider_mlops.operators.base import MlopsJobOperator
from airflow_provider_mlops.triggers.job import LOG_LINES_PER_TRY, JobCompletionTrigger, JobLogStream

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "examples" / "breast-cancer" / "mlops.yaml")
RUN_ID = "manual__2026-01-01T00:00:00+00:00"
SECRET = "tok-9f8e7d6c5b4a"

STEPPED = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    print("step-1 token=" + os.environ["API_TOKEN"], flush=True)
    release = Path(os.environ["RELEASE"])
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    print("step-2", flush=True)
    """
)

FAILING = textwrap.dedent(
    """
    for i in range(1, 31):
        print(f"line-{i:02d}", flush=True)
    raise ValueError("marker-error: column 'x' is missing")
    """
)

CHATTY = "import sys\nfor i in range(500):\n    print(f'row-{i:03d}')\n"


class ScriptJobOperator(MlopsJobOperator):
    """A job operator whose job is a script of the test's (the config is the example's)."""

    def __init__(self, *, code: Path, environment: dict[str, str], **kwargs: Any) -> None:
        super().__init__(task_id="train", config_path=CONFIG, **kwargs)
        self.code = code
        self.environment = environment

    def build_spec(self, context: Any, name: str) -> JobSpec:
        return JobSpec(name=name, kind="processing", entrypoint="job.py", source_dir=str(self.code),
                       environment=self.environment)

    def finish(self, context: Any, state: JobState) -> dict[str, Any]:
        return {"status": state.status}


def _context() -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="mlops__demo__logs__train", run_id=RUN_ID, task_id="train", xcom_push=lambda **_: None)
    return {"ti": ti, "dag_run": SimpleNamespace(conf={})}


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalComputeBackend]:
    backend = LocalComputeBackend(tmp_path / "home")
    yield backend
    # Stop every job the test started (by its recorded process group), also when it failed.
    if backend.jobs_dir.is_dir():
        for run_dir in backend.jobs_dir.iterdir():
            backend.stop(run_dir.name)


def _code(tmp_path: Path, script: str) -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "job.py").write_text(script)
    return code


_LOGGERS = itertools.count()


class TaskLog(logging.Handler):
    """What reaches a task's (or trigger's) log: the operator's or trigger's own logger, recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.logger = logging.getLogger(f"test_job_logs.task{next(_LOGGERS)}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _messages(log: TaskLog) -> list[str]:
    return list(log.messages)


def _release_when_seen(logs: TaskLog, backend: LocalComputeBackend, release: Path,
                       seen: dict[str, Any], timeout: float = 60) -> None:
    """Wait for the job's first line in the task log; record whether the job was still running then; release it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hit = next((m for m in _messages(logs) if "step-1" in m), None)
        if hit is not None:
            name = hit.split("]", 1)[0].lstrip("[")
            seen["line"], seen["status"] = hit, backend.poll(name).status
            break
        time.sleep(0.02)
    release.write_text("go")


def test_the_worker_copies_job_output_into_the_task_log_while_the_job_runs(tmp_path: Path, backend: LocalComputeBackend) -> None:
    release = tmp_path / "release"
    operator = ScriptJobOperator(code=_code(tmp_path, STEPPED), environment={"API_TOKEN": SECRET, "RELEASE": str(release)},
                                 deferrable=False, poll_interval=0.05)
    operator.backend = backend
    logs = TaskLog()
    operator._cached_logger = logs.logger
    seen: dict[str, Any] = {}
    watcher = threading.Thread(target=_release_when_seen, args=(logs, backend, release, seen), daemon=True)
    watcher.start()
    try:
        assert operator.execute(_context()) == {"status": "Completed"}
    finally:
        release.write_text("go")
        watcher.join(timeout=70)
    messages = _messages(logs)
    assert seen["status"] == IN_PROGRESS, "the first line reached the task log only after the job ended"
    assert any(m.endswith("step-2") for m in messages)
    # The job's declared secret (API_TOKEN: a name Airflow's masker hides) never reaches the log.
    assert "token=***" in seen["line"] and not any(SECRET in m for m in messages)


async def _run_until_event(trigger: JobCompletionTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def test_the_trigger_copies_job_output_as_trigger_log_lines_and_a_rebuilt_trigger_continues(
    tmp_path: Path, backend: LocalComputeBackend,
) -> None:
    release = tmp_path / "release"
    spec = JobSpec(name="job-trigger", kind="processing", entrypoint="job.py", source_dir=str(_code(tmp_path, STEPPED)),
                   environment={"API_TOKEN": "not-secret-here", "RELEASE": str(release)})
    backend.submit(spec)
    trigger = JobCompletionTrigger("local", backend.serialize(), "job-trigger", poll_interval=0.05)
    first = TaskLog()
    trigger._log = first.logger

    async def first_part() -> None:
        task = asyncio.ensure_future(_run_until_event(trigger))
        deadline = time.monotonic() + 60
        while not any("step-1" in m for m in _messages(first)) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()  # the triggerer stops (a restart): the task is deferred still
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(first_part(), timeout=90))
    assert "[job-trigger] step-1 token=not-secret-here" in _messages(first)
    assert backend.poll("job-trigger").status == IN_PROGRESS

    path, kwargs = trigger.serialize()
    assert kwargs["log_cursor"] and kwargs["log_lines_copied"] == 1
    module, _, cls = path.rpartition(".")
    resumed = getattr(importlib.import_module(module), cls)(**kwargs)
    second = TaskLog()
    resumed._log = second.logger
    release.write_text("go")
    event = asyncio.run(asyncio.wait_for(_run_until_event(resumed), timeout=90))
    assert event["status"] == "success"
    job_lines = [m for m in _messages(second) if m.startswith("[job-trigger]")]
    assert job_lines == ["[job-trigger] step-2"], "a resumed trigger repeats or loses lines"


def test_a_failed_jobs_last_lines_are_in_the_failure_message(tmp_path: Path, backend: LocalComputeBackend) -> None:
    operator = ScriptJobOperator(code=_code(tmp_path, FAILING), environment={}, deferrable=False, poll_interval=0.05)
    operator.backend = backend
    logs = TaskLog()
    operator._cached_logger = logs.logger
    with pytest.raises(BackendError) as failed:
        operator.execute(_context())
    message = str(failed.value)
    assert "exited with code 1" in message
    assert "ValueError: marker-error: column 'x' is missing" in message and "line-30" in message
    assert "line-01" not in message, "the failure message carries more than the last lines"
    # The whole output went to the task log as the job ran.
    assert "[train-" not in message and any(m.endswith("line-01") for m in _messages(logs))


def test_execute_complete_after_the_trigger_also_carries_the_last_lines(tmp_path: Path, backend: LocalComputeBackend) -> None:
    spec = JobSpec(name="job-deferred", kind="processing", entrypoint="job.py", source_dir=str(_code(tmp_path, FAILING)))
    backend.submit(spec)
    event = asyncio.run(asyncio.wait_for(_run_until_event(
        JobCompletionTrigger("local", backend.serialize(), "job-deferred", poll_interval=0.05)), timeout=60))
    assert event["status"] == "failed"
    operator = ScriptJobOperator(code=tmp_path / "code", environment={})
    operator.backend = backend
    with pytest.raises(BackendError, match="marker-error"):
        operator.execute_complete(_context(), event)


def test_output_is_bounded_per_poll_with_a_skipped_marker_and_per_try(tmp_path: Path, backend: LocalComputeBackend) -> None:
    spec = JobSpec(name="job-chatty", kind="processing", entrypoint="job.py", source_dir=str(_code(tmp_path, CHATTY)))
    backend.submit(spec)
    deadline = time.monotonic() + 60
    while not backend.poll("job-chatty").terminal and time.monotonic() < deadline:
        time.sleep(0.05)
    batch = backend.logs_since("job-chatty", None, max_lines=200)
    assert (len(batch.lines), batch.skipped, batch.lines[-1]) == (200, 300, "row-499")
    by_bytes = backend.logs_since("job-chatty", None, max_lines=1000, max_bytes=32)
    assert by_bytes.lines == ["row-496", "row-497", "row-498", "row-499"] and by_bytes.skipped == 496
    assert backend.logs_since("job-chatty", batch.cursor).lines == []  # nothing new after the end

    logs = TaskLog()
    JobLogStream(backend, "job-chatty").pump(logs.logger)
    capped = JobLogStream(backend, "job-chatty", copied=LOG_LINES_PER_TRY - 5)
    capped.pump(logs.logger)
    capped.pump(logs.logger)
    messages = _messages(logs)
    assert messages[0] == "[job-chatty] … 300 lines skipped" and messages[200] == "[job-chatty] row-499"
    assert messages[201] == "[job-chatty] … 495 lines skipped"
    assert messages[202:207] == [f"[job-chatty] row-{i}" for i in range(495, 500)]
    assert "the most for one task try" in messages[207] and len(messages) == 208  # the capped stream stops reading


def test_a_half_written_line_waits_for_its_end(tmp_path: Path, backend: LocalComputeBackend) -> None:
    release = tmp_path / "release"
    script = ("import os, sys, time\nfrom pathlib import Path\nsys.stdout.write('whole\\nhal'); sys.stdout.flush()\n"
              "while not Path(os.environ['RELEASE']).exists(): time.sleep(0.02)\nprint('f-done')\n")
    spec = JobSpec(name="job-half", kind="processing", entrypoint="job.py", source_dir=str(_code(tmp_path, script)),
                   environment={"RELEASE": str(release)})
    backend.submit(spec)
    log = backend.run_dir("job-half") / "stdout.log"
    deadline = time.monotonic() + 60
    while b"hal" not in log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.02)
    first = backend.logs_since("job-half", None)
    assert first.lines == ["whole"]
    release.write_text("go")
    while not backend.poll("job-half").terminal and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.logs_since("job-half", first.cursor).lines == ["half-done"]
