"""The AWS connection shared by the SageMaker compute backend, registry and serving backend."""

from __future__ import annotations

from functools import cached_property
from typing import Any


class SageMakerAccess:
    """
    Connection plumbing for the SageMaker parts; the hook (and boto3) loads on first use.

    :param aws_conn_id: the Airflow AWS connection (``aws.conn_id``).
    :param region_name: the AWS region; default: the connection's.
    :param role_arn: the SageMaker execution role (``aws.role_arn``).
    :param artifacts_uri: the S3 prefix for artifacts and records (``aws.artifacts_uri``).
    """

    def __init__(
        self,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        role_arn: str | None = None,
        artifacts_uri: str | None = None,
    ) -> None:
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.role_arn = role_arn
        self.artifacts_uri = artifacts_uri.rstrip("/") if artifacts_uri else None

    @cached_property
    def hook(self) -> Any:
        from airflow_provider_mlops.hooks.sagemaker import MlopsSageMakerHook

        return MlopsSageMakerHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    @property
    def region(self) -> str:
        return str(self.region_name or self.hook.conn.meta.region_name)
