"""
The smoke test's rollback on SageMaker waits in the triggerer, not the worker; a retry resumes it.

Everything runs against moto on 127.0.0.1 through the Airflow connection. Three things moto
cannot do are injected into moto (never into the code under test):

- UpdateEndpoint: the conftest's ``moto_update_endpoint`` handler, held ``Updating`` on the old
  config with the new one in ``PendingDeploymentSummary`` (as SageMaker reports a blue/green
  update in flight) until the test finishes it;
- InvokeEndpoint answers ``ModelError`` (HTTP 424, as SageMaker does when the container answers
  an error) while the endpoint serves a config of a failing version;
- the SNS notification is read back from an SQS queue subscribed to the topic.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from sagemaker_testenv import ACCOUNT, EXAMPLE, REGION, Aws
from test_endpoint_trigger import ALARM, _events
from test_sagemaker_dags import _fast_config, _state
from test_sagemaker_registry import GROUP, register, registry
from test_sagemaker_serving import ENDPOINT, serving

from airflow_provider_mlops.config.loader import load_config
from airflow_provider_mlops.exceptions import DeploymentError
from airflow_provider_mlops.registry.base import APPROVED
from airflow_provider_mlops.serving.sagemaker import SageMakerServing
from airflow_provider_mlops.triggers.endpoint import EndpointDeployTrigger

TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:mlops-rollbacks"
DAG_ID = "mlops__demo__breast-cancer-sagemaker__deploy"


def _semver_of(config_name: str | None) -> str | None:
    """The version in one of our endpoint config names (``<endpoint>-1-0-1-<hash>``)."""
    found = re.search(r"-(\d+)-(\d+)-(\d+)-[0-9a-f]+$", config_name or "")
    return ".".join(found.groups()) if found else None


@dataclass
class Endpoints:
    """moto's endpoints, with UpdateEndpoint held in flight and InvokeEndpoint failing for some versions."""

    update_requests: list[dict[str, Any]]
    failing_versions: set[str] = field(default_factory=set)
    hold: bool = False
    finish_after: float | None = None  # seconds after which a held update finishes by itself
    pending: dict[str, str] = field(default_factory=dict)
    invocations: list[str] = field(default_factory=list)

    @property
    def backend(self) -> Any:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[ACCOUNT][REGION]

    def finish(self, name: str) -> None:
        """The held update completes: the endpoint is InService on its new config."""
        endpoint = self.backend.endpoints[name]
        config = self.pending.pop(name)
        endpoint.production_variants = endpoint._process_production_variants(
            self.backend.describe_endpoint_config(config)["ProductionVariants"])
        endpoint.endpoint_config_name, endpoint.endpoint_status = config, "InService"

    def finish_later(self, name: str, after: float) -> threading.Thread:
        def run() -> None:
            time.sleep(after)
            self.finish(name)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def endpoints(aws: Aws, moto_update_endpoint: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Endpoints:
    from moto.core.exceptions import JsonRESTError
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.models import SageMakerRuntimeBackend

    state = Endpoints(update_requests=moto_update_endpoint["requests"])
    switch_at_once = SageMakerResponse.update_endpoint  # the conftest's handler

    def update_endpoint(response: Any) -> Any:
        endpoint = response.sagemaker_backend.endpoints.get(response._get_param("EndpointName"))
        before = (endpoint.endpoint_config_name, endpoint.production_variants) if endpoint else None
        result = switch_at_once(response)
        if state.hold and before and endpoint.endpoint_config_name != before[0]:
            state.pending[endpoint.endpoint_name] = endpoint.endpoint_config_name
            endpoint.endpoint_config_name, endpoint.production_variants = before
            endpoint.endpoint_status = "Updating"
            if state.finish_after is not None:
                state.finish_later(endpoint.endpoint_name, state.finish_after)
        return result

    describe = SageMakerModelBackend.describe_endpoint

    def describe_endpoint(backend: Any, endpoint_name: str) -> Any:
        described = describe(backend, endpoint_name)
        if endpoint_name in state.pending:
            described["PendingDeploymentSummary"] = {"EndpointConfigName": state.pending[endpoint_name]}
        return described

    class ModelError(JsonRESTError):
        code = 424

    invoke = SageMakerRuntimeBackend.invoke_endpoint

    def invoke_endpoint(runtime: Any, endpoint_name: str | None, unique_repr: bytes) -> Any:
        # moto 5.2.5's server passes no EndpointName here (it is in the URL path): these tests have one endpoint.
        [endpoint] = [state.backend.endpoints[endpoint_name]] if endpoint_name else state.backend.endpoints.values()
        config = endpoint.endpoint_config_name
        state.invocations.append(config)
        if _semver_of(config) in state.failing_versions:
            raise ModelError("ModelError", "Received server error (500) from primary with message "
                             '"prediction failed: expected 30 features, got 2"')
        return invoke(runtime, endpoint_name, unique_repr)

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)
    monkeypatch.setattr(SageMakerModelBackend, "describe_endpoint", describe_endpoint)
    monkeypatch.setattr(SageMakerRuntimeBackend, "invoke_endpoint", invoke_endpoint)
    return state


