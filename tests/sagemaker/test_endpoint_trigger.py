"""
The SageMaker deploy waits in the triggerer: :class:`EndpointDeployTrigger` against moto, and the
deploy operator's deferral and ``execute_complete``, branch by branch.

moto creates endpoints InService at once; a test holds one Creating (then InService, or Failed)
by changing moto's in-process state from a thread, as SageMaker would after a while.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sagemaker_testenv import EXAMPLE, ROLE, Aws
from test_sagemaker_dags import _fast_config, _state, _xcom
from test_sagemaker_serving import ENDPOINT, approved

from airflow_provider_mlops.config.loader import load_config
from airflow_provider_mlops.exceptions import DeploymentError
from airflow_provider_mlops.serving.sagemaker import SageMakerServing
from airflow_provider_mlops.triggers.endpoint import EndpointDeployTrigger

ALARM = "demo-breast-cancer-sm-5xx"  # the example's deployment.auto_rollback_alarms


def _serving_kwargs() -> dict[str, Any]:
    return {"aws_conn_id": "aws_default", "region_name": "us-east-1", "role_arn": ROLE, "poll_interval": 0.05}


def _trigger(config: str, *, deadline_in: float = 30.0, alarms: list[str] | None = None,
             max_consecutive_errors: int = 5) -> EndpointDeployTrigger:
    deploy = {"endpoint": ENDPOINT, "endpoint_config": config, "version": "1.0.0"}
    return EndpointDeployTrigger(serving="sagemaker", serving_kwargs=_serving_kwargs(), deploy=deploy, alarms=alarms or [], deadline=time.time() + deadline_in,
                                 poll_interval=0.05, max_consecutive_errors=max_consecutive_errors)


def _events(trigger: EndpointDeployTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=60))


def _hold_new_endpoints(monkeypatch: pytest.MonkeyPatch, then: str | None, after: float = 0.6,
                        reason: str | None = None) -> list[str]:
    """New endpoints start Creating; after ``after`` seconds they turn ``then`` (None: stay Creating)."""
    from moto.sagemaker.models import SageMakerModelBackend

    original = SageMakerModelBackend.create_endpoint
    created: list[str] = []

    def create_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str, tags: list[dict[str, str]]) -> Any:
        endpoint: Any = original(self, endpoint_name, endpoint_config_name, tags)
        endpoint.endpoint_status = "Creating"
        created.append(endpoint_name)

        def settle() -> None:
            time.sleep(after)
            endpoint.endpoint_status, endpoint.failure_reason = then, reason

        if then:
            threading.Thread(target=settle, daemon=True).start()
        return endpoint

    monkeypatch.setattr(SageMakerModelBackend, "create_endpoint", create_endpoint)
    return created


def _started(monkeypatch: pytest.MonkeyPatch, then: str | None, reason: str | None = None) -> dict[str, Any]:
    _hold_new_endpoints(monkeypatch, then, reason=reason)
    started = SageMakerServing(region_name="us-east-1", role_arn=ROLE).start_deploy(ENDPOINT, approved(), load_config(EXAMPLE))
    assert started["action"] == "create" and not started["unchanged"]
    return started


# -- the trigger -----------------------------------------------------------------------------


def test_serialize_round_trips_to_an_equal_trigger_with_primitive_kwargs() -> None:
    trigger = _trigger("cfg-1", alarms=[ALARM])
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_mlops.triggers.endpoint.EndpointDeployTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    module, _, name = path.rpartition(".")
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)


def test_run_waits_while_creating_and_reports_in_service_on_the_new_config(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    started = _started(monkeypatch, then="InService")
    polls: list[str] = []
    original = SageMakerServing.endpoint_progress

    def counted(self: SageMakerServing, endpoint: str) -> Any:
        progress = original(self, endpoint)
        assert progress is not None
        polls.append(progress["status"])
        return progress

    monkeypatch.setattr(SageMakerServing, "endpoint_progress", counted)
    [event] = _events(_trigger(started["endpoint_config"]))
    assert event["status"] == "settled" and event["alarms_in_alarm"] == []
    assert event["progress"] == {"status": "InService", "endpoint_config": started["endpoint_config"],
                                 "failure_reason": None, "settled": True}
    assert polls[0] == "Creating" and polls[-1] == "InService"


def test_run_reports_a_failed_endpoint_and_the_rollback_alarms_in_alarm(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    cloudwatch = aws.client("cloudwatch")
    for name in (ALARM, "quiet"):
        cloudwatch.put_metric_alarm(AlarmName=name, MetricName="Invocation5XXErrors", Namespace="AWS/SageMaker",
                                    Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                                    ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="injected")
    started = _started(monkeypatch, then="Failed", reason="the model container failed its ping health check")
    [event] = _events(_trigger(started["endpoint_config"], alarms=[ALARM, "quiet", "missing"]))
    assert event["status"] == "settled" and event["progress"]["status"] == "Failed"
    assert event["progress"]["failure_reason"] == "the model container failed its ping health check"
    assert event["alarms_in_alarm"] == [ALARM]


def test_run_reports_an_endpoint_deleted_while_waiting(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    started = _started(monkeypatch, then=None)
    aws.client("sagemaker").delete_endpoint(EndpointName=ENDPOINT)
    [event] = _events(_trigger(started["endpoint_config"]))
    assert event == {"status": "gone", "deploy": {"endpoint": ENDPOINT, "endpoint_config": started["endpoint_config"],
                                                  "version": "1.0.0"}}


def test_run_times_out_at_its_absolute_deadline(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    started = _started(monkeypatch, then=None)
    [event] = _events(_trigger(started["endpoint_config"], deadline_in=-1))
    assert event["status"] == "timeout" and event["progress"]["status"] == "Creating"


def test_run_gives_up_after_consecutive_poll_errors(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: SageMakerServing, endpoint: str) -> Any:
        raise ConnectionError("injected: connection reset")

    monkeypatch.setattr(SageMakerServing, "endpoint_progress", broken)
    [event] = _events(_trigger("cfg", max_consecutive_errors=2))
    assert event["status"] == "error" and event["deploy"]["endpoint_config"] == "cfg"
    assert event["message"] == f"polling endpoint {ENDPOINT} failed 2 times: injected: connection reset"


def test_on_kill_leaves_the_endpoint_deploying(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    started = _started(monkeypatch, then=None)
    asyncio.run(_trigger(started["endpoint_config"]).on_kill())
    assert aws.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "Creating"


# -- the operator: deferral and execute_complete ----------------------------------------------


class _Ti:
    run_id = "manual__pytest"

    def __init__(self, resolved: dict[str, Any] | None = None) -> None:
        self.pushed: dict[str, Any] = {}
        self.resolved = resolved

    def xcom_pull(self, task_ids: str) -> Any:
        return self.resolved

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _context(resolved: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"ti": _Ti(resolved), "dag_run": SimpleNamespace(conf={"requested_by": "pytest"})}


def _operator(tmp_path: Path) -> Any:
    from airflow_provider_mlops.operators.deploy import MlopsDeployOperator

    return MlopsDeployOperator(task_id="deploy", config_path=str(_fast_config(tmp_path)))


def test_execute_defers_while_the_endpoint_is_creating_then_completes(aws: Aws, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    _hold_new_endpoints(monkeypatch, then="InService")
    version = approved()
    operator = _operator(tmp_path)
    context = _context({"semver": version.semver})
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, EndpointDeployTrigger) and deferred.value.method_name == "execute_complete"
    assert trigger.alarms == [ALARM] and trigger.poll_interval == 0.1 and trigger.deploy["action"] == "create"
    assert deferred.value.timeout.total_seconds() == 3 * 3600 + 600  # after the trigger's own deadline
    assert "#/endpoints/" in context["ti"].pushed["mlops_links"]["console"]  # links while it waits
    [event] = _events(trigger)
    result = operator.execute_complete(_context(), event)
    assert (result["action"], result["version"], result["deleted_endpoint_configs"]) == ("create", "1.0.0", [])
    assert aws.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == result["endpoint_config"]


def test_execute_does_not_defer_when_the_endpoint_is_already_in_service(aws: Aws, tmp_path: Path) -> None:
    version = approved()
    result = _operator(tmp_path).execute(_context({"semver": version.semver}))
    assert result["action"] == "create" and result["version"] == version.semver


@pytest.mark.parametrize(("event", "message"), [
    ({"status": "settled", "alarms_in_alarm": [ALARM],
      "progress": {"status": "Failed", "endpoint_config": "new", "failure_reason": "ping failed", "settled": True}},
     f"failed: ping failed; it is Failed.*Rollback alarms in ALARM: {ALARM}"),
    ({"status": "settled", "progress": {"status": "InService", "endpoint_config": "old", "failure_reason": "rolled back",
                                        "settled": True}},
     "failed: rolled back; it still serves old"),
    ({"status": "timeout", "progress": {"status": "Creating", "endpoint_config": "new", "settled": False}},
     f"endpoint {ENDPOINT} is still Creating after 10800s deploying new"),
    ({"status": "gone"}, f"endpoint {ENDPOINT} disappeared while deploying new"),
    ({"status": "error", "message": "polling failed 5 times"}, "waiting for endpoint .* to serve new failed: polling failed"),
    ({"status": "surprise"}, "unexpected trigger event"),
])
def test_execute_complete_failure_branches(moto_server: str, tmp_path: Path, event: dict[str, Any], message: str) -> None:
    started = {"endpoint": ENDPOINT, "endpoint_config": "new", "previous_endpoint_config": None, "version": "1.0.0"}
    with pytest.raises(DeploymentError, match=message):
        _operator(tmp_path).execute_complete(_context(), {**event, "deploy": started})


def test_the_deploy_dag_defers_the_endpoint_wait_in_real_airflow(aws: Aws, airflow_db: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """dag.test() runs triggers as the triggerer would: the deploy task resumes from the trigger's event."""
    from airflow_provider_mlops.factory.plan import plan_model
    from airflow_provider_mlops.factory.render import render_dag

    _hold_new_endpoints(monkeypatch, then="InService", after=1.0)
    events: list[dict[str, Any]] = []
    original_run = EndpointDeployTrigger.run

    async def run(self: EndpointDeployTrigger) -> Any:
        async for event in original_run(self):
            events.append(event.payload)
            yield event

    monkeypatch.setattr(EndpointDeployTrigger, "run", run)
    version = approved()
    config = _fast_config(tmp_path)
    (tmp_path / "smoke_payload.json").write_bytes((EXAMPLE.parent / "smoke_payload.json").read_bytes())
    dags = {spec.kind: render_dag(spec) for spec in plan_model(load_config(config))}
    deploy = dags["deploy"].test(run_conf={"model_version": version.semver, "requested_by": "pytest"})
    assert _state(deploy) == "success"
    assert [e["status"] for e in events] == ["settled"]  # the trigger, not the worker, saw it settle
    deployed = _xcom(deploy, "deploy")
    assert deployed["action"] == "create"
    endpoint = aws.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", deployed["endpoint_config"])
