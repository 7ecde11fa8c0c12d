"""The model-registry protocol, and the model version record every registry returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from airflow_provider_mlops.exceptions import VersionNotFoundError
from airflow_provider_mlops.naming import model_ref

PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
APPROVAL_STATUSES = (PENDING, APPROVED, REJECTED)
#: Who records a failed gate. Rejected by the gate is not a decision: an override may still follow.
GATE_ACTOR = "gate"

#: The audit log's event kinds: who did what to which version (and endpoint), when and why.
AUDIT_KINDS = ("approved", "rejected", "override", "gate_failed", "deployed", "rolled_back", "promoted")


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version. ``to_dict()`` is small JSON, fit for XCom."""

    group: str
    semver: str
    package_version: int
    status: str
    created_at: str
    artifact_uri: str
    stage: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    approval: dict[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] = field(default_factory=dict)
    arn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_decided(version: ModelVersion) -> bool:
    """True once a person, ``approval: auto`` or an expiry decided; a gate's Rejected is not a decision."""
    if version.status == APPROVED:
        return True
    return version.status == REJECTED and version.approval.get("by") not in (None, "", GATE_ACTOR)


def decision_kind(status: str, by: str, override: bool) -> str:
    """The audit event kind of a recorded decision."""
    if override:
        return "override"
    if status == APPROVED:
        return "approved"
    return "gate_failed" if by == GATE_ACTOR else "rejected"


def already_decided_message(version: ModelVersion, status: str) -> str:
    approval = version.approval
    return (
        f"{version.group} {version.semver} is already {version.status} (by {approval.get('by')} at {approval.get('at')}: "
        f"{approval.get('reason') or 'no reason'}); a decision is final, so this {status} was not recorded. "
        "Train a new version to decide again"
    )


def utcnow_iso() -> str:
    """Now, as the registries record times: ISO 8601 in UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def version_not_found(group: str, semver: str) -> VersionNotFoundError:
    return VersionNotFoundError(f"model {group} has no version {semver}; run 'mlops versions {model_ref(group)}' to list them")


def normalised_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event in the audit log's shape, whatever release wrote it."""
    event = dict(event)
    if "version" not in event and "semver" in event:
        event["version"] = event.pop("semver")
    if event.get("kind") == "approval":  # before decisions had kinds of their own
        event["kind"] = "approved" if event.get("status") == APPROVED else "rejected"
    return event


class ModelRegistry(Protocol):
    """What the operators need from a registry; ``local`` and ``sagemaker`` implement it."""

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
    ) -> ModelVersion: ...

    def get(self, group: str, semver: str) -> ModelVersion: ...

    def list_versions(self, group: str) -> list[ModelVersion]: ...

    def latest(self, group: str) -> ModelVersion | None: ...

    def production(self, group: str) -> ModelVersion | None: ...

    def set_approval(
        self, group: str, semver: str, status: str, *, by: str, reason: str = "", override: bool = False,
        by_id: str | None = None,
    ) -> ModelVersion:
        """
        Record a decision (Approved or Rejected), compare-and-set on the version's state.

        Only an undecided version (Pending, or Rejected by the gate) takes a decision; any other
        raises :class:`~airflow_provider_mlops.exceptions.ApprovalConflictError`, so of two racing
        decisions exactly one is recorded. The decision is also an audit event.
        """
        ...

    def promote(self, group: str, semver: str, *, deployment: dict[str, Any]) -> ModelVersion: ...

    def record_event(self, group: str, kind: str, detail: dict[str, Any]) -> None:
        """Append an audit event (``kind`` from :data:`AUDIT_KINDS`, or a note such as ``retrain_decision``)."""
        ...

    def audit_log(self, group: str) -> list[dict[str, Any]]:
        """Every event of ``group``, oldest first: ``{"at", "kind", "version", "by", "reason", ...}``."""
        ...
