"""
Fixtures for the SageMaker backend tests: moto in server mode on 127.0.0.1.

Every AWS call of the code under test goes through the real Airflow AWS connection
``aws_default`` (``AIRFLOW_CONN_AWS_DEFAULT`` with an ``endpoint_url``) to a
``ThreadedMotoServer`` that this session starts on a free loopback port. Nothing reaches the
network. moto runs in this process, so tests change its state directly to inject what moto
cannot do by itself (a job held InProgress, a Failed or Stopped job, what a processing container
would have written to S3). Two gaps of moto 5.2.5 are patched here, in moto, never in the code
under test: AddTags/ListTags cannot resolve model-package ARNs (``group/version`` holds two
slashes), so :func:`patch_moto_model_package_tags` teaches its ARN lookup about them.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sagemaker_testenv import (
    ACCOUNT,
    ARTIFACTS_BUCKET,
    DATA_BUCKET,
    GOOD_EVALUATION,
    REGION,
    Aws,
    free_port,
    patch_moto_model_package_tags,
)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1, and an Airflow AWS connection that points at it."""
    from moto.server import ThreadedMotoServer

    patch_moto_model_package_tags()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AIRFLOW_CONN_AWS_DEFAULT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN")}
    os.environ.update({
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", "extra": {"endpoint_url": url, "region_name": REGION}}),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    })
    os.environ.pop("AWS_SESSION_TOKEN", None)
    try:
        yield url
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def aws(moto_server: str) -> Aws:
    """A clean moto (reset before each test) with the example's S3 buckets."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    helper = Aws(moto_server)
    s3 = helper.client("s3")
    for bucket in (ARTIFACTS_BUCKET, DATA_BUCKET):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=DATA_BUCKET, Key="breast-cancer/train/train.csv", Body=b"label,x\n1,0.5\n")
    s3.put_object(Bucket=DATA_BUCKET, Key="breast-cancer/test/test.csv", Body=b"label,x\n1,0.5\n")
    return helper


@pytest.fixture
def container_writes_evaluation(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """
    Simulate the evaluation container: moto runs no containers, so when a processing job is
    created, write the evaluation.json its entrypoint would have uploaded to the job's output.

    :return: the report it writes (edit it in a test to change what the "container" reports).
    """
    from moto.s3.models import s3_backends
    from moto.sagemaker.models import SageMakerModelBackend

    report = json.loads(json.dumps(GOOD_EVALUATION))
    original = SageMakerModelBackend.create_processing_job

    def create_processing_job(self: Any, **kwargs: Any) -> Any:
        job = original(self, **kwargs)
        for output in kwargs["processing_output_config"]["Outputs"]:
            bucket, _, prefix = output["S3Output"]["S3Uri"][5:].partition("/")
            s3_backends[ACCOUNT]["aws"].put_object(bucket, f"{prefix.rstrip('/')}/evaluation.json", json.dumps(report).encode())
        return job

    monkeypatch.setattr(SageMakerModelBackend, "create_processing_job", create_processing_job)
    return report


@pytest.fixture
def moto_update_endpoint(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """
    Give moto an UpdateEndpoint (moto 5.2.5 has none), in moto's own response class.

    It switches the endpoint to the new config at once, as a finished blue/green update would,
    and records each request's DeploymentConfig. Set ``state["fail_with"]`` to a reason to make
    the next update roll back instead: the endpoint stays InService on its old config, with that
    FailureReason, as SageMaker leaves it after an auto-rollback.
    """
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    state: dict[str, Any] = {"requests": [], "fail_with": None}

    def update_endpoint(self: Any) -> Any:
        backend = self.sagemaker_backend
        name, config_name = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
        if name not in backend.endpoints:
            raise ValidationError(message=f"Could not find endpoint '{name}'.")
        config = backend.describe_endpoint_config(config_name)
        state["requests"].append({"EndpointName": name, "EndpointConfigName": config_name,
                                  "DeploymentConfig": self._get_param("DeploymentConfig")})
        endpoint = backend.endpoints[name]
        if state["fail_with"]:
            endpoint.failure_reason, state["fail_with"] = state["fail_with"], None
        else:
            endpoint.endpoint_config_name = config_name
            endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
            endpoint.failure_reason = None
        endpoint.last_modified_time = utcnow()
        return ActionResult({"EndpointArn": endpoint.arn})

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)
    return state
