"""The trigger that waits for an endpoint create, update or rollback to settle, holding no worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class EndpointDeployTrigger(BaseTrigger):
    """
    Poll an endpoint (DescribeEndpoint) until its create or blue/green update settles.

    The deploy task waits here for its deploy, and the smoke-test task for its rollback (the
    previous version redeployed after a failed smoke test: ``deploy`` then carries
    ``"rollback": {"failed_version", "reason"}``, which comes back in the event).

    While it waits it logs each status change (Creating, Updating, RollingBack, ...) and, when
    the deployment names auto-rollback alarms, each alarm that goes into ALARM (SageMaker then
    rolls the update back). The verification itself (InService on the new config, or the
    failure message) is the serving backend's, in the operator's ``execute_complete``.

    :param serving: the serving backend's name in ``SERVING_BACKENDS``.
    :param serving_kwargs: primitive keyword arguments that rebuild the backend.
    :param deploy: what the serving backend's ``start_deploy`` returned (``endpoint``,
        ``endpoint_config``, ...), plus ``rollback`` for a rollback; every event carries it
        back, so the operator resumes from the event alone.
    :param alarms: the deployment's auto-rollback alarm names.
    :param deadline: the Unix time after which the trigger stops with a ``timeout`` event (an
        absolute time, so a triggerer restart does not extend the wait).
    :param poll_interval: seconds between polls.
    :param max_consecutive_errors: polls that may fail in a row (a network blip) before the
        trigger gives up with an ``error`` event.

    Events, each with ``"deploy"``: ``{"status": "settled" | "timeout", "progress": {...},
    "alarms_in_alarm": [...]}`` (``progress`` as :meth:`SageMakerServing.endpoint_progress`
    returns it), ``{"status": "gone"}`` when the endpoint was deleted meanwhile, or
    ``{"status": "error", "message": ...}``.
    """

    def __init__(
        self,
        serving: str,
        serving_kwargs: dict[str, Any],
        deploy: dict[str, Any],
        alarms: list[str],
        deadline: float,
        poll_interval: float = 30.0,
        max_consecutive_errors: int = 5,
    ) -> None:
        super().__init__()
        self.serving = serving
        self.serving_kwargs = serving_kwargs
        self.deploy = deploy
        self.endpoint = str(deploy["endpoint"])
        self.endpoint_config = str(deploy["endpoint_config"])
        self.what = "Rollback" if deploy.get("rollback") else "Deploy"
        self.alarms = list(alarms)
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.max_consecutive_errors = max_consecutive_errors

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "serving": self.serving,
                "serving_kwargs": self.serving_kwargs,
                "deploy": self.deploy,
                "alarms": self.alarms,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "max_consecutive_errors": self.max_consecutive_errors,
            },
        )

    def _backend(self) -> Any:
        from airflow_provider_mlops.serving import get_serving

        return get_serving(self.serving, **self.serving_kwargs)

    async def on_kill(self) -> None:
        """
        Leave the endpoint as it is when a user kills the deferred deploy or rollback; only log it.

        SageMaker has no call that cancels a CreateEndpoint or an UpdateEndpoint in flight: an
        update finishes or rolls back by itself (its rollback alarms still watch it) and the
        previous config serves until then. Deleting the endpoint would take a serving model
        down, so that stays a person's decision (``aws sagemaker delete-endpoint``).
        """
        self.log.warning("%s of %s to endpoint %s killed while deferred: SageMaker cannot cancel it, so it "
                         "continues (an update still rolls back on its alarms)", self.what, self.endpoint_config,
                         self.endpoint)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        backend = self._backend()
        errors = 0
        last_status = None
        alarming: list[str] = []
        while True:
            try:
                progress = await asyncio.to_thread(backend.endpoint_progress, self.endpoint)
                if progress is not None and self.alarms:
                    alarming = await self._alarms(backend, alarming)
                errors = 0
            except Exception as exc:
                errors += 1
                if errors >= self.max_consecutive_errors:
                    yield self._event("error", message=f"polling endpoint {self.endpoint} failed {errors} times: {exc}")
                    return
                await asyncio.sleep(self.poll_interval)
                continue
            if progress is None:
                yield self._event("gone")
                return
            if progress["status"] != last_status:
                self.log.info("Endpoint %s: %s (config %s; %s of %s)", self.endpoint, progress["status"],
                              progress["endpoint_config"], self.what.lower(), self.endpoint_config)
                last_status = progress["status"]
            if progress["settled"]:
                yield self._event("settled", progress=progress, alarms_in_alarm=alarming)
                return
            if time.time() > self.deadline:
                yield self._event("timeout", progress=progress, alarms_in_alarm=alarming)
                return
            await asyncio.sleep(self.poll_interval)

    def _event(self, status: str, **fields: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, **fields, "deploy": self.deploy})

    async def _alarms(self, backend: Any, before: list[str]) -> list[str]:
        """The rollback alarms in ALARM now; a failed check (no cloudwatch:DescribeAlarms) only warns."""
        try:
            now: list[str] = await asyncio.to_thread(backend.alarms_in_alarm, self.alarms)
        except Exception as exc:
            self.log.warning("Could not read the rollback alarms %s of endpoint %s: %s", self.alarms, self.endpoint, exc)
            return before
        for alarm in sorted(set(now) - set(before)):
            self.log.warning("Rollback alarm %s of endpoint %s is in ALARM: SageMaker rolls the update back", alarm, self.endpoint)
        return now
