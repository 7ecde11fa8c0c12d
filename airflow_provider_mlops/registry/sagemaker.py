"""
The SageMaker Model Registry: one model package group per model, one package per version.

Semantic versions are race-free: a registration first creates its model package, and SageMaker
gives it the next ``ModelPackageVersion`` atomically. The ``PATCH`` is then the package's rank
among the packages of its ``MAJOR.MINOR`` series in that atomic order (a deterministic function
of the order, so two racing registrations can never compute the same patch); nothing reads a
maximum and writes it back. The semver lives in ``CustomerMetadataProperties`` (and a tag); the
full record (metrics with the confusion matrix, the gate table, lineage) is a JSON document in
S3 that the package's ``mlops:record`` property points to.

Decisions are compare-and-set as far as the API allows: UpdateModelPackage has no condition,
so ``set_approval`` describes the package, refuses a version already decided, writes the
decision with a token of its own, and describes again to check that its token is the one
stored. A racing decision that updates between that first describe and the update is seen
and refused; two that both pass the first describe and update within one describe's latency
of each other can both see their own token for a moment and both report success. That window
is milliseconds wide; the local registry (one SQLite transaction) has none.

The audit log is one small JSON object per event in S3, under
``<aws.artifacts_uri>/registry/<group>/audit/``, beside the version records: it is written
once and never rewritten (no read-modify-write race), and it lives in the artifacts bucket, so
rebuilding the MWAA environment (which loses Airflow's metadata DB) loses none of it.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from datetime import UTC, datetime
from typing import Any

from airflow_provider_mlops.exceptions import (
    ApprovalConflictError,
    ConfigError,
    RegistryError,
    VersionNotFoundError,
)
from airflow_provider_mlops.hooks.aws_access import SageMakerAccess
from airflow_provider_mlops.links.sagemaker import sagemaker_console_url
from airflow_provider_mlops.naming import model_ref
from airflow_provider_mlops.registry.base import (
    APPROVAL_STATUSES,
    APPROVED,
    PENDING,
    REJECTED,
    ModelVersion,
    already_decided_message,
    decision_kind,
    is_decided,
)
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
    :param legacy_group: the group name releases before the ``--`` join gave this model
        (``<project>-<model>``); a first registration refuses to start a new group while that
        one holds this model's versions.
    :param owner_dag_prefix: the DAG id prefix of this model (``mlops__<project>__<model>__``),
        which tells its packages in ``legacy_group`` from another model's.
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
        legacy_group: str | None = None,
        owner_dag_prefix: str | None = None,
    ) -> None:
        super().__init__(aws_conn_id, region_name, role_arn, artifacts_uri)
        self.legacy_group = legacy_group
        self.owner_dag_prefix = owner_dag_prefix
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
        self._refuse_to_orphan_legacy_group(group)
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

    def _refuse_to_orphan_legacy_group(self, group: str) -> None:
        """A new group would leave this model's versions (and production model) behind in the old one."""
        legacy, prefix = self.legacy_group, self.owner_dag_prefix
        if not legacy or not prefix or legacy == group:
            return
        for summary in self._summaries(legacy, newest_first=True, limit=IDEMPOTENCY_WINDOW):
            key = (self._describe(summary["ModelPackageArn"]).get("CustomerMetadataProperties") or {}).get(P + "idempotency-key", "")
            if key.startswith(prefix):
                raise ConfigError(
                    f"the model package group {legacy} (the name before registry groups were <project>--<model>) holds "
                    f"this model's versions; registering into a new group {group} would leave them, and the "
                    "production model the gate compares with, behind",
                    field="registry.model_package_group", value=group,
                    fix=f"keep the old group: set registry.model_package_group: {legacy} (and deployment.endpoint_name "
                        "to the endpoint it serves on); a name with a '-' in project or model needs "
                        "organisation.allow_resource_overrides in the organisation's mlops-defaults.yaml",
                )

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
        approval = _approval(described)
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
            f"model package group {group} has no version {semver}; run 'mlops versions {model_ref(group)}' to list them"
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

    def set_approval(
        self, group: str, semver: str, status: str, *, by: str, reason: str = "", override: bool = False,
        by_id: str | None = None,
    ) -> ModelVersion:
        """
        Record a decision on an undecided version: ModelApprovalStatus, who, when and why.

        Check-then-update on the ModelApprovalStatus just read, then a describe that must find
        this decision's token (see the module docstring for the window that remains).
        """
        if status not in (APPROVED, REJECTED):
            raise RegistryError(f"a decision is {APPROVED} or {REJECTED}, not {status!r} (not one of {APPROVAL_STATUSES[1:]})")
        described = self._get_described(group, semver)
        current = self._version(described)
        if is_decided(current):
            raise ApprovalConflictError(already_decided_message(current, status))
        at, token = _now(), secrets.token_hex(8)
        properties = {P + "by": _cut(by), P + "at": at, P + "reason": _cut(reason), P + "decision": token,
                      P + "override": "true" if override else "", P + "by-id": _cut(by_id) if by_id and by_id != by else ""}
        described = self._update(described, properties, status=status,
                                 description=f"{status} by {by} at {at}: {reason}")
        stored = described.get("CustomerMetadataProperties") or {}
        if stored.get(P + "decision") != token or described.get("ModelApprovalStatus") != status:
            raise ApprovalConflictError(already_decided_message(self._version(described), status))
        self.hook.log.info("%s %s is now %s (by %s: %s)", group, semver, status, by, reason)
        self.record_event(group, decision_kind(status, by, override),
                          {"version": semver, "by": by, "reason": reason, "status": status})
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
        self.record_event(group, "promoted", {"version": semver, **deployment})
        return self._version(described)

    # -- the audit log -------------------------------------------------------------------

    def _audit_prefix(self, group: str) -> str:
        if not self.artifacts_uri:
            raise RegistryError("registry.backend sagemaker keeps its audit log in S3: set aws.artifacts_uri in mlops.yaml")
        return f"{self.artifacts_uri}/registry/{group}/audit/"

    def record_event(self, group: str, kind: str, detail: dict[str, Any]) -> None:
        """Write one audit event as its own S3 object: never rewritten, so writers never race."""
        at = datetime.now(UTC)
        key = f"{at.strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(4)}.json"
        self.hook.write_json(self._audit_prefix(group) + key,
                             {"at": at.isoformat(timespec="milliseconds"), "kind": kind, **detail})

    def events(self, group: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.audit_log(group) if kind is None or e.get("kind") == kind]

    def audit_log(self, group: str) -> list[dict[str, Any]]:
        """Every audit event of ``group``, oldest first (object keys start with the UTC time)."""
        return [event for _, event in sorted(self.hook.read_json_objects(self._audit_prefix(group)))]


def _approval(described: dict[str, Any]) -> dict[str, Any]:
    """
    The recorded decision: who (and their id), when, why (in full) and whether it overrode the gate.

    The metadata keeps the reason cleaned to the API's pattern; ApprovalDescription keeps the
    text as given (``<status> by <who> at <when>: <reason>``), so the reason comes from there.
    """
    props = described.get("CustomerMetadataProperties") or {}
    approval: dict[str, Any] = {k: props[P + k] for k in ("by", "at", "reason") if P + k in props}
    if not approval:
        return approval
    status = str(described.get("ModelApprovalStatus"))
    approval["status"] = status
    text = str(described.get("ApprovalDescription") or "")
    head = f"{status} by "
    marker = f" at {approval.get('at')}: "
    if text.startswith(head) and marker in text:
        who, _, reason = text[len(head):].partition(marker)
        approval["by"], approval["reason"] = who, reason
    if props.get(P + "override") == "true":
        approval["override"] = True
    if props.get(P + "by-id"):
        approval["by_id"] = props[P + "by-id"]
    return approval
