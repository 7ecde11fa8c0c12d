"""The local registry: race-free semver allocation, idempotent registration, approvals, promotion."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from airflow_provider_mlops.exceptions import RegistryError, VersionNotFoundError
from airflow_provider_mlops.registry.base import APPROVED, PENDING, REJECTED
from airflow_provider_mlops.registry.local import LocalModelRegistry

GROUP = "demo-model"


def _register(home: str, index: int) -> str:
    registry = LocalModelRegistry(home)
    version = registry.register(
        GROUP, "1.4", idempotency_key=f"run-{index}", artifact_uri=f"/m/{index}", metrics={"f1": 0.9}, gate={}, lineage={}
    )
    return version.semver


def test_twenty_concurrent_registrations_get_twenty_consecutive_versions(tmp_path: Path) -> None:
    LocalModelRegistry(tmp_path)  # create the schema once, as the first task would
    with multiprocessing.get_context("spawn").Pool(20) as pool:
        semvers = pool.starmap(_register, [(str(tmp_path), i) for i in range(20)])
    assert len(set(semvers)) == 20
    assert sorted(int(v.split(".")[2]) for v in semvers) == list(range(20))
    assert all(v.startswith("1.4.") for v in semvers)


def test_series_are_numbered_separately(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    kwargs = {"artifact_uri": "/m", "metrics": {}, "gate": {}, "lineage": {}}
    assert registry.register(GROUP, "1.0", idempotency_key="a", **kwargs).semver == "1.0.0"
    assert registry.register(GROUP, "1.0", idempotency_key="b", **kwargs).semver == "1.0.1"
    assert registry.register(GROUP, "1.1", idempotency_key="c", **kwargs).semver == "1.1.0"
    assert registry.register("other-model", "1.0", idempotency_key="a", **kwargs).semver == "1.0.0"


def test_a_retried_registration_returns_the_same_version(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    kwargs = {"artifact_uri": "/m", "metrics": {}, "gate": {}, "lineage": {}}
    first = registry.register(GROUP, "1.0", idempotency_key="dag/run-1", **kwargs)
    again = registry.register(GROUP, "1.0", idempotency_key="dag/run-1", **kwargs)
    assert again == first
    assert len(registry.list_versions(GROUP)) == 1


def test_approval_and_promotion_are_recorded(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    kwargs = {"artifact_uri": "/m", "metrics": {"f1": 0.9}, "gate": {"passed": True}, "lineage": {"commit": "abc1234"}}
    v0 = registry.register(GROUP, "1.0", idempotency_key="a", **kwargs)
    v1 = registry.register(GROUP, "1.0", idempotency_key="b", **kwargs)
    assert v0.status == PENDING
    with pytest.raises(RegistryError, match="not Approved"):
        registry.promote(GROUP, v0.semver, deployment={"endpoint": "e"})
    approved = registry.set_approval(GROUP, v0.semver, APPROVED, by="alice", reason="looks good")
    assert approved.approval["by"] == "alice" and approved.approval["at"] and approved.approval["reason"] == "looks good"
    registry.promote(GROUP, v0.semver, deployment={"endpoint": "e"})
    assert registry.production(GROUP).semver == "1.0.0"
    registry.set_approval(GROUP, v1.semver, APPROVED, by="bob")
    registry.promote(GROUP, v1.semver, deployment={"endpoint": "e"})
    assert registry.production(GROUP).semver == "1.0.1"
    assert registry.get(GROUP, "1.0.0").stage == "archived"
    v2 = registry.register(GROUP, "1.0", idempotency_key="c", **kwargs)
    rejected = registry.set_approval(GROUP, v2.semver, REJECTED, by="carol", reason="drift")
    assert rejected.status == REJECTED
    kinds = [e["kind"] for e in registry.audit_log(GROUP)]
    assert kinds.count("registered") == 3 and kinds.count("promoted") == 2
    assert kinds.count("approved") == 2 and kinds.count("rejected") == 1


def test_unknown_version_error_says_how_to_list(tmp_path: Path) -> None:
    with pytest.raises(VersionNotFoundError, match="mlops versions demo/model"):
        LocalModelRegistry(tmp_path).get(GROUP, "9.9.9")
