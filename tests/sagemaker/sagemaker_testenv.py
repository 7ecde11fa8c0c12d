"""Constants and helpers shared by the SageMaker tests (a uniquely named module, not a conftest)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "breast-cancer-sagemaker" / "mlops.yaml"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mlops-sagemaker-execution"
ARTIFACTS_BUCKET = f"mlops-artifacts-{ACCOUNT}"
DATA_BUCKET = f"mlops-data-{ACCOUNT}"
GOOD_EVALUATION = {
    "task": "classification",
    "metrics": {"f1": 0.97, "precision": 0.96, "recall": 0.98, "accuracy": 0.965},
    "confusion_matrix": {"labels": ["malignant", "benign"], "matrix": [[40, 3], [1, 70]]},
    "samples": 114,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def patch_moto_model_package_tags() -> None:
    """moto 5.2.5's tag lookup splits ARNs on '/' into two parts; model-package ARNs have three."""
    from moto.sagemaker.models import SageMakerModelBackend

    original = SageMakerModelBackend._get_resource_from_arn
    if getattr(original, "_mlops_patched", False):
        return

    def lookup(self: Any, arn: str) -> Any:
        if ":model-package/" in arn:
            for package in self.model_packages.values():
                if package.arn == arn:
                    if package.tags is None:
                        package.tags = []
                    return package
        return original(self, arn)

    lookup._mlops_patched = True  # type: ignore[attr-defined]
    SageMakerModelBackend._get_resource_from_arn = lookup  # type: ignore[method-assign]


@dataclass
class Aws:
    """Clients on the moto server, and moto's in-process SageMaker state for fault injection."""

    url: str

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    @property
    def sagemaker_state(self) -> Any:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[ACCOUNT][REGION]

    def put_json(self, uri: str, data: Any) -> None:
        bucket, _, key = uri[5:].partition("/")
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(data).encode())

    def get_json(self, uri: str) -> Any:
        bucket, _, key = uri[5:].partition("/")
        return json.loads(self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
