"""
SageMaker endpoints: create against moto; update (blue/green) with botocore's Stubber.

moto 5.2.5 implements CreateModel, CreateEndpointConfig, CreateEndpoint, DescribeEndpoint,
ListEndpointConfigs, tags and InvokeEndpoint, but not UpdateEndpoint. The update path (and its
failure, where the endpoint stays on the previous config) runs against Stubber, which checks
every request against the real SageMaker API model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from sagemaker_testenv import ACCOUNT, EXAMPLE, ROLE, Aws
from test_sagemaker_registry import GROUP, register, registry

from airflow_provider_mlops.config.loader import load_config
from airflow_provider_mlops.config.models import Deployment
from airflow_provider_mlops.exceptions import DeploymentError
from airflow_provider_mlops.registry.base import APPROVED, ModelVersion
from airflow_provider_mlops.serving.sagemaker import SageMakerServing, deployment_config

ENDPOINT = "demo--breast-cancer-sagemaker"


def serving() -> SageMakerServing:
    return SageMakerServing(region_name="us-east-1", role_arn=ROLE, poll_interval=0.0, wait_timeout=30)


def approved(semver_key: str = "run-1") -> ModelVersion:
    reg = registry()
    version = register(reg, semver_key)
    return reg.set_approval(GROUP, version.semver, APPROVED, by="auto")


def test_first_deploy_creates_the_endpoint_on_a_new_config(aws: Aws) -> None:
    loaded = load_config(EXAMPLE)
    version = approved()
    result = serving().deploy(ENDPOINT, version, loaded)
    sm = aws.client("sagemaker")
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == result["endpoint_config"]
    assert result["action"] == "create" and result["previous_version"] is None and result["version"] == "1.0.0"
    config = sm.describe_endpoint_config(EndpointConfigName=result["endpoint_config"])
    variant = config["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 1)
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["ModelPackageName"] == version.arn
    assert model["ExecutionRoleArn"] == ROLE
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=config["EndpointConfigArn"])["Tags"]}
    assert tags["mlops:semver"] == "1.0.0" and tags["mlops:endpoint"] == ENDPOINT
    assert "#/endpoints/demo--breast-cancer-sagemaker" in result["links"]["console"]
    status, _, body = serving().invoke(result, b'{"instances": [[1.0]]}', "application/json")
    assert status == 200 and body
    # The same version again changes nothing.
    again = serving().deploy(ENDPOINT, version, loaded)
    assert again["unchanged"] is True and again["endpoint_config"] == result["endpoint_config"]
    assert len(sm.list_endpoint_configs()["EndpointConfigs"]) == 1


def test_a_failed_endpoint_is_never_silently_recreated_or_updated(aws: Aws) -> None:
    loaded = load_config(EXAMPLE)
    version = approved()
    serving().deploy(ENDPOINT, version, loaded)
    endpoint = aws.sagemaker_state.endpoints[ENDPOINT]
    endpoint.endpoint_status = "Failed"
    with pytest.raises(DeploymentError, match="is Failed .*delete a Failed endpoint"):
        serving().deploy(ENDPOINT, approved("run-2"), loaded)
    assert len(aws.client("sagemaker").list_endpoint_configs()["EndpointConfigs"]) == 1


def test_cleanup_keeps_the_current_and_n_previous_configs_of_this_endpoint_only(aws: Aws) -> None:
    sm = aws.client("sagemaker")
    sm.create_model(ModelName="m-old", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"})
    sm.create_model(ModelName="m-kept", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"})
    names = []
    for i, model in enumerate(["m-old", "m-kept", "m-kept", "m-kept"]):
        name = f"{ENDPOINT}-1-0-{i}-abc"
        sm.create_endpoint_config(EndpointConfigName=name, Tags=[{"Key": "mlops:endpoint", "Value": ENDPOINT}],
                                  ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": model,
                                                       "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
        names.append(name)
    sm.create_endpoint_config(EndpointConfigName=f"{ENDPOINT}-other", Tags=[{"Key": "mlops:endpoint", "Value": f"{ENDPOINT}-2"}],
                              ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "m-old",
                                                   "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    deleted = serving().cleanup(ENDPOINT, keep=2, current=names[3])
    assert deleted == [names[0]]
    left = {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]}
    assert left == {*names[1:], f"{ENDPOINT}-other"}
    assert {m["ModelName"] for m in sm.list_models()["Models"]} == {"m-kept"}


def test_deployment_config_from_the_yaml_keys() -> None:
    canary = deployment_config(Deployment(strategy="canary", canary={"size_percent": 5, "wait_seconds": 60},
                                          termination_wait_seconds=30, auto_rollback_alarms=["a5xx", "latency"]))
    assert canary == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 5},
                                            "WaitIntervalInSeconds": 60},
            "TerminationWaitInSeconds": 30,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a5xx"}, {"AlarmName": "latency"}]},
    }
    linear = deployment_config(Deployment(strategy="linear", linear={"step_percent": 25, "wait_seconds": 10}))
    assert linear["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["LinearStepSize"]["Value"] == 25
    assert "AutoRollbackConfiguration" not in linear
    assert deployment_config(Deployment())["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"


# -- UpdateEndpoint, with Stubber -----------------------------------------------------------

PACKAGE_ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/{GROUP}/2"
OLD_CONFIG = f"{ENDPOINT}-1-0-0-aaaaaaaaaa"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _version() -> ModelVersion:
    return ModelVersion(group=GROUP, semver="1.0.1", package_version=2, status=APPROVED, created_at=NOW.isoformat(),
                        artifact_uri="s3://b/m.tar.gz", arn=PACKAGE_ARN)


def _endpoint(config: str, status: str, reason: str | None = None) -> dict[str, Any]:
    described = {"EndpointName": ENDPOINT, "EndpointArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{ENDPOINT}",
                 "EndpointConfigName": config, "EndpointStatus": status, "CreationTime": NOW, "LastModifiedTime": NOW}
    if reason:
        described["FailureReason"] = reason
    return described


def _config(name: str, model: str = "m") -> dict[str, Any]:
    return {"EndpointConfigName": name, "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint-config/{name}",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": model}], "CreationTime": NOW}


def _stub_update_until_wait(stubber: Stubber, after_update: list[dict[str, Any]]) -> None:
    stubber.add_response("describe_endpoint", _endpoint(OLD_CONFIG, "InService"), {"EndpointName": ENDPOINT})
    stubber.add_response("describe_endpoint_config", _config(OLD_CONFIG), {"EndpointConfigName": OLD_CONFIG})
    stubber.add_response("list_tags", {"Tags": [{"Key": "mlops:semver", "Value": "1.0.0"},
                                                {"Key": "mlops:endpoint", "Value": ENDPOINT}]},
                         {"ResourceArn": _config(OLD_CONFIG)["EndpointConfigArn"]})
    stubber.add_client_error("describe_model", "ValidationException", "Could not find model", 400, expected_params={"ModelName": ANY})
    stubber.add_response("create_model", {"ModelArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/m"},
                         {"ModelName": ANY, "PrimaryContainer": {"ModelPackageName": PACKAGE_ARN},
                          "ExecutionRoleArn": ROLE, "Tags": ANY})
    stubber.add_response("create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:1:endpoint-config/x"},
                         {"EndpointConfigName": ANY, "ProductionVariants": ANY, "Tags": ANY})
    stubber.add_response(
        "update_endpoint", {"EndpointArn": _endpoint(OLD_CONFIG, "Updating")["EndpointArn"]},
        {"EndpointName": ENDPOINT, "EndpointConfigName": ANY, "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                                                "WaitIntervalInSeconds": 300},
                "TerminationWaitInSeconds": 120},
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "demo-breast-cancer-sm-5xx"}]}}},
    )
    for described in after_update:
        stubber.add_response("describe_endpoint", described, {"EndpointName": ENDPOINT})


def _new_config_name(moto_server: str) -> str:
    from airflow_provider_mlops.naming import short_hash
    from airflow_provider_mlops.serving.sagemaker import _name

    return _name(ENDPOINT, "1.0.1", unique=short_hash(OLD_CONFIG, PACKAGE_ARN))


def test_update_endpoint_blue_green_canary_with_stubber(moto_server: str) -> None:
    loaded = load_config(EXAMPLE)
    sv = serving()
    new = _new_config_name(moto_server)
    stubber = Stubber(sv.hook.conn)
    _stub_update_until_wait(stubber, [_endpoint(OLD_CONFIG, "Updating"), _endpoint(new, "InService")])
    # Cleanup: four configs of this endpoint, keep_previous=2: the oldest goes, with its model.
    configs = [new, OLD_CONFIG, f"{ENDPOINT}-older-1", f"{ENDPOINT}-older-2"]
    stubber.add_response("list_endpoint_configs", {"EndpointConfigs": [
        {"EndpointConfigName": c, "EndpointConfigArn": _config(c)["EndpointConfigArn"], "CreationTime": NOW} for c in configs]},
        {"NameContains": ENDPOINT, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 100})
    for c in configs:
        stubber.add_response("list_tags", {"Tags": [{"Key": "mlops:endpoint", "Value": ENDPOINT}]},
                             {"ResourceArn": _config(c)["EndpointConfigArn"]})
    for c in configs[:3]:
        stubber.add_response("describe_endpoint_config", _config(c, model="m"), {"EndpointConfigName": c})
    stubber.add_response("describe_endpoint_config", _config(configs[3], model="m-oldest"), {"EndpointConfigName": configs[3]})
    stubber.add_response("delete_endpoint_config", {}, {"EndpointConfigName": configs[3]})
    stubber.add_response("delete_model", {}, {"ModelName": "m-oldest"})
    with stubber:
        result = sv.deploy(ENDPOINT, _version(), loaded)
        stubber.assert_no_pending_responses()
    assert result["action"] == "update" and result["endpoint_config"] == new
    assert (result["previous_version"], result["previous_endpoint_config"]) == ("1.0.0", OLD_CONFIG)
    assert result["deleted_endpoint_configs"] == [configs[3]]


def test_a_failed_update_fails_loudly_and_the_previous_config_keeps_serving(moto_server: str) -> None:
    loaded = load_config(EXAMPLE)
    sv = serving()
    stubber = Stubber(sv.hook.conn)
    _stub_update_until_wait(stubber, [
        _endpoint(OLD_CONFIG, "Updating"),
        _endpoint(OLD_CONFIG, "InService", reason="Alarm demo-breast-cancer-sm-5xx went into ALARM: rolled back"),
    ])
    with stubber, pytest.raises(DeploymentError) as raised:
        sv.deploy(ENDPOINT, _version(), loaded)
    message = str(raised.value)
    assert "rolled back" in message and f"still serves {OLD_CONFIG}" in message and "cloudwatch" in message


def test_an_endpoint_this_provider_did_not_deploy_is_not_taken_over(aws: Aws) -> None:
    sm = aws.client("sagemaker")
    sm.create_model(ModelName="theirs", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"})
    sm.create_endpoint_config(EndpointConfigName="their-config", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "theirs", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="their-config")
    with pytest.raises(DeploymentError, match="was not deployed by airflow-provider-mlops"):
        serving().deploy(ENDPOINT, approved(), load_config(EXAMPLE))
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == "their-config"
