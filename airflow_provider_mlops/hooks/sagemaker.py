"""
The SageMaker hook: the amazon provider's :class:`SageMakerHook`, plus the S3 and runtime calls
the MLOps backends need, all through one Airflow AWS connection.

Operators and backends never build boto3 clients themselves: they ask this hook, which reads
credentials, region and ``endpoint_url`` from the connection (``aws_default`` by default).
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from airflow_provider_mlops.exceptions import BackendError, BackendNotAvailableError

# A leaf module: only the SageMaker backends import it, at run time (see hooks/__init__.py).
try:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from botocore.exceptions import ClientError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise BackendNotAvailableError(
        f"the SageMaker backends need the amazon provider ({exc}); install it with "
        "pip install 'airflow-provider-mlops[aws]'"
    ) from exc

#: SageMaker job states that are still moving.
JOB_NON_TERMINAL_STATES = frozenset({"InProgress", "Stopping"})
#: Endpoint states that are still moving.
ENDPOINT_NON_TERMINAL_STATES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``("bucket", "key")``; anything else is an error naming the URI."""
    bucket, _, key = uri[5:].partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise BackendError(f"{uri!r} is not an s3://bucket/key URI")
    return bucket, key


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def is_not_found(exc: ClientError) -> bool:
    """SageMaker answers a missing job, endpoint or package with a ValidationException."""
    message = error_message(exc).lower()
    return error_code(exc) in ("ResourceNotFound", "ValidationException", "NoSuchKey", "404") and (
        "could not find" in message or "not found" in message or "does not exist" in message or error_code(exc) in ("NoSuchKey", "404")
    )


def is_already_exists(exc: ClientError) -> bool:
    message = error_message(exc).lower()
    return error_code(exc) == "ResourceInUse" or "already exist" in message


class MlopsSageMakerHook(SageMakerHook):
    """
    SageMaker, S3 and SageMaker Runtime calls for the MLOps backends.

    :param aws_conn_id: the Airflow AWS connection (credentials, region, ``endpoint_url``).
    :param region_name: overrides the connection's region.
    """

    def __init__(self, aws_conn_id: str | None = "aws_default", region_name: str | None = None) -> None:
        super().__init__(aws_conn_id=aws_conn_id, region_name=region_name)

    @cached_property
    def s3(self) -> Any:
        return AwsBaseHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, client_type="s3").get_conn()

    @cached_property
    def runtime(self) -> Any:
        return AwsBaseHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, client_type="sagemaker-runtime"
        ).get_conn()

    @cached_property
    def cloudwatch(self) -> Any:
        return AwsBaseHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, client_type="cloudwatch").get_conn()

    # -- jobs ----------------------------------------------------------------------------

    def describe_job(self, kind: str, name: str) -> dict[str, Any] | None:
        """Describe a ``training`` or ``processing`` job; ``None`` when no job has that name."""
        try:
            if kind == "training":
                return dict(self.conn.describe_training_job(TrainingJobName=name))
            return dict(self.conn.describe_processing_job(ProcessingJobName=name))
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise

    def create_job(self, kind: str, request: dict[str, Any]) -> bool:
        """
        Create a job from a full request; return False when a job of that name already exists.

        :param kind: ``training`` or ``processing``.
        :param request: the CreateTrainingJob or CreateProcessingJob request.
        :return: True when this call created the job.
        """
        try:
            if kind == "training":
                self.conn.create_training_job(**request)
            else:
                self.conn.create_processing_job(**request)
        except ClientError as exc:
            if is_already_exists(exc):
                return False
            raise
        return True

    def stop_job(self, kind: str, name: str) -> None:
        try:
            if kind == "training":
                self.conn.stop_training_job(TrainingJobName=name)
            else:
                self.conn.stop_processing_job(ProcessingJobName=name)
        except ClientError as exc:
            # A job that finished between our describe and the stop is not an error.
            if is_not_found(exc) or "status" in error_message(exc).lower():
                return
            raise

    # -- job logs (CloudWatch Logs) -------------------------------------------------------

    @cached_property
    def logs(self) -> AwsLogsHook:
        return AwsLogsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    def job_log_streams(self, group: str, job_name: str) -> list[str]:
        """The job's log streams (``<job>/algo-1-...``), oldest first; none before the job has written any."""
        streams: list[str] = []
        try:
            pages = self.logs.conn.get_paginator("describe_log_streams").paginate(
                logGroupName=group, logStreamNamePrefix=f"{job_name}/"
            )
            for page in pages:
                streams += [s["logStreamName"] for s in page.get("logStreams", [])]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":  # no job of this account has logged yet
                return []
            raise
        return sorted(streams)

    def log_messages_since(self, group: str, stream: str, token: str | None, limit: int) -> tuple[list[str], str | None]:
        """
        A stream's messages after ``token`` (its next-forward token), with the token to read on from.
        Without a token, only the newest ``limit`` events: a re-attached reader does not replay hours.
        """
        if token is None:
            response = self.logs.conn.get_log_events(
                logGroupName=group, logStreamName=stream, startFromHead=False, limit=limit
            )
            return [e["message"] for e in response.get("events", [])], response.get("nextForwardToken")
        continuation = AwsLogsHook.ContinuationToken()
        continuation.value = token
        messages = [e["message"] for e in self.logs.get_log_events(group, stream, continuation_token=continuation)]
        return messages, continuation.value

    # -- S3 ------------------------------------------------------------------------------

    def read_json(self, uri: str) -> Any | None:
        """The JSON document at ``uri``, or ``None`` when there is no such object."""
        bucket, key = split_s3_uri(uri)
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NoSuchBucket"):
                return None
            raise
        return json.loads(body)

    def write_json(self, uri: str, data: Any) -> None:
        bucket, key = split_s3_uri(uri)
        self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(data, sort_keys=True).encode(), ContentType="application/json")

    def read_json_objects(self, prefix_uri: str) -> list[tuple[str, Any]]:
        """Every JSON object under ``prefix_uri``, as ``(key, document)``, in key order."""
        bucket, prefix = split_s3_uri(prefix_uri)
        found: list[tuple[str, Any]] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = self.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found.append((item["Key"], json.loads(body)))
        return sorted(found, key=lambda pair: pair[0])

    # -- endpoints -----------------------------------------------------------------------

    def describe_endpoint_or_none(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.conn.describe_endpoint(EndpointName=name))
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise

    def alarms_in_state(self, names: list[str], state: str = "ALARM") -> list[str]:
        """Which of the CloudWatch alarms ``names`` are in ``state`` now (an unknown name is in none)."""
        found: list[str] = []
        for page in self.cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=list(names), StateValue=state):
            found += [alarm["AlarmName"] for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])
                      if alarm.get("StateValue") == state]  # the filter again: moto ignores StateValue with AlarmNames
        return sorted(found)

    def invoke_endpoint(self, name: str, payload: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
        """Send one request to an endpoint; a model error comes back as its HTTP status, not a raise."""
        try:
            response = self.runtime.invoke_endpoint(EndpointName=name, Body=payload, ContentType=content_type)
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
            return status, {}, error_message(exc).encode()
        headers = {"Content-Type": str(response.get("ContentType", ""))}
        return 200, headers, response["Body"].read()
