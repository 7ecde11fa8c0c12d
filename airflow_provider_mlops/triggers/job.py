"""The trigger that waits for a compute job on any backend, holding no worker slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_mlops.backends.base import COMPLETED, STOPPED


class JobCompletionTrigger(BaseTrigger):
    """
    Poll a compute job until it reaches a terminal state.

    :param backend: the backend's name in ``COMPUTE_BACKENDS``.
    :param backend_kwargs: primitive keyword arguments that rebuild the backend.
    :param job_name: the job to wait for.
    :param poll_interval: seconds between polls.
    :param max_consecutive_errors: polls that may fail in a row (a network blip) before the
        trigger gives up with an ``error`` event.

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
    ) -> None:
        super().__init__()
        self.backend = backend
        self.backend_kwargs = backend_kwargs
        self.job_name = job_name
        self.poll_interval = poll_interval
        self.max_consecutive_errors = max_consecutive_errors

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "backend": self.backend,
                "backend_kwargs": self.backend_kwargs,
                "job_name": self.job_name,
                "poll_interval": self.poll_interval,
                "max_consecutive_errors": self.max_consecutive_errors,
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
            if state.terminal:
                status = {COMPLETED: "success", STOPPED: "stopped"}.get(state.status, "failed")
                yield TriggerEvent({"status": status, "state": state.to_dict()})
                return
            await asyncio.sleep(self.poll_interval)
