"""
The SageMaker Model Registry against moto (server mode, through the Airflow AWS connection).

moto 5.2.5 cannot resolve model-package ARNs in AddTags/ListTags; the session fixture patches
moto's ARN lookup (see conftest.py), and :func:`test_semver_tag_request_matches_the_api_model`
also checks the AddTags request that ``register`` sends with botocore's Stubber (scoped to
AddTags, so the rest of ``register`` runs on moto) against the real API model.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber
from sagemaker_testenv import ACCOUNT, ARTIFACTS_BUCKET, DATA_BUCKET, Aws

from airflow_provider_mlops.exceptions import (
    ApprovalConflictError,
    ConfigError,
    RegistryError,
    VersionNotFoundError,
)
from airflow_provider_mlops.registry.base import APPROVED, PENDING, REJECTED
from airflow_provider_mlops.registry.sagemaker import SageMakerModelRegistry

GROUP = "demo--breast-cancer-sagemaker"
ARTIFACTS = f"s3://{ARTIFACTS_BUCKET}/demo/bc"
IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/demo/breast-cancer:1.0.0"


def registry() -> SageMakerModelRegistry:
    return SageMakerModelRegistry(region_name="us-east-1", artifacts_uri=ARTIFACTS,
                                  content_types=["application/json", "text/csv"], response_types=["application/json"],
                                  inference_instance_types=["ml.m5.large"])


def register(reg: SageMakerModelRegistry, key: str, series: str = "1.0", passed: bool = True, **extra: Any) -> Any:
    return reg.register(
        GROUP, series, idempotency_key=key, artifact_uri=f"{ARTIFACTS}/training/{key}/output/model.tar.gz",
        metrics={"f1": 0.97, "recall": 0.98, "confusion_matrix": {"matrix": [[1, 0], [0, 1]]}},
        gate={"passed": passed, "rows": []},
        lineage={"image": IMAGE, "commit": "0123abc", "repository": "https://gitlab.example.com/ds/bc",
                 "training_job": f"train-{key}", "data": {"train": f"s3://{DATA_BUCKET}/bc/train"},
                 "evaluation_report": f"{ARTIFACTS}/evaluation/{key}/evaluation.json", "run_id": key},
        status=PENDING if passed else REJECTED, **extra,
    )


def test_register_creates_the_group_and_a_complete_model_package(aws: Aws) -> None:
    version = register(registry(), "run-1")
    sm = aws.client("sagemaker")
    assert sm.describe_model_package_group(ModelPackageGroupName=GROUP)["ModelPackageGroupName"] == GROUP
    described = sm.describe_model_package(ModelPackageName=version.arn)
    spec = described["InferenceSpecification"]
    assert spec["SupportedContentTypes"] == ["application/json", "text/csv"]
    assert spec["Containers"][0] == {"Image": IMAGE, "ModelDataUrl": f"{ARTIFACTS}/training/run-1/output/model.tar.gz"}
    assert described["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == f"{ARTIFACTS}/evaluation/run-1/evaluation.json"
    assert described["MetadataProperties"]["CommitId"] == "0123abc"
    assert described["MetadataProperties"]["Repository"] == "https://gitlab.example.com/ds/bc"
    props = described["CustomerMetadataProperties"]
    assert props["mlops:semver"] == "1.0.0" and props["mlops:gate"] == "passed"
    assert props["mlops:data:train"] == f"s3://{DATA_BUCKET}/bc/train"
    assert described["ModelApprovalStatus"] == PENDING
    tags = sm.list_tags(ResourceArn=version.arn)["Tags"]
    assert {"Key": "mlops:semver", "Value": "1.0.0"} in tags
    assert version.semver == "1.0.0" and version.package_version == 1
    assert version.metrics["confusion_matrix"] == {"matrix": [[1, 0], [0, 1]]}
    assert version.lineage["commit"] == "0123abc"


def test_patches_count_within_a_series_in_model_package_version_order(aws: Aws) -> None:
    reg = registry()
    assert [register(reg, f"run-{i}").semver for i in range(3)] == ["1.0.0", "1.0.1", "1.0.2"]
    assert register(reg, "run-new-series", series="1.1").semver == "1.1.0"
    assert register(reg, "run-3").semver == "1.0.3"
    assert [v.semver for v in reg.list_versions(GROUP)] == ["1.0.0", "1.0.1", "1.0.2", "1.1.0", "1.0.3"]


def test_register_is_idempotent_per_key(aws: Aws) -> None:
    reg = registry()
    first = register(reg, "run-1")
    again = register(registry(), "run-1")
    assert again.arn == first.arn and again.semver == "1.0.0"
    assert len(aws.client("sagemaker").list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]) == 1


def test_racing_registrations_get_distinct_patches_from_the_atomic_order(aws: Aws) -> None:
    """
    Two registrations race: B's package is created (version 1) but B has not allocated its patch
    yet when A (version 2) allocates. A counts B's in-flight package and takes patch 1; B then
    takes patch 0. No one reads a maximum: each patch is the package's rank in version order.
    """
    reg = registry()
    reg.ensure_group(GROUP)
    request = reg.package_request(GROUP, "1.0", "run-b", "b" * 64, f"{ARTIFACTS}/registry/b.json",
                                  f"{ARTIFACTS}/m.tar.gz", {}, {"passed": True}, {"image": IMAGE}, PENDING)
    aws.client("s3").put_object(Bucket=ARTIFACTS_BUCKET, Key="demo/bc/registry/b.json", Body=b"{}")
    aws.client("sagemaker").create_model_package(**request)  # B's CreateModelPackage, then B stalls
    assert register(reg, "run-a").semver == "1.0.1"  # A
    assert register(reg, "run-b").semver == "1.0.0"  # B resumes (its retry finds its package by key)


def test_approve_and_reject_record_who_and_why(aws: Aws) -> None:
    reg = registry()
    register(reg, "run-1")
    approved = reg.set_approval(GROUP, "1.0.0", APPROVED, by="alice", reason="looks good")
    assert approved.status == APPROVED
    assert approved.approval["by"] == "alice" and approved.approval["reason"] == "looks good" and approved.approval["at"]
    described = aws.client("sagemaker").describe_model_package(ModelPackageName=approved.arn)
    assert described["ApprovalDescription"].startswith("Approved by alice")
    assert described["CustomerMetadataProperties"]["mlops:semver"] == "1.0.0"  # not dropped by the update
    register(reg, "run-2")
    rejected = reg.set_approval(GROUP, "1.0.1", REJECTED, by="bob", reason="drift on segment X")
    assert (rejected.status, rejected.approval["by"]) == (REJECTED, "bob")
    with pytest.raises(RegistryError, match="not one of"):
        reg.set_approval(GROUP, "1.0.0", "Maybe", by="x")


def test_a_decision_is_final_and_the_audit_log_outlives_airflow(aws: Aws) -> None:
    reg = registry()
    register(reg, "run-1")
    register(reg, "run-2", passed=False)
    reg.set_approval(GROUP, "1.0.1", REJECTED, by="gate", reason="failed the evaluation gate")
    reg.set_approval(GROUP, "1.0.0", APPROVED, by="alice", reason="looks good, ship it (ticket #42)")
    with pytest.raises(ApprovalConflictError, match=r"already Approved \(by alice"):
        reg.set_approval(GROUP, "1.0.0", REJECTED, by="bob", reason="too late")
    override = reg.set_approval(GROUP, "1.0.1", APPROVED, by="carol", reason="label noise in f1", override=True)
    assert override.approval["override"] is True and override.approval["reason"] == "label noise in f1"
    reg.promote(GROUP, "1.0.0", deployment={"endpoint": "demo-ep", "by": "gitlab:ci"})
    # A registry with nothing but AWS behind it, as after rebuilding the MWAA environment.
    log = registry().audit_log(GROUP)
    assert [(e["kind"], e["version"], e["by"]) for e in log] == [
        ("gate_failed", "1.0.1", "gate"), ("approved", "1.0.0", "alice"), ("override", "1.0.1", "carol"),
        ("promoted", "1.0.0", "gitlab:ci")]
    assert log[1]["reason"] == "looks good, ship it (ticket #42)" and all(e["at"] for e in log)
    listed = aws.client("s3").list_objects_v2(Bucket=ARTIFACTS_BUCKET, Prefix=f"demo/bc/registry/{GROUP}/audit/")
    assert listed["KeyCount"] == 4


def test_a_first_registration_does_not_orphan_the_models_old_group(aws: Aws) -> None:
    old = "demo-breast-cancer-sagemaker"
    prefix = "mlops__demo__breast-cancer-sagemaker__"
    registry().register(old, "1.0", idempotency_key=f"{prefix}train/run-0", artifact_uri=f"{ARTIFACTS}/m.tar.gz",
                        metrics={}, gate={"passed": True}, lineage={"image": IMAGE})
    renamed = SageMakerModelRegistry(region_name="us-east-1", artifacts_uri=ARTIFACTS, legacy_group=old,
                                     owner_dag_prefix=prefix)
    with pytest.raises(ConfigError, match="set registry.model_package_group: demo-breast-cancer-sagemaker"):
        register(renamed, "run-1")
    other = SageMakerModelRegistry(region_name="us-east-1", artifacts_uri=ARTIFACTS, legacy_group=old,
                                   owner_dag_prefix="mlops__demo-breast__cancer-sagemaker__")
    assert register(other, "run-1").semver == "1.0.0"  # the old group holds none of this model's versions


def test_failed_gate_registers_as_rejected(aws: Aws) -> None:
    version = register(registry(), "run-1", passed=False)
    assert version.status == REJECTED


def test_latest_production_and_promote(aws: Aws) -> None:
    reg = registry()
    assert reg.latest(GROUP) is None and reg.production(GROUP) is None
    register(reg, "run-1")
    register(reg, "run-2")
    latest = reg.latest(GROUP)
    assert latest is not None and latest.semver == "1.0.1" and latest.created_at
    with pytest.raises(RegistryError, match="not Approved"):
        reg.promote(GROUP, "1.0.0", deployment={"endpoint": "e"})
    reg.set_approval(GROUP, "1.0.0", APPROVED, by="auto")
    reg.set_approval(GROUP, "1.0.1", APPROVED, by="auto")
    reg.promote(GROUP, "1.0.0", deployment={"endpoint": "demo-ep"})
    assert reg.production(GROUP).semver == "1.0.0"  # type: ignore[union-attr]
    reg.promote(GROUP, "1.0.1", deployment={"endpoint": "demo-ep"})
    assert reg.production(GROUP).semver == "1.0.1"  # type: ignore[union-attr]
    assert reg.get(GROUP, "1.0.0").stage == "archived"
    with pytest.raises(VersionNotFoundError):
        reg.get(GROUP, "9.9.9")


class AddTagsStubber(Stubber):
    """botocore's Stubber on AddTags alone: the registry's other calls still go to moto."""

    EVENTS = ("before-parameter-build.sagemaker.AddTags", "before-call.sagemaker.AddTags")

    def activate(self) -> None:
        self.client.meta.events.register_first(self.EVENTS[0], self._assert_expected_params,
                                               unique_id=self._expected_params_event_id)
        self.client.meta.events.register(self.EVENTS[1], self._get_response_handler, unique_id=self._event_id)

    def deactivate(self) -> None:
        self.client.meta.events.unregister(self.EVENTS[0], self._assert_expected_params,
                                           unique_id=self._expected_params_event_id)
        self.client.meta.events.unregister(self.EVENTS[1], self._get_response_handler, unique_id=self._event_id)


def test_semver_tag_request_matches_the_api_model(aws: Aws) -> None:
    """register() tags the new package with AddTags, checked by Stubber against the real API model."""
    reg = registry()
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/{GROUP}/1"
    tags = [{"Key": "mlops:semver", "Value": "1.0.0"}]
    with AddTagsStubber(reg.hook.conn) as stubber:
        stubber.add_response("add_tags", {"Tags": tags}, {"ResourceArn": arn, "Tags": tags})
        version = register(reg, "run-1")  # everything else (group, package, metadata) on moto
        stubber.assert_no_pending_responses()
    assert (version.arn, version.semver) == (arn, "1.0.0")
    assert aws.client("sagemaker").list_tags(ResourceArn=arn)["Tags"] == []  # the stub answered, not moto
    # With tag_model_packages off, register sends no AddTags: an unexpected call would fail the stubber.
    untagged = SageMakerModelRegistry(region_name="us-east-1", artifacts_uri=ARTIFACTS, tag_model_packages=False)
    with AddTagsStubber(untagged.hook.conn) as stubber:
        assert register(untagged, "run-2").semver == "1.0.1"
        stubber.assert_no_pending_responses()


def test_metadata_values_fit_the_api_pattern_and_the_full_reason_is_kept(aws: Aws) -> None:
    """CustomerMetadataProperties values must match [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*; free text is cleaned."""
    import unicodedata

    reg = registry()
    register(reg, "run-1")
    reason = "Looks good, ship it! (reviewed by Zoë; ticket #42)"
    version = reg.set_approval(GROUP, "1.0.0", APPROVED, by="Zoë Müller <zoe@example.com>", reason=reason)
    described = aws.client("sagemaker").describe_model_package(ModelPackageName=version.arn)
    for value in described["CustomerMetadataProperties"].values():
        assert all(ch.isalnum() or ch in "_.:/=+-@" or unicodedata.category(ch).startswith("Z") for ch in value), value
    assert described["CustomerMetadataProperties"]["mlops:by"] == "Zoë Müller _zoe@example.com_"
    assert reason in described["ApprovalDescription"]