@dataclass
class Rollout:
    """1.0.0 serving, then 1.0.1 deployed over it (``deployed``: the deploy task's XCom); SNS read from SQS."""

    aws: Aws
    config: Path
    deployed: dict[str, Any]
    queue_url: str

    def notifications(self) -> list[dict[str, Any]]:
        out = self.aws.client("sqs").receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        return [json.loads(m["Body"]) for m in out.get("Messages", [])]

    def endpoint(self) -> dict[str, Any]:
        described: dict[str, Any] = self.aws.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
        return described

    def audit(self, kind: str) -> list[dict[str, Any]]:
        """The audit events of ``kind`` in the registry the operators use (the config's artifacts_uri)."""
        from airflow_provider_mlops import runtime

        return [e for e in runtime.registry_for(load_config(self.config)).audit_log(GROUP) if e["kind"] == kind]


def _config_with_sns(tmp_path: Path) -> Path:
    config = _fast_config(tmp_path)
    config.write_text(config.read_text() + f"\nnotifications:\n  sns: {{topic_arn: {TOPIC}}}\n  events: [rolled_back]\n")
    (tmp_path / "smoke_payload.json").write_bytes((EXAMPLE.parent / "smoke_payload.json").read_bytes())
    return config


def _sns_queue(aws: Aws) -> str:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    sns.create_topic(Name=TOPIC.rsplit(":", 1)[1])
    queue_url = sqs.create_queue(QueueName="rollbacks")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=TOPIC, Protocol="sqs", Endpoint=queue_arn)
    return str(queue_url)


@pytest.fixture
def rollout(aws: Aws, endpoints: Endpoints, tmp_path: Path) -> Rollout:
    loaded = load_config(EXAMPLE)
    reg = registry()
    first = reg.set_approval(GROUP, register(reg, "run-1").semver, APPROVED, by="auto")
    second = reg.set_approval(GROUP, register(reg, "run-2").semver, APPROVED, by="auto")
    serving().deploy(ENDPOINT, first, loaded)
    deployed = serving().deploy(ENDPOINT, second, loaded)
    assert (deployed["version"], deployed["previous_version"], deployed["action"]) == ("1.0.1", "1.0.0", "update")
    endpoints.failing_versions.add("1.0.1")
    endpoints.hold = True
    return Rollout(aws, _config_with_sns(tmp_path), deployed, _sns_queue(aws))


class _Ti:
    dag_id, task_id, run_id = DAG_ID, "smoke_test", "manual__rollback"

    def __init__(self, deployed: dict[str, Any], try_number: int) -> None:
        self.deployed, self.try_number = deployed, try_number

    def xcom_pull(self, task_ids: str) -> Any:
        assert task_ids == "deploy"
        return self.deployed

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _context(deployed: dict[str, Any], try_number: int = 1) -> dict[str, Any]:
    return {"ti": _Ti(deployed, try_number), "dag_run": SimpleNamespace(conf={"requested_by": "pytest"})}


def _smoke_test(config: Path) -> Any:
    from airflow_provider_mlops.operators.smoke_test import MlopsSmokeTestOperator

    return MlopsSmokeTestOperator(task_id="smoke_test", config_path=str(config))


