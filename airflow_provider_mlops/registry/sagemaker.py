"""
The SageMaker Model Registry: one model package group per model, one package per version.

Semantic versions are race-free: a registration first creates its model package, and SageMaker
gives it the next ``ModelPackageVersion`` atomically. The ``PATCH`` is then the package's rank
among the packages of its ``MAJOR.MINOR`` series in that atomic order (a deterministic function
of the order, so two racing registrations can never compute the same patch); nothing reads a
maximum and writes it back. The semver lives in ``CustomerMetadataProperties`` (and a tag); the
full record (metrics with the confusion matrix, the gate table, lineage) is a JSON document in
S3 that the package's ``mlops:record`` property points to.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime
from typing import Any

from airflow_provider_mlops.exceptions import RegistryError, VersionNotFoundError
from airflow_provider_mlops.hooks.aws_access import SageMakerAccess
from airflow_provider_mlops.links.sagemaker import sagemaker_console_url
from airflow_provider_mlops.registry.base import APPROVAL_STATUSES, APPROVED, PENDING, ModelVersion
from airflow_provider_mlops.versioning import parse_series

P = "mlops:"  # the prefix of every CustomerMetadataProperties key this registry writes
#: How many of the newest packages a retried registration searches for its idempotency key.
IDEMPOTENCY_WINDOW = 100


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _cut(value: Any, limit: int = 256) -> str:
    """
    A CustomerMetadataProperties value: at most 256 characters of letters, numbers, spaces and
    ``_.:/=+-@`` (the API's pattern). Anything else becomes ``_``; the full text of an approval
    reason is kept in ApprovalDescription, which takes any text.
    """
    return "".join(
        ch if ch.isalnum() or ch in "_.:/=+-@" or unicodedata.category(ch).startswith("Z") else "_"
        for ch in str(value)[:limit]
    )


class SageMakerModelRegistry(SageMakerAccess):
    """
    A model registry in SageMaker Model Registry.

    :param aws_conn_id: the Airflow AWS connection.
    :param region_name: overrides the connection's region.
    :param role_arn: unused by the registry; accepted so every SageMaker part takes the same keys.
    :param artifacts_uri: the S3 prefix for version records (``aws.artifacts_uri``).
    :param content_types: the request content types the model accepts (``deployment.content_types``).
    :param response_types: the response MIME types it returns (``deployment.response_types``).
    :param inference_instance_types: the instance types it may serve on.
    :param tag_model_packages: also tag each package with its semver (needs ``sagemaker:AddTags``).
    :param poll_interval: unused by the registry; accepted like ``role_arn``.
    """

    def __init__(
        self,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        role_arn: str | None = None,
        artifacts_uri: str | None = None,
        content_types: list[str] | None = None,
        response_types: list[str] | None = None,
        inference_instance_types: list[str] | None = None,
        tag_model_packages: bool = True,
        poll_interval: float = 30.0,
    ) -> None:
        super().__init__(aws_conn_id, region_name, role_arn, artifacts_uri)
        self.content_types = list(content_types or ["application/json"])
        self.response_types = list(response_types or ["application/json"])
        self.inference_instance_types = list(inference_instance_types or ["ml.m5.large"])
        self.tag_model_packages = tag_model_packages
        self._records: dict[str, dict[str, Any]] = {}

    # -- SageMaker calls -----------------------------------------------------------------

    def ensure_group(self, group: str) -> None:
        """Create the model package group when it is missing (a concurrent create is fine)."""
        from botocore.exceptions import ClientError

        from airflow_provider_mlops.hooks.sagemaker import is_already_exists, is_not_found

        try:
            self.hook.conn.describe_model_package_group(ModelPackageGroupName=group)
            return
        except ClientError as exc:
            if not is_not_found(exc):
                raise
        try:
            self.hook.conn.create_model_package_group(
                ModelPackageGroupName=group,
                ModelPackageGroupDescription=f"Versions of {group}, registered by airflow-provider-mlops",
                Tags=[{"Key": "mlops:managed-by", "Value": "airflow-provider-mlops"}],
            )
            self.hook.log.info("Created model package group %s", group)
        except ClientError as exc:
            if not is_already_exists(exc):
                raise

    def _summaries(self, group: str, newest_first: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
        """The group's package summaries, sorted by the registry's creation order."""
        from botocore.exceptions import ClientError

        from airflow_provider_mlops.hooks.sagemaker import is_not_found

        kwargs: dict[str, Any] = {"ModelPackageGroupName": group, "SortBy": "CreationTime",
                                  "SortOrder": "Descending" if newest_first else "Ascending"}
        summaries: list[dict[str, Any]] = []
        try:
            while True:
                page = self.hook.conn.list_model_packages(**kwargs)
                summaries.extend(page.get("ModelPackageSummaryList", []))
                if not page.get("NextToken") or (limit is not None and len(summaries) >= limit):
                    break
                kwargs["NextToken"] = page["NextToken"]
        except ClientError as exc:
            if is_not_found(exc):
                return []
            raise
        return summaries[:limit] if limit is not None else summaries

    def _describe(self, arn: str) -> dict[str, Any]:
        return dict(self.hook.conn.describe_model_package(ModelPackageName=arn))

    def _update(self, described: dict[str, Any], properties: dict[str, str], *, status: str | None = None,
                description: str | None = None) -> dict[str, Any]:
        """
        Update a package's approval and metadata, always sending the complete state.

        Some implementations replace CustomerMetadataProperties instead of merging them, so
        the merged dict is sent; the approval status is always sent so it is never dropped.
        """
        merged = {k: v for k, v in {**(described.get("CustomerMetadataProperties") or {}), **properties}.items() if v}
        request: dict[str, Any] = {
            "ModelPackageArn": described["ModelPackageArn"],
            "ModelApprovalStatus": status or described.get("ModelApprovalStatus") or PENDING,
            "CustomerMetadataProperties": merged,
        }
        stale = [k for k, v in properties.items() if not v and k in (described.get("CustomerMetadataProperties") or {})]
        if stale:
            request["CustomerMetadataPropertiesToRemove"] = stale
        approval_description = description if description is not None else described.get("ApprovalDescription")
        if approval_description:
            request["ApprovalDescription"] = approval_description[:1024]
        self.hook.conn.update_model_package(**request)
        return self._describe(described["ModelPackageArn"])

    # -- the protocol --------------------------------------------------------------------

    def register(
        self,
        group: str,
        series: str,
        *,
        idempotency_key: str,
        artifact_uri: str,
        metrics: dict[str, Any],
        gate: dict[str, Any],
        lineage: dict[str, Any],
        status: str = PENDING,
    ) -> ModelVersion:
        """Register a model package and allocate its semver from ModelPackageVersion; idempotent per key."""
        parse_series(series)
        if status not in APPROVAL_STATUSES:
            raise RegistryError(f"status {status!r} is not one of {APPROVAL_STATUSES}")
        if not self.artifacts_uri:
            raise RegistryError("registry.backend sagemaker keeps version records in S3: set aws.artifacts_uri in mlops.yaml")
        if not lineage.get("image"):
            raise RegistryError(f"{group}: a SageMaker model package needs the training image; lineage has none")
        self.ensure_group(group)
        key_hash = hashlib.sha256(f"{group}\x1f{idempotency_key}".encode()).hexdigest()
        described = self._find_by_key(group, idempotency_key)
        if described is None:
            record_uri = f"{self.artifacts_uri}/registry/{group}/{key_hash[:16]}.json"
            self.hook.write_json(record_uri, {"metrics": metrics, "gate": gate, "lineage": lineage})
            arn = self.hook.conn.create_model_package(**self.package_request(
                group, series, idempotency_key, key_hash, record_uri, artifact_uri, metrics, gate, lineage, status,
            ))["ModelPackageArn"]
            self.hook.log.info("Created model package %s", arn)
            described = self._describe(arn)
        props = described.get("CustomerMetadataProperties") or {}
        if P + "semver" not in props:
            patch = self._allocate_patch(group, series, int(described["ModelPackageVersion"]))
            semver = f"{series}.{patch}"
            described = self._update(described, {P + "semver": semver, P + "patch": str(patch)})
            if self.tag_model_packages:
                self.hook.conn.add_tags(ResourceArn=described["ModelPackageArn"],
                                        Tags=[{"Key": "mlops:semver", "Value": semver}])
        return self._version(described)

    def package_request(self, group: str, series: str, idempotency_key: str, key_hash: str, record_uri: str,
                        artifact_uri: str, metrics: dict[str, Any], gate: dict[str, Any], lineage: dict[str, Any],
                        status: str) -> dict[str, Any]:
        """The CreateModelPackage request: inference spec, metrics report, lineage and metadata."""
        properties = {
            P + "series": series,
            P + "idempotency-key": _cut(idempotency_key),
            P + "record": _cut(record_uri),
            P + "gate": "passed" if gate.get("passed") else "failed",
            P + "image-version": _cut(lineage.get("image_version") or ""),
            P + "requested-by": _cut(lineage.get("requested_by") or ""),
        }
        for channel, uri in sorted((lineage.get("data") or {}).items())[:10]:
            properties[f"{P}data:{channel}"[:128]] = _cut(uri)
        primary = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for name, value in sorted(primary.items())[:10]:
            properties[f"{P}metric:{name}"[:128]] = _cut(value)
        metadata = {k: v for k, v in {
            "CommitId": lineage.get("commit"),
            "Repository": lineage.get("repository"),
            "GeneratedBy": lineage.get("training_job"),
            "ProjectId": group,
        }.items() if v}
        request: dict[str, Any] = {
            "ModelPackageGroupName": group,
            "ModelPackageDescription": f"{group} {series}.x, trained by run {lineage.get('run_id')}"[:1024],
            "InferenceSpecification": {
                "Containers": [{"Image": lineage["image"], "ModelDataUrl": artifact_uri}],
                "SupportedContentTypes": self.content_types,
                "SupportedResponseMIMETypes": self.response_types,
                "SupportedRealtimeInferenceInstanceTypes": self.inference_instance_types,
            },
            "ModelApprovalStatus": status,
            "MetadataProperties": metadata,
            # The API refuses empty values: an unknown field is left out, not sent blank.
            "CustomerMetadataProperties": {k: v for k, v in properties.items() if v},
            "ClientToken": key_hash[:36],
        }
        report = lineage.get("evaluation_report")
        if isinstance(report, str) and report.startswith("s3://"):
            request["ModelMetrics"] = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": report}}}
        return request

    def _find_by_key(self, group: str, idempotency_key: str) -> dict[str, Any] | None:
        for summary in self._summaries(group, newest_first=True, limit=IDEMPOTENCY_WINDOW):
            described = self._describe(summary["ModelPackageArn"])
            if (described.get("CustomerMetadataProperties") or {}).get(P + "idempotency-key") == _cut(idempotency_key):
                return described
        return None

    def _allocate_patch(self, group: str, series: str, version: int) -> int:
        """
        The patch of package ``version``: its rank within ``series`` in ModelPackageVersion order.

        Walks back from ``version`` until a package of the same series whose patch is already
        recorded; every package in between that belongs to the series counts one.
        """
        earlier = sorted((s for s in self._summaries(group) if int(s["ModelPackageVersion"]) < version),
                         key=lambda s: int(s["ModelPackageVersion"]), reverse=True)
        between = 0
        for summary in earlier:
            props = self._describe(summary["ModelPackageArn"]).get("CustomerMetadataProperties") or {}
            if props.get(P + "series") != series:
                continue
            if props.get(P + "patch", "").isdigit():
                return int(props[P + "patch"]) + between + 1
            between += 1
        return between

    def _record(self, uri: str | None) -> dict[str, Any]:
        if not uri:
            return {}
        if uri not in self._records:
            self._records[uri] = self.hook.read_json(uri) or {}
        return self._records[uri]

    def _version(self, described: dict[str, Any]) -> ModelVersion:
        props = described.get("CustomerMetadataProperties") or {}
        record = self._record(props.get(P + "record"))
        containers = described.get("InferenceSpecification", {}).get("Containers", [{}])
        created = described.get("CreationTime")
        group = str(described.get("ModelPackageGroupName") or described["ModelPackageArn"].split("/")[-2])
        approval = {k: props[P + k] for k in ("by", "at", "reason") if P + k in props}
        if approval:
            approval["status"] = str(described.get("ModelApprovalStatus"))
        deployment = {k: props[P + k] for k in ("endpoint", "deployed-at") if P + k in props}
        region = str(self.region_name or self.hook.conn.meta.region_name)
        return ModelVersion(
            group=group,
            semver=props.get(P + "semver", ""),
            package_version=int(described.get("ModelPackageVersion") or 0),
            status=str(described.get("ModelApprovalStatus") or PENDING),
            created_at=created.isoformat() if isinstance(created, datetime) else str(created),
            artifact_uri=str(containers[0].get("ModelDataUrl", "")),
            stage=props.get(P + "stage"),
            metrics=record.get("metrics", {}),
            gate=record.get("gate", {}),
            lineage={**record.get("lineage", {}), "model_package_arn": described["ModelPackageArn"],
                     "console_url": sagemaker_console_url(region, "model-packages", f"{group}/{described.get('ModelPackageVersion')}")},
            approval=approval,
            deployment=deployment,
            arn=described["ModelPackageArn"],
        )

    def _described_versions(self, group: str, newest_first: bool = False) -> list[dict[str, Any]]:
        return [d for d in (self._describe(s["ModelPackageArn"]) for s in self._summaries(group, newest_first))
                if P + "semver" in (d.get("CustomerMetadataProperties") or {})]

    def _get_described(self, group: str, semver: str) -> dict[str, Any]:
        for summary in self._summaries(group, newest_first=True):
            described = self._describe(summary["ModelPackageArn"])
            if (described.get("CustomerMetadataProperties") or {}).get(P + "semver") == semver:
                return described
        raise VersionNotFoundError(
            f"model package group {group} has no version {semver}; run 'mlops versions {group.replace('-', '/', 1)}' to list them"
        )

    def get(self, group: str, semver: str) -> ModelVersion:
        return self._version(self._get_described(group, semver))

    def list_versions(self, group: str) -> list[ModelVersion]:
        return [self._version(d) for d in self._described_versions(group)]

    def latest(self, group: str) -> ModelVersion | None:
        """The newest version, by the registry's creation time (ListModelPackages, newest first)."""
        for summary in self._summaries(group, newest_first=True):
            described = self._describe(summary["ModelPackageArn"])
            if P + "semver" in (described.get("CustomerMetadataProperties") or {}):
                return self._version(described)
        return None

    def production(self, group: str) -> ModelVersion | None:
        for described in self._described_versions(group, newest_first=True):
            if described["CustomerMetadataProperties"].get(P + "stage") == "production":
                return self._version(described)
        return None

    def set_approval(self, group: str, semver: str, status: str, *, by: str, reason: str = "") -> ModelVersion:
        """Move a version's ModelApprovalStatus, recording the approver, the time and the reason."""
        if status not in APPROVAL_STATUSES:
            raise RegistryError(f"status {status!r} is not one of {APPROVAL_STATUSES}")
        described = self._get_described(group, semver)
        at = _now()
        described = self._update(
            described,
            {P + "by": _cut(by), P + "at": at, P + "reason": _cut(reason)},
            status=status,
            description=f"{status} by {by} at {at}: {reason}",
        )
        self.hook.log.info("%s %s is now %s (by %s: %s)", group, semver, status, by, reason)
        return self._version(described)

    def promote(self, group: str, semver: str, *, deployment: dict[str, Any]) -> ModelVersion:
        """Mark ``semver`` as production (the gate's next champion); the previous one is archived."""
        described = self._get_described(group, semver)
        if described.get("ModelApprovalStatus") != APPROVED:
            raise RegistryError(
                f"model {group} version {semver} is {described.get('ModelApprovalStatus')}, not Approved: approve it before promoting"
            )
        for other in self._described_versions(group):
            if other["ModelPackageArn"] != described["ModelPackageArn"] and \
                    other["CustomerMetadataProperties"].get(P + "stage") == "production":
                self._update(other, {P + "stage": "archived"})
        described = self._update(described, {P + "stage": "production", P + "endpoint": _cut(deployment.get("endpoint", "")),
                                             P + "deployed-at": _now()})
        return self._version(described)
