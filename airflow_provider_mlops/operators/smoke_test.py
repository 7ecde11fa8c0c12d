"""The deploy DAG's smoke test: one request to the new version, and a rollback when it fails."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_mlops import runtime
from airflow_provider_mlops.exceptions import DeploymentError, MissingFileError, RolledBackError
from airflow_provider_mlops.operators.base import MlopsBaseOperator
from airflow_provider_mlops.operators.deploy import (
    deploy_version,
    finish_endpoint_wait,
    serving_for,
    settled_or_defer,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The audit note written before a rollback starts, so a later try resumes it instead of re-testing.
SMOKE_TEST_FAILED = "smoke_test_failed"


class MlopsSmokeTestOperator(MlopsBaseOperator):
    """
    Send the config's smoke-test request to the endpoint and check the answer.

    If the answer is not a 200, the previous version (when there is one) is put back on the
    endpoint and the task fails, saying so. On SageMaker that rollback is an UpdateEndpoint
    (``start_rollback``) whose wait defers to
    :class:`~airflow_provider_mlops.triggers.endpoint.EndpointDeployTrigger`, holding no worker
    slot; ``execute_complete`` checks the endpoint serves the previous version's config, records
    the rollback and fails the task. The local backend swaps back in the worker (seconds).

    Retry-safe: the decision is recorded (a ``smoke_test_failed`` audit note) before the rollback
    starts, so a later try of this task in the same run resumes that rollback (re-attaching to
    its update, never starting a second one) or repeats its recorded failure, instead of testing
    an endpoint that may already serve the previous version.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :return: ``{"status", "response"}`` with the response truncated to 2 KB.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        deployed = context["ti"].xcom_pull(task_ids="deploy")
        earlier = self._earlier_rollback(context, deployed)
        if earlier and earlier["kind"] == "rolled_back":
            self.log.warning("An earlier try of this task rolled %s back to %s: failing again, not re-testing",
                             deployed["endpoint"], earlier["restored_version"])
            raise RolledBackError(f"{earlier['reason']}; rolled back to {earlier['restored_version']}")
        if earlier:
            self.log.warning("An earlier try of this task began rolling %s back to %s: resuming that rollback",
                             deployed["endpoint"], earlier["restoring_version"])
            return self._roll_back(context, deployed, earlier["reason"])
        smoke = self.loaded.config.deployment.smoke_test
        payload = smoke.payload or ""
        if smoke.payload_file:
            path = Path(runtime.inside_model_folder(self.loaded, smoke.payload_file, "deployment.smoke_test.payload_file"))
            if not path.is_file():
                raise MissingFileError(f"{self.loaded.path}: deployment.smoke_test.payload_file {path} does not exist")
            payload = path.read_text()
        status, _, body = serving_for(self).invoke(deployed, payload.encode(), smoke.content_type)
        if status != 200:
            reason = f"smoke test of {deployed['endpoint']} {deployed['version']} got HTTP {status}: {body[:300]!r}"
            previous = deployed.get("previous_version")
            if not previous or deployed.get("unchanged"):
                raise DeploymentError(reason)
            self.registry.record_event(self.group, SMOKE_TEST_FAILED, {
                "version": deployed["version"], "endpoint": deployed["endpoint"], "by": "smoke_test",
                "restoring_version": previous, "reason": reason, "run_id": context["ti"].run_id,
            })
            return self._roll_back(context, deployed, reason)
        text = body.decode(errors="replace")[:2048]
        self.log.info("Smoke test passed: %s", text)
        return {"status": status, "response": text}

    def _earlier_rollback(self, context: Context, deployed: dict[str, Any]) -> dict[str, Any] | None:
        """The newest rollback note or event an earlier try of this task recorded for this deploy (first tries skip the read)."""
        ti = context["ti"]
        if int(getattr(ti, "try_number", None) or 1) <= 1 or not deployed.get("previous_version") or deployed.get("unchanged"):
            return None
        mine = [e for e in self.registry.audit_log(self.group)
                if e.get("kind") in (SMOKE_TEST_FAILED, "rolled_back") and e.get("run_id") == ti.run_id
                and e.get("version") == deployed["version"] and e.get("endpoint") == deployed["endpoint"]]
        return next((e for e in reversed(mine) if e["kind"] == "rolled_back"), mine[-1] if mine else None)

    def _roll_back(self, context: Context, deployed: dict[str, Any], reason: str) -> dict[str, Any]:
        previous = self.registry.get(self.group, deployed["previous_version"])
        serving = serving_for(self)
        start_rollback = getattr(serving, "start_rollback", None)
        if start_rollback is None:  # a quick in-process swap (local): in the worker
            deploy_version(self, previous)
            self._rolled_back(context, deployed["endpoint"], deployed["version"], previous.semver, reason)
        started = {**start_rollback(deployed, previous, self.loaded),
                   "rollback": {"failed_version": deployed["version"], "reason": reason}}
        return self.execute_complete(context, settled_or_defer(self, serving, started))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the rollback's endpoint settled: verify it serves the previous config, record, and fail."""
        rollback = (event.get("deploy") or {}).get("rollback")
        if not rollback:
            raise DeploymentError(f"unexpected trigger event for {self.task_id}: {event!r}")
        restored = finish_endpoint_wait(self, event, "rollback")
        self._rolled_back(context, restored["endpoint"], rollback["failed_version"], restored["version"], rollback["reason"])

    def _rolled_back(self, context: Context, endpoint: str, failed: str, restored: str, reason: str) -> NoReturn:
        from airflow_provider_mlops.notifications import events

        self.registry.record_event(self.group, "rolled_back", {
            "version": failed, "endpoint": endpoint, "by": "smoke_test",
            "restored_version": restored, "reason": reason, "run_id": context["ti"].run_id,
        })
        events.rolled_back(self.loaded, context, endpoint=endpoint, failed_version=failed,
                           restored_version=restored, reason=reason, log=self.log)
        raise RolledBackError(f"{reason}; rolled back to {restored}")
