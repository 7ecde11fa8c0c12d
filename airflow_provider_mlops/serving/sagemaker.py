"""
SageMaker endpoints: deploy an approved model package with a blue/green update.

A deploy creates a Model from the package and an EndpointConfig with a unique name, then
CreateEndpoint when the endpoint does not exist, or UpdateEndpoint (with the config's
DeploymentConfig: all-at-once, canary or linear traffic shifting, the termination wait and the
auto-rollback alarms) when it does; the choice is logged and returned, never silent. It then
waits and checks that the endpoint is InService on the NEW config: if not, it fails with the
endpoint's FailureReason while SageMaker keeps the previous config serving. After a good
deploy, old endpoint configs and models of this endpoint are deleted, keeping
``deployment.keep_previous`` of them for rollback.

The wait is split out so the deploy operator holds no worker slot during it:
:meth:`SageMakerServing.start_deploy` makes the calls, :class:`~airflow_provider_mlops.triggers.endpoint.EndpointDeployTrigger`
polls :meth:`SageMakerServing.endpoint_progress` in the triggerer, and
:meth:`SageMakerServing.finish_deploy` verifies and cleans up. The smoke test's rollback waits
the same way: :meth:`SageMakerServing.start_rollback` starts it (or re-attaches to the one an
earlier try started). :meth:`SageMakerServing.deploy`, the serving protocol's blocking form,
runs the three in one process, polling in :meth:`SageMakerServing._wait_settled`: it is for
callers outside an Airflow task (scripts, tests); no operator waits that way on SageMaker.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.exceptions import DeploymentError
from airflow_provider_mlops.hooks.aws_access import SageMakerAccess
from airflow_provider_mlops.links.sagemaker import LOG_GROUPS, cloudwatch_logs_url, sagemaker_console_url
from airflow_provider_mlops.naming import short_hash

if TYPE_CHECKING:
    from airflow_provider_mlops.config.loader import LoadedConfig
    from airflow_provider_mlops.config.models import Deployment
    from airflow_provider_mlops.registry.base import ModelVersion

TAG_ENDPOINT = "mlops:endpoint"
TAG_SEMVER = "mlops:semver"
TAG_PACKAGE = "mlops:model-package"


def deployment_config(deployment: Deployment) -> dict[str, Any]:
    """The UpdateEndpoint DeploymentConfig for the config's ``deployment`` block."""
    if deployment.strategy == "canary":
        routing: dict[str, Any] = {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": deployment.canary.size_percent},
            "WaitIntervalInSeconds": deployment.canary.wait_seconds,
        }
    elif deployment.strategy == "linear":
        routing = {
            "Type": "LINEAR",
            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": deployment.linear.step_percent},
            "WaitIntervalInSeconds": deployment.linear.wait_seconds,
        }
    else:
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": deployment.termination_wait_seconds,
        }
    }
    if deployment.auto_rollback_alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in deployment.auto_rollback_alarms]}
    return config


def _name(*parts: str, unique: str) -> str:
    """A SageMaker resource name within 63 characters, ending in ``unique``."""
    head = "-".join(p for p in parts if p).replace(".", "-")
    return f"{head[:62 - len(unique)].rstrip('-')}-{unique}"


def _config_name(endpoint: str, version: ModelVersion, serving_config: str | None) -> str:
    """
    The endpoint config a deploy of ``version`` creates while ``serving_config`` serves.

    Unique per transition (what serves now → this package): a retried deploy or rollback
    computes the same name and reuses its config instead of creating another, and a later
    redeploy of the same version gets a new one.
    """
    return _name(endpoint, version.semver, unique=short_hash(serving_config or "<none>", str(version.arn)))


