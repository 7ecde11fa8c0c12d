"""
The trigger that waits for a compute job on any backend, holding no worker slot, and
:class:`JobLogStream`, which copies the job's output into the task log (from the worker or the
trigger).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_mlops.backends.base import COMPLETED, STOPPED, JobLogSource, LogBatch

#: The most lines of one job's output copied into the log of one task try; the rest stays in the job's own log.
LOG_LINES_PER_TRY = 10_000
#: How many last lines of a failed job's output its failure message carries, and in how many bytes.
FAILURE_TAIL_LINES = 20
FAILURE_TAIL_BYTES = 4096


def redact_output(text: str, secrets: Iterable[str] = ()) -> str:
    """Job output as the notifications show errors: known secrets and Airflow's masked values as ``***``."""
    from airflow_provider_mlops.notifications.events import _mask
    from airflow_provider_mlops.notifications.send import Redactor

    return _mask(Redactor(secrets)(text))


class JobLogStream:
    """
    Copies a job's new output into a task log at each poll: bounded per poll (the backend's
    ``logs_since`` limits, with a ``… N lines skipped`` marker) and per task try
    (:data:`LOG_LINES_PER_TRY`), secrets redacted. Reading the output never fails the task: a
    read error is logged as a warning and the next poll tries again.

    :param backend: the job's backend; one without ``logs_since`` gets one line saying so.
    :param job_name: the job (attempt) whose output to copy.
    :param cursor: where the previous reader stopped (``None``: the job's start).
    :param copied: lines already copied in this task try.
    :param secrets: values to redact besides Airflow's masked ones (the job's secret-looking environment).
    :param log_uri: where the whole output is, for the messages.
    """

    def __init__(self, backend: Any, job_name: str, *, cursor: str | None = None, copied: int = 0,
                 secrets: Iterable[str] = (), log_uri: str | None = None) -> None:
        self.backend = backend
        self.job_name = job_name
        self.cursor = cursor
        self.copied = copied
        self.secrets = [s for s in secrets if s]
        self.log_uri = log_uri
        self._said_unsupported = False

    @property
    def supported(self) -> bool:
        return isinstance(self.backend, JobLogSource)

    @property
    def full(self) -> bool:
        return self.copied >= LOG_LINES_PER_TRY

    def fetch(self) -> LogBatch | Exception | None:
        """Read the new output (blocking; a trigger runs it in a thread). ``None``: nothing to read."""
        if not self.supported or self.full:
            return None
        try:
            return self.backend.logs_since(self.job_name, self.cursor)  # type: ignore[no-any-return]
        except Exception as exc:
            return exc

    def emit(self, fetched: LogBatch | Exception | None, log: logging.Logger | Any) -> None:
        """Write what :meth:`fetch` read into ``log`` and move the cursor past it."""
        where = f"; the whole output: {self.log_uri}" if self.log_uri else ""
        if not self.supported:
            if not self._said_unsupported:
                name = getattr(self.backend, "name", type(self.backend).__name__)
                log.info("Backend %s does not stream job output into the task log%s", name, where)
                self._said_unsupported = True
            return
        if isinstance(fetched, Exception):
            log.warning("Could not read the output of job %s (trying again at the next poll): %s",
                        self.job_name, redact_output(f"{type(fetched).__name__}: {fetched}", self.secrets)[:500])
            return
        if fetched is None:
            return
        self.cursor = fetched.cursor
        skipped = fetched.skipped
        lines = fetched.lines
        room = LOG_LINES_PER_TRY - self.copied
        if len(lines) > room:
            skipped, lines = (skipped + len(lines) - room if skipped >= 0 else -1), lines[len(lines) - room:]
        if skipped < 0:  # the backend left some out without counting them
            log.info("[%s] … earlier lines skipped", self.job_name)
        elif skipped:
            log.info("[%s] … %d lines skipped", self.job_name, skipped)
        for line in lines:
            log.info("[%s] %s", self.job_name, redact_output(line, self.secrets))
        self.copied += len(lines)
        if self.full:
            log.info("Job %s: %d lines of output copied, the most for one task try; the rest is not copied%s",
                     self.job_name, LOG_LINES_PER_TRY, where)

    def pump(self, log: logging.Logger | Any) -> None:
        """:meth:`fetch` then :meth:`emit`, for a worker's poll loop."""
        self.emit(self.fetch(), log)

    def failure_tail(self) -> list[str]:
        """The failed job's last lines of output, redacted; empty when they cannot be read."""
        if not self.supported:
            return []
        try:
            batch = self.backend.logs_since(self.job_name, None, FAILURE_TAIL_LINES, FAILURE_TAIL_BYTES)
        except Exception:
            return []
        return [redact_output(line, self.secrets) for line in batch.lines]


