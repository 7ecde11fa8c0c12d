"""The model-registry protocol, and the model version record every registry returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
APPROVAL_STATUSES = (PENDING, APPROVED, REJECTED)


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

    def set_approval(self, group: str, semver: str, status: str, *, by: str, reason: str = "") -> ModelVersion: ...

    def promote(self, group: str, semver: str, *, deployment: dict[str, Any]) -> ModelVersion: ...