class SageMakerServing(SageMakerAccess):
    """
    Serve model versions on SageMaker real-time endpoints.

    :param aws_conn_id: the Airflow AWS connection.
    :param region_name: overrides the connection's region.
    :param role_arn: the execution role of the SageMaker Model (``aws.role_arn``).
    :param artifacts_uri: unused here; accepted so every SageMaker part takes the same keys.
    :param poll_interval: seconds between endpoint status checks.
    :param wait_timeout: the longest a deploy waits for the endpoint, in seconds.
    """

    name = "sagemaker"

    def __init__(
        self,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        role_arn: str | None = None,
        artifacts_uri: str | None = None,
        poll_interval: float = 30.0,
        wait_timeout: float = 3 * 3600,
    ) -> None:
        super().__init__(aws_conn_id, region_name, role_arn, artifacts_uri)
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    def _tags(self, arn: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self.hook.conn.list_tags(ResourceArn=arn).get("Tags", [])}

    def _config_tags(self, config_name: str) -> dict[str, str]:
        arn = self.hook.conn.describe_endpoint_config(EndpointConfigName=config_name)["EndpointConfigArn"]
        return self._tags(arn)

    # -- the protocol --------------------------------------------------------------------

    def deploy(self, endpoint: str, version: ModelVersion, loaded: LoadedConfig) -> dict[str, Any]:
        """The serving protocol: create or update ``endpoint`` to serve the approved ``version``, waiting here."""
        started = self.start_deploy(endpoint, version, loaded)
        if started["unchanged"]:
            return started
        return self.finish_deploy(started, self._wait_settled(endpoint, started["endpoint_config"]), loaded)

    def start_deploy(self, endpoint: str, version: ModelVersion, loaded: LoadedConfig) -> dict[str, Any]:
        """
        Check the endpoint, create the Model and EndpointConfig, and call CreateEndpoint or UpdateEndpoint.

        :return: the deploy's result-to-be (see :meth:`_result`); ``unchanged`` is True when the
            endpoint already serves ``version`` and there is nothing to wait for.
        """
        deployment = loaded.config.deployment
        if not version.arn:
            raise DeploymentError(f"{version.group} {version.semver} has no model package ARN; register it with registry.backend: sagemaker")
        if not self.role_arn:
            raise DeploymentError("deployment.backend sagemaker needs aws.role_arn in mlops.yaml (the model's execution role)")
        existing = self.hook.describe_endpoint_or_none(endpoint)
        previous_config = previous_version = None
        if existing is not None:
            status = existing["EndpointStatus"]
            if status != "InService":
                raise DeploymentError(
                    f"endpoint {endpoint} is {status} ({existing.get('FailureReason') or 'no reason given'}); a deploy "
                    "updates only an InService endpoint: wait for it, or delete a Failed endpoint with "
                    f"'aws sagemaker delete-endpoint --endpoint-name {endpoint}' and deploy again"
                )
            previous_config = existing["EndpointConfigName"]
            previous_tags = self._config_tags(previous_config)
            if previous_tags.get(TAG_ENDPOINT) != endpoint:
                raise DeploymentError(
                    f"endpoint {endpoint} exists but was not deployed by airflow-provider-mlops (its endpoint config "
                    f"{previous_config} has no '{TAG_ENDPOINT}: {endpoint}' tag), so it is not updated: set another "
                    "deployment.endpoint_name, or add that tag to the config to adopt the endpoint"
                )
            previous_version = previous_tags.get(TAG_SEMVER)
            if previous_version == version.semver:
                self.hook.log.info("Endpoint %s already serves %s on %s: nothing to do", endpoint, version.semver, previous_config)
                return self._result(endpoint, version.semver, previous_version, previous_config, previous_config, "none", unchanged=True)
        model_name = self._ensure_model(endpoint, version)
        config_name = _config_name(endpoint, version, previous_config)
        tags = [{"Key": TAG_ENDPOINT, "Value": endpoint}, {"Key": TAG_SEMVER, "Value": version.semver},
                {"Key": TAG_PACKAGE, "Value": version.arn}]
        self._create_endpoint_config(
            config_name,
            [{
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InstanceType": deployment.instance_type,
                "InitialInstanceCount": deployment.instance_count,
                "InitialVariantWeight": 1.0,
            }],
            tags,
        )
        if existing is None:
            action = "create"
            self.hook.log.info("Endpoint %s does not exist: CreateEndpoint with %s (%s)", endpoint, config_name, version.semver)
            self.hook.conn.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name, Tags=tags[:1])
        else:
            action = "update"
            config = deployment_config(deployment)
            self.hook.log.info("Endpoint %s serves %s (%s): UpdateEndpoint to %s (%s), %s",
                               endpoint, previous_config, previous_version, config_name, version.semver,
                               config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"])
            self.hook.conn.update_endpoint(EndpointName=endpoint, EndpointConfigName=config_name, DeploymentConfig=config)
        return self._result(endpoint, version.semver, previous_version, config_name, previous_config, action)

    def start_rollback(self, deployed: dict[str, Any], version: ModelVersion, loaded: LoadedConfig) -> dict[str, Any]:
        """
        Put ``version`` (the one a deploy replaced) back on the endpoint after its smoke test failed; retry-safe.

        The rollback is a deploy of ``version`` from the config that failed (an UpdateEndpoint
        with the config's DeploymentConfig), to an endpoint config whose name follows from the
        two (:func:`_config_name`), so any try computes the same one:

        - the endpoint is updating to that config, or serves it: an earlier try started the
          rollback; nothing is called, its result is returned to wait on or verify;
        - it is InService on the config the smoke test failed: UpdateEndpoint now;
        - anything else (gone, moving to or serving another config: a later deploy) is refused,
          so a rollback never undoes a change it did not make.

        :param deployed: what the deploy task returned (``endpoint``, ``endpoint_config``,
            ``version``: the version the smoke test failed).
        :param version: the version to put back (``deployed["previous_version"]``).
        :param loaded: the model's config (``deployment``: instance type, strategy, alarms).
        :return: the rollback's result-to-be, as :meth:`start_deploy` returns it.
        :raises DeploymentError: the endpoint is gone, or changed by something else since the deploy.
        """
        endpoint, failed_config = deployed["endpoint"], deployed["endpoint_config"]
        target = _config_name(endpoint, version, failed_config)
        described = self.hook.describe_endpoint_or_none(endpoint)
        if described is None:
            raise DeploymentError(
                f"endpoint {endpoint} no longer exists, so {version.semver} cannot be put back after the smoke test of "
                f"{deployed['version']} failed; deploy {version.semver} again with the deploy DAG and run conf "
                f'{{"model_version": "{version.semver}"}}'
            )
        status, serving = described["EndpointStatus"], described.get("EndpointConfigName")
        pending = (described.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        if target in (serving, pending):
            self.hook.log.info("Endpoint %s is %s on %s: the rollback to %s (%s) was started by an earlier try; "
                               "re-attaching, not updating again", endpoint, status, serving, target, version.semver)
            return self._result(endpoint, version.semver, deployed["version"], target, failed_config, "update")
        if serving == failed_config:
            if status == "InService":
                return self.start_deploy(endpoint, version, loaded)
            raise DeploymentError(
                f"endpoint {endpoint} is {status} on {failed_config} ({described.get('FailureReason') or 'no reason given'}); "
                f"the rollback to {version.semver} updates only an InService endpoint: clear this task once it is "
                "InService again (a Failed endpoint must be deleted and deployed again)"
            )
        raise DeploymentError(
            f"endpoint {endpoint} is {status} on {serving}"
            + (f" (updating to {pending})" if pending else "")
            + f", not on {failed_config} where the smoke test of {deployed['version']} failed, nor on the rollback's "
            f"{target}: something else changed it since, so {version.semver} is not put back (that would undo the "
            f"change). Check the endpoint; to restore {version.semver}, run the deploy DAG with run conf "
            f'{{"model_version": "{version.semver}"}}'
        )

    def finish_deploy(self, started: dict[str, Any], outcome: dict[str, Any], loaded: LoadedConfig) -> dict[str, Any]:
        """
        Verify how the wait ended, then delete old configs.

        :param started: what :meth:`start_deploy` returned.
        :param outcome: how the wait ended, from this process's wait or the trigger's event:
            ``{"status": "settled" | "timeout", "progress": <endpoint_progress>, "alarms_in_alarm": [...]}``
            or ``{"status": "gone"}``.
        :param loaded: the model's config (``deployment.keep_previous``).
        :return: ``started`` plus ``deleted_endpoint_configs``.
        :raises DeploymentError: the endpoint is gone, still moving after ``wait_timeout``, or not
            InService on the new config (SageMaker kept or rolled back to the previous one),
            naming its FailureReason and the rollback alarms in ALARM.
        """
        endpoint, config_name = started["endpoint"], started["endpoint_config"]
        status = outcome.get("status")
        if status == "gone":
            raise DeploymentError(f"endpoint {endpoint} disappeared while deploying {config_name}")
        progress = outcome["progress"]
        if status == "timeout":
            raise DeploymentError(f"endpoint {endpoint} is still {progress['status']} after {self.wait_timeout:.0f}s "
                                  f"deploying {config_name}")
        self._check_switched(endpoint, config_name, started["previous_endpoint_config"], progress,
                             outcome.get("alarms_in_alarm"))
        result = dict(started)
        result["deleted_endpoint_configs"] = self.cleanup(endpoint, keep=loaded.config.deployment.keep_previous,
                                                          current=config_name)
        return result

    def endpoint_progress(self, endpoint: str) -> dict[str, Any] | None:
        """One DescribeEndpoint, reduced to what a wait needs (JSON for a trigger event); ``None`` when it is gone."""
        from airflow_provider_mlops.hooks.sagemaker import ENDPOINT_NON_TERMINAL_STATES

        described = self.hook.describe_endpoint_or_none(endpoint)
        if described is None:
            return None
        return {"status": described["EndpointStatus"], "endpoint_config": described.get("EndpointConfigName"),
                "failure_reason": described.get("FailureReason"),
                "settled": described["EndpointStatus"] not in ENDPOINT_NON_TERMINAL_STATES}

    def alarms_in_alarm(self, alarms: list[str]) -> list[str]:
        """The deployment's auto-rollback alarms that are in ALARM now (they make SageMaker roll back)."""
        return self.hook.alarms_in_state(alarms, "ALARM") if alarms else []

    def invoke(self, deployed: dict[str, Any], payload: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
        """The serving protocol: send one request through SageMaker Runtime InvokeEndpoint."""
        return self.hook.invoke_endpoint(deployed["endpoint"], payload, content_type)

    def stop(self, endpoint: str) -> None:
        """Delete the endpoint (its configs and models stay, for a later redeploy)."""
        if self.hook.describe_endpoint_or_none(endpoint) is not None:
            self.hook.conn.delete_endpoint(EndpointName=endpoint)

    # -- steps ---------------------------------------------------------------------------

    def _create_endpoint_config(self, name: str, variants: list[dict[str, Any]], tags: list[dict[str, str]]) -> None:
        from botocore.exceptions import ClientError

        from airflow_provider_mlops.hooks.sagemaker import is_already_exists

        try:
            self.hook.conn.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants, Tags=tags)
        except ClientError as exc:
            if not is_already_exists(exc):
                raise
            self.hook.log.info("Endpoint config %s already exists (a retried deploy): reusing it", name)

    def _ensure_model(self, endpoint: str, version: ModelVersion) -> str:
        from botocore.exceptions import ClientError

        from airflow_provider_mlops.hooks.sagemaker import is_not_found

        model_name = _name(endpoint, version.semver, unique=short_hash(str(version.arn), length=8))
        try:
            self.hook.conn.describe_model(ModelName=model_name)
            return model_name
        except ClientError as exc:
            if not is_not_found(exc):
                raise
        self.hook.conn.create_model(
            ModelName=model_name,
            PrimaryContainer={"ModelPackageName": version.arn},
            ExecutionRoleArn=self.role_arn,
            Tags=[{"Key": TAG_ENDPOINT, "Value": endpoint}, {"Key": TAG_SEMVER, "Value": version.semver}],
        )
        return model_name

    def _wait_settled(self, endpoint: str, config_name: str) -> dict[str, Any]:
        """
        Poll in this process until the endpoint settles; the outcome has the trigger's event shape.

        Only :meth:`deploy` (the protocol's blocking form, for callers outside a task) waits here;
        the operators defer to :class:`~airflow_provider_mlops.triggers.endpoint.EndpointDeployTrigger`.
        """
        deadline = time.monotonic() + self.wait_timeout
        last = None
        while True:
            progress = self.endpoint_progress(endpoint)
            if progress is None:
                return {"status": "gone"}
            if progress["status"] != last:
                self.hook.log.info("Endpoint %s: %s (config %s)", endpoint, progress["status"], progress["endpoint_config"])
                last = progress["status"]
            if progress["settled"] or time.monotonic() > deadline:
                return {"status": "settled" if progress["settled"] else "timeout", "progress": progress,
                        "alarms_in_alarm": []}
            time.sleep(self.poll_interval)

    def _check_switched(self, endpoint: str, config_name: str, previous_config: str | None, progress: dict[str, Any],
                        alarms_in_alarm: list[str] | None = None) -> None:
        status, serving = progress["status"], progress["endpoint_config"]
        if status == "InService" and serving == config_name:
            return
        keeps = f"it still serves {serving}" if status == "InService" else f"it is {status}"
        alarms = f" Rollback alarms in ALARM: {', '.join(alarms_in_alarm)}." if alarms_in_alarm else ""
        raise DeploymentError(
            f"deploying {config_name} to endpoint {endpoint} failed: "
            f"{progress.get('failure_reason') or 'the endpoint did not switch to the new config'}; {keeps}"
            + (f" (the previous config was {previous_config})" if previous_config else "")
            + f". See the endpoint's CloudWatch logs: {cloudwatch_logs_url(self.region, LOG_GROUPS['endpoint'], endpoint)}"
            + alarms
        )

    def cleanup(self, endpoint: str, *, keep: int, current: str) -> list[str]:
        """
        Delete this endpoint's old endpoint configs and their models, keeping ``keep`` previous ones.

        Only configs tagged with this endpoint's name are touched; the config in use never is.
        :return: the names of the deleted endpoint configs.
        """
        listed = self.hook.conn.list_endpoint_configs(NameContains=endpoint, SortBy="CreationTime", SortOrder="Descending",
                                                      MaxResults=100).get("EndpointConfigs", [])
        ours = [c for c in listed if self._tags(c["EndpointConfigArn"]).get(TAG_ENDPOINT) == endpoint]
        kept = [c["EndpointConfigName"] for c in ours if c["EndpointConfigName"] == current]
        kept += [c["EndpointConfigName"] for c in ours if c["EndpointConfigName"] != current][:keep]
        doomed = [c["EndpointConfigName"] for c in ours if c["EndpointConfigName"] not in kept]
        kept_models = {v["ModelName"] for name in kept
                       for v in self.hook.conn.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]}
        for name in doomed:
            models = {v["ModelName"] for v in self.hook.conn.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]}
            self.hook.conn.delete_endpoint_config(EndpointConfigName=name)
            for model in sorted(models - kept_models):
                self.hook.conn.delete_model(ModelName=model)
            self.hook.log.info("Deleted old endpoint config %s and models %s", name, sorted(models - kept_models))
        return doomed

    def _result(self, endpoint: str, semver: str, previous_version: str | None, config: str,
                previous_config: str | None, action: str, *, unchanged: bool = False) -> dict[str, Any]:
        return {
            "endpoint": endpoint,
            "url": f"https://runtime.sagemaker.{self.region}.amazonaws.com/endpoints/{endpoint}/invocations",
            "version": semver,
            "previous_version": previous_version,
            "unchanged": unchanged,
            "action": action,
            "endpoint_config": config,
            "previous_endpoint_config": previous_config,
            "links": {"console": sagemaker_console_url(self.region, "endpoints", endpoint),
                      "logs": cloudwatch_logs_url(self.region, LOG_GROUPS["endpoint"], endpoint)},
        }