@pytest.fixture
def no_wait_in_the_worker(rollout: Rollout, monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on (the rollout is set up), the in-process poll of the protocol's blocking deploy must not run."""
    def forbidden(self: SageMakerServing, endpoint: str, config_name: str) -> Any:
        raise AssertionError(f"the worker polled endpoint {endpoint} for {config_name} (time.sleep in a task)")

    monkeypatch.setattr(SageMakerServing, "_wait_settled", forbidden)


def _defer(operator: Any, context: dict[str, Any]) -> EndpointDeployTrigger:
    from airflow.sdk.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout.total_seconds() == 3 * 3600 + 600
    trigger = deferred.value.trigger
    assert isinstance(trigger, EndpointDeployTrigger)
    return trigger


EXPECTED = (f"^smoke test of {ENDPOINT} 1.0.1 got HTTP 424: b'.*prediction failed: expected 30 features, got 2.*'"
            "; rolled back to 1.0.0$")


@pytest.mark.usefixtures("no_wait_in_the_worker")
def test_a_failed_smoke_test_defers_the_rollback_then_fails_as_before(rollout: Rollout, endpoints: Endpoints) -> None:
    deployed = rollout.deployed
    operator = _smoke_test(rollout.config)
    trigger = _defer(operator, _context(deployed))

    # The rollback was started (one UpdateEndpoint to a new config of 1.0.0) and left to the triggerer.
    assert len(endpoints.update_requests) == 2
    target = endpoints.update_requests[-1]["EndpointConfigName"]
    assert _semver_of(target) == "1.0.0" and target not in (deployed["endpoint_config"], deployed["previous_endpoint_config"])
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_mlops.triggers.endpoint.EndpointDeployTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert (kwargs["serving"], kwargs["alarms"], kwargs["poll_interval"]) == ("sagemaker", [ALARM], 0.1)
    rollback = kwargs["deploy"]
    assert (rollback["endpoint"], rollback["endpoint_config"], rollback["version"]) == (ENDPOINT, target, "1.0.0")
    assert (rollback["previous_endpoint_config"], rollback["previous_version"]) == (deployed["endpoint_config"], "1.0.1")
    assert rollback["rollback"]["failed_version"] == "1.0.1"
    assert re.match(EXPECTED.replace("; rolled back to 1.0.0$", "$"), rollback["rollback"]["reason"])
    assert (rollout.endpoint()["EndpointStatus"], rollout.endpoint()["EndpointConfigName"]) == ("Updating", deployed["endpoint_config"])
    assert rollout.audit("rolled_back") == [] and rollout.notifications() == []  # recorded only once verified

    # The triggerer waits for the update to finish; the task resumes from its event.
    endpoints.finish_later(ENDPOINT, after=0.3)
    [event] = _events(trigger)
    assert event["status"] == "settled" and event["progress"]["endpoint_config"] == target
    with pytest.raises(AirflowFailException, match=EXPECTED) as raised:  # RolledBackError: no retry can help
        operator.execute_complete(_context(deployed), event)

    endpoint = rollout.endpoint()
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", target)
    [note] = rollout.audit("smoke_test_failed")
    [recorded] = rollout.audit("rolled_back")
    assert str(raised.value) == f"{recorded['reason']}; rolled back to 1.0.0" and recorded["reason"] == note["reason"]
    assert {k: recorded[k] for k in ("version", "endpoint", "by", "restored_version", "run_id")} == {
        "version": "1.0.1", "endpoint": ENDPOINT, "by": "smoke_test", "restored_version": "1.0.0", "run_id": _Ti.run_id}
    [message] = rollout.notifications()
    assert message["MessageAttributes"]["event"]["Value"] == "rolled_back"
    assert "rolled back to 1.0.0" in message["Subject"] and ENDPOINT in message["Message"]
    assert len(endpoints.update_requests) == 2 and endpoints.invocations == [deployed["endpoint_config"]]


@pytest.mark.usefixtures("no_wait_in_the_worker")
def test_a_retry_after_the_rollback_started_reattaches_and_never_updates_again(rollout: Rollout, endpoints: Endpoints) -> None:
    deployed = rollout.deployed
    first = _defer(_smoke_test(rollout.config), _context(deployed))  # try 1 started the rollback, then its worker died
    assert len(endpoints.update_requests) == 2

    # Try 2, while the update is still in flight: it re-attaches to it; no second UpdateEndpoint, no second smoke test.
    retry = _smoke_test(rollout.config)
    second = _defer(retry, _context(deployed, try_number=2))
    assert second.serialize()[1]["deploy"]["endpoint_config"] == first.serialize()[1]["deploy"]["endpoint_config"]
    assert second.serialize()[1]["deploy"]["rollback"] == first.serialize()[1]["deploy"]["rollback"]
    assert len(endpoints.update_requests) == 2 and endpoints.invocations == [deployed["endpoint_config"]]
    endpoints.finish_later(ENDPOINT, after=0.2)
    [event] = _events(second)
    with pytest.raises(AirflowFailException, match=EXPECTED) as raised:
        retry.execute_complete(_context(deployed, try_number=2), event)
    assert len(rollout.audit("rolled_back")) == 1 and len(rollout.notifications()) == 1

    # Try 3, after the rollback was recorded: the endpoint now answers (1.0.0 serves), but the
    # task fails again with the same message; nothing is invoked, updated, recorded or sent again.
    with pytest.raises(AirflowFailException) as again:
        _smoke_test(rollout.config).execute(_context(deployed, try_number=3))
    assert str(again.value) == str(raised.value)
    assert len(endpoints.update_requests) == 2 and len(endpoints.invocations) == 1
    assert len(rollout.audit("rolled_back")) == 1 and rollout.notifications() == []


@pytest.mark.usefixtures("no_wait_in_the_worker")
def test_a_retry_after_the_rollback_settled_verifies_and_records_once(rollout: Rollout, endpoints: Endpoints) -> None:
    """Try 1 deferred and was lost; by try 2 the rollback has finished: verify, record, fail, without waiting."""
    deployed = rollout.deployed
    _defer(_smoke_test(rollout.config), _context(deployed))
    endpoints.finish(ENDPOINT)
    with pytest.raises(AirflowFailException, match=EXPECTED):
        _smoke_test(rollout.config).execute(_context(deployed, try_number=2))
    assert len(endpoints.update_requests) == 2 and len(endpoints.invocations) == 1
    assert len(rollout.audit("rolled_back")) == 1 and len(rollout.notifications()) == 1


def test_a_rollback_never_undoes_a_later_deploy(rollout: Rollout, endpoints: Endpoints) -> None:
    """Between the deploy task and its smoke test, another run put 1.0.2 on the endpoint: 1.0.0 is not put back over it."""
    reg = registry()
    third = reg.set_approval(GROUP, register(reg, "run-3").semver, APPROVED, by="auto")
    endpoints.hold = False
    later = serving().deploy(ENDPOINT, third, load_config(EXAMPLE))
    endpoints.failing_versions.add("1.0.2")
    with pytest.raises(DeploymentError, match=rf"endpoint {ENDPOINT} is InService on {later['endpoint_config']}, "
                                              rf"not on {rollout.deployed['endpoint_config']} .* so 1.0.0 is not put back"):
        _smoke_test(rollout.config).execute(_context(rollout.deployed))
    assert [_semver_of(r["EndpointConfigName"]) for r in endpoints.update_requests] == ["1.0.1", "1.0.2"]  # no rollback
    assert rollout.endpoint()["EndpointConfigName"] == later["endpoint_config"]
    assert rollout.audit("rolled_back") == [] and rollout.notifications() == []


def test_the_deploy_dag_defers_the_rollback_and_fails_without_spending_its_retry(
    rollout: Rollout, endpoints: Endpoints, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Real Airflow (dag.test runs triggers as the triggerer would): the smoke test fails, defers the
    rollback, and fails once it is verified, without spending its retry (RolledBackError: a retry
    would change nothing).
    """
    from datetime import timedelta

    from airflow_provider_mlops.factory.plan import plan_model
    from airflow_provider_mlops.factory.render import render_dag

    seen: list[dict[str, Any]] = []
    original_run = EndpointDeployTrigger.run

    async def run(self: EndpointDeployTrigger) -> Any:
        async for event in original_run(self):
            seen.append(event.payload)
            yield event

    monkeypatch.setattr(EndpointDeployTrigger, "run", run)
    endpoints.finish_after = 0.5
    reg = registry()
    reg.set_approval(GROUP, register(reg, "run-3").semver, APPROVED, by="auto")
    endpoints.failing_versions.add("1.0.2")
    dags = {spec.kind: render_dag(spec) for spec in plan_model(load_config(rollout.config))}
    smoke = dags["deploy"].get_task("smoke_test")
    smoke.retries, smoke.retry_delay = 1, timedelta(0)
    run_ = dags["deploy"].test(run_conf={"model_version": "1.0.2", "requested_by": "pytest"})
    assert _state(run_) == "failed"
    ti = run_.get_task_instance("smoke_test")
    assert (str(getattr(ti.state, "value", ti.state)), ti.try_number) == ("failed", 1)
    # Two waits in the triggerer: the deploy of 1.0.2, then the rollback to 1.0.1.
    assert [(e["status"], e["deploy"]["version"], bool(e["deploy"].get("rollback"))) for e in seen] == [
        ("settled", "1.0.2", False), ("settled", "1.0.1", True)]
    assert [_semver_of(r["EndpointConfigName"]) for r in endpoints.update_requests] == ["1.0.1", "1.0.2", "1.0.1"]
    assert _semver_of(rollout.endpoint()["EndpointConfigName"]) == "1.0.1"
    [recorded] = rollout.audit("rolled_back")
    assert (recorded["version"], recorded["restored_version"]) == ("1.0.2", "1.0.1")
    assert len(rollout.notifications()) == 1
