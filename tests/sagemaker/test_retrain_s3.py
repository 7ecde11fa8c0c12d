"""
The retrain decision reads when ``s3://`` training channels last changed, against moto (server mode).

The decision lists each channel's prefix through the amazon provider's ``S3Hook`` on the model's
own AWS connection (``aws.conn_id``). Here that connection, ``mlops_retrain_s3``, is the only one
that reaches moto: ``aws_default`` points at a closed port, so a call through the wrong
connection fails the test. S3 keeps LastModified to the second, so an object put in the second
its version was registered in is given a later LastModified in moto's state (as a later upload
would have), never by sleeping.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from sagemaker_testenv import ACCOUNT, DATA_BUCKET, EXAMPLE, REGION, Aws, free_port

from airflow_provider_mlops import runtime
from airflow_provider_mlops.exceptions import BackendError
from airflow_provider_mlops.operators.retrain import MlopsRetrainDecisionOperator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from task_fakes import FakeTaskInstance, context  # the unit tests' task-instance stand-in

CONN_ID = "mlops_retrain_s3"
RETRAIN_DAG = "mlops__demo__breast-cancer-sagemaker__retrain"
TRAIN = f"s3://{DATA_BUCKET}/breast-cancer/train"
VALIDATION = f"s3://{DATA_BUCKET}/breast-cancer/validation"


@pytest.fixture
def model(aws: Aws, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The SageMaker example on a connection of its own, checking data freshness, with two S3 channels."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(
        {"conn_type": "aws", "extra": {"endpoint_url": moto_server, "region_name": REGION}}))
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(
        {"conn_type": "aws", "extra": {"endpoint_url": closed, "region_name": REGION,
                                       "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}}))
    text = EXAMPLE.read_text()
    for old, new in (("  conn_id: aws_default\n", f"  conn_id: {CONN_ID}\n"),
                     (f"    train: {TRAIN}\n", f"    train: {TRAIN}\n    validation: {VALIDATION}\n"),
                     ("  retrain_on_new_data: false\n", "  retrain_on_new_data: true\n")):
        assert old in text, old
        text = text.replace(old, new)
    config = tmp_path / "mlops.yaml"
    config.write_text(text)
    aws.client("s3").put_object(Bucket=DATA_BUCKET, Key="breast-cancer/validation/part-0.csv", Body=b"label,x\n0,0.1\n")
    return config


def _register(config: Path) -> datetime:
    """Register version 1.0.0 in the model's SageMaker registry; return its creation time."""
    from test_sagemaker_registry import register

    registry = runtime.registry_for(runtime.config_at(str(config)))
    register(registry, "run-1")
    latest = registry.latest("demo--breast-cancer-sagemaker")
    assert latest is not None and latest.semver == "1.0.0"
    return datetime.fromisoformat(latest.created_at)


def _decide(config: Path) -> tuple[str, dict[str, Any]]:
    ti = FakeTaskInstance(RETRAIN_DAG, "decide")
    branch = MlopsRetrainDecisionOperator(task_id="decide", config_path=str(config)).choose_branch(context(ti))
    return branch, ti.xcoms[("decide", "decision")]


def _listed(aws: Aws, prefix: str) -> dict[str, Any]:
    """The newest object under ``prefix``, as S3 itself lists it."""
    contents = aws.client("s3").list_objects_v2(Bucket=DATA_BUCKET, Prefix=prefix)["Contents"]
    return max(contents, key=lambda item: item["LastModified"])


def test_s3_data_older_than_the_last_version_is_a_skip_naming_each_prefix_and_its_newest_time(aws: Aws, model: Path) -> None:
    _register(model)  # after the fixture's uploads
    branch, decision = _decide(model)
    assert branch == "skip_retrain" and decision["retrain"] is False
    assert "no newer data" in decision["reason"]
    for uri, prefix in ((TRAIN, "breast-cancer/train"), (VALIDATION, "breast-cancer/validation")):
        newest = _listed(aws, prefix)
        assert f"{uri} newest {newest['LastModified'].isoformat()}" in decision["reason"]
        [record] = [r for r in decision["data"] if r["location"] == uri]
        assert record["count"] == 1 and record["etag"] == newest["ETag"].strip('"')
    events = runtime.registry_for(runtime.config_at(str(model))).events("demo--breast-cancer-sagemaker", "retrain_decision")
    assert events[-1]["reason"] == decision["reason"]  # recorded in the registry's audit log too


def test_s3_data_newer_than_the_last_version_retrains(aws: Aws, model: Path) -> None:
    from moto.s3.models import s3_backends

    registered = _register(model)
    aws.client("s3").put_object(Bucket=DATA_BUCKET, Key="breast-cancer/train/2026-03/new.csv", Body=b"label,x\n1,0.9\n")
    key = s3_backends[ACCOUNT]["aws"].buckets[DATA_BUCKET].keys["breast-cancer/train/2026-03/new.csv"]
    key.last_modified = (registered + timedelta(seconds=5)).astimezone(UTC).replace(tzinfo=None)  # moto: naive UTC
    branch, decision = _decide(model)
    assert branch == "trigger_train" and decision["retrain"] is True
    newest = _listed(aws, "breast-cancer/train")
    assert newest["Key"] == "breast-cancer/train/2026-03/new.csv"
    assert decision["reason"].startswith(f"the data changed at {newest['LastModified'].isoformat()}, after the last version")
    assert f"{TRAIN} newest {newest['LastModified'].isoformat()}" in decision["reason"]
    train = next(r for r in decision["data"] if r["location"] == TRAIN)
    assert train["count"] == 2 and train["etag"] == newest["ETag"].strip('"')
    assert decision["train_conf"]["requested_by"] == "retrain-schedule"


def test_an_empty_s3_channel_fails_the_decision_naming_it(aws: Aws, model: Path) -> None:
    aws.client("s3").delete_object(Bucket=DATA_BUCKET, Key="breast-cancer/validation/part-0.csv")
    _register(model)
    with pytest.raises(AirflowFailException, match=rf"training.channels.validation: '{VALIDATION}' holds no objects") as failed:
        _decide(model)
    assert str(model) in str(failed.value) and "retrain_on_new_data: false" in str(failed.value)


def test_a_failed_listing_names_the_channel_and_the_connection(aws: Aws, model: Path) -> None:
    model.write_text(model.read_text().replace(VALIDATION, "s3://mlops-no-such-bucket/validation"))
    _register(model)
    with pytest.raises(BackendError) as failed:  # retryable: a later try may find the bucket readable
        _decide(model)
    text = str(failed.value)
    assert "training.channels.validation: listing 's3://mlops-no-such-bucket/validation'" in text
    assert f"through the AWS connection '{CONN_ID}'" in text and "NoSuchBucket" in text