class JobCompletionTrigger(BaseTrigger):
    """
    Poll a compute job until it reaches a terminal state.

    :param backend: the backend's name in ``COMPUTE_BACKENDS``.
    :param backend_kwargs: primitive keyword arguments that rebuild the backend.
    :param job_name: the job to wait for.
    :param poll_interval: seconds between polls.
    :param max_consecutive_errors: polls that may fail in a row (a network blip) before the
        trigger gives up with an ``error`` event.
    :param log_cursor: where copying the job's output into the task log continues (see
        :class:`JobLogStream`); kept current, so a trigger rebuilt from :meth:`serialize`
        continues where this one stopped.
    :param log_lines_copied: lines of output already copied in this task try.

    At each poll the job's new output lines go into the trigger's log (the task's
    ``attempt=N.log.trigger.M.log``), and the rest once the job has ended.

    Events: ``{"status": "success" | "failed" | "stopped", "state": JobState dict}`` or
    ``{"status": "error", "message": ...}``.
    """

    def __init__(
        self,
        backend: str,
        backend_kwargs: dict[str, Any],
        job_name: str,
        poll_interval: float = 10.0,
        max_consecutive_errors: int = 5,
        log_cursor: str | None = None,
        log_lines_copied: int = 0,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.backend_kwargs = backend_kwargs
        self.job_name = job_name
        self.poll_interval = poll_interval
        self.max_consecutive_errors = max_consecutive_errors
        self.log_cursor = log_cursor
        self.log_lines_copied = log_lines_copied

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "backend": self.backend,
                "backend_kwargs": self.backend_kwargs,
                "job_name": self.job_name,
                "poll_interval": self.poll_interval,
                "max_consecutive_errors": self.max_consecutive_errors,
                "log_cursor": self.log_cursor,
                "log_lines_copied": self.log_lines_copied,
            },
        )

    async def on_kill(self) -> None:
        """
        Stop the job when a user kills the deferred task (mark failed, clear, mark success).

        Airflow calls this only for a user's action, never on a triggerer restart or a timeout,
        so a rolling deploy of the triggerer leaves jobs running.
        """
        from airflow_provider_mlops.backends import get_compute_backend

        backend = get_compute_backend(self.backend, **self.backend_kwargs)
        self.log.info("Task killed while deferred: stopping job %s", self.job_name)
        await asyncio.wait_for(asyncio.to_thread(backend.stop, self.job_name), timeout=60)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_mlops.backends import get_compute_backend

        backend = get_compute_backend(self.backend, **self.backend_kwargs)
        output = JobLogStream(backend, self.job_name, cursor=self.log_cursor, copied=self.log_lines_copied)
        errors = 0
        last_status = None
        while True:
            try:
                state = await asyncio.to_thread(backend.poll, self.job_name)
                errors = 0
            except Exception as exc:
                errors += 1
                if errors >= self.max_consecutive_errors:
                    yield TriggerEvent({"status": "error", "message": f"polling {self.job_name} failed {errors} times: {exc}"})
                    return
                await asyncio.sleep(self.poll_interval)
                continue
            # The backend's own finer status (SageMaker's SecondaryStatus) shows progress in the task log.
            progress = " / ".join(str(s) for s in (state.status, state.details.get("secondary_status")) if s)
            if progress != last_status:
                self.log.info("Job %s is %s; logs: %s", self.job_name, progress, state.log_uri)
                last_status = progress
            output.log_uri = state.log_uri
            output.emit(await asyncio.to_thread(output.fetch), self.log)
            self.log_cursor, self.log_lines_copied = output.cursor, output.copied
            if state.terminal:
                status = {COMPLETED: "success", STOPPED: "stopped"}.get(state.status, "failed")
                yield TriggerEvent({"status": status, "state": state.to_dict()})
                return
            await asyncio.sleep(self.poll_interval)
