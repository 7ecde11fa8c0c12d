"""
Approval governance on the local registry (issue 12): a version reaches production only with a
passing gate or an override recorded by an allowed person, with a reason; decisions are
compare-and-set; only the configured people decide; every decision, deploy, rollback and
promotion is an audit event. The operators run for real on a copy of the breast-cancer example.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException
from decision_workers import decide
from task_fakes import FakeTaskInstance, context

from airflow_provider_mlops import runtime
from airflow_provider_mlops.approvals import Person, assigned_users, deploy_refusal
from airflow_provider_mlops.cli import main
from airflow_provider_mlops.exceptions import ApprovalRefusedError, DeployRefusedError
from airflow_provider_mlops.factory.plan import plan_model
from airflow_provider_mlops.operators import (
    MlopsApprovalOperator,
    MlopsAutoApproveOperator,
    MlopsDeployOperator,
    MlopsPromoteOperator,
    MlopsResolveVersionOperator,
)
from airflow_provider_mlops.registry.base import APPROVED, PENDING, REJECTED
from airflow_provider_mlops.registry.local import LocalModelRegistry

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "breast-cancer"
GROUP = "demo--breast-cancer"
DEPLOY_DAG = "mlops__demo__breast-cancer__deploy"
PASSED = {"passed": True, "rows": [{"metric": "f1", "candidate": 0.97, "passed": True, "checks": []}]}
FAILED = {"passed": False, "rows": [{"metric": "f1", "candidate": 0.71, "passed": False,
                                     "checks": [{"rule": ">= 0.9", "passed": False}]}]}


def _model(tmp_path: Path, **deployment: Any) -> Path:
    """A copy of the breast-cancer example whose ``deployment`` block gets ``deployment``."""
    folder = tmp_path / "breast-cancer"
    if not folder.exists():
        shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = folder / "mlops.yaml"
    data = yaml.safe_load((EXAMPLE / "mlops.yaml").read_text())
    data["deployment"].update(deployment)
    config.write_text(yaml.safe_dump(data))
    return config


def _register(config: Path, *, passed: bool, key: str = "run-1", requested_by: str = "gitlab:alice:pipeline:7") -> str:
    """Register a version as the train DAG's register step does: a failed gate is Rejected by the gate."""
    registry = runtime.registry_for(runtime.config_at(str(config)))
    version = registry.register(
        GROUP, "1.0", idempotency_key=key, artifact_uri="/m", metrics={"f1": 0.9}, gate=PASSED if passed else FAILED,
        lineage={"dag_id": "mlops__demo__breast-cancer__train", "run_id": key, "requested_by": requested_by},
        status=PENDING if passed else REJECTED,
    )
    if not passed:
        registry.set_approval(GROUP, version.semver, REJECTED, by="gate", reason="failed the evaluation gate")
    return version.semver


def _registry(config: Path) -> Any:
    return runtime.registry_for(runtime.config_at(str(config)))


def _cli(config: Path, *argv: str) -> int:
    command, *rest = argv
    return main([command, "demo/breast-cancer", *rest, "--config", str(config)])


def _resolved(config: Path, semver: str) -> FakeTaskInstance:
    ti = FakeTaskInstance(DEPLOY_DAG, "approve")
    version = _registry(config).get(GROUP, semver)
    ti.xcoms[("resolve_version", "return_value")] = {**version.to_dict(), "approval_body": ""}
    return ti


@pytest.fixture
def config(tmp_path: Path, mlops_home: Path) -> Path:
    return _model(tmp_path)


# --- the gate bypass (issue 12, "A gate-failed version can be approved and deployed") ---------


def test_approving_a_gate_failed_version_without_an_override_is_refused(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    semver = _register(config, passed=False)
    assert _cli(config, "approve", semver, "--by", "nobody-checked") == 1
    err = capsys.readouterr().err
    assert "failed its evaluation gate (f1): approving it is an override" in err
    version = _registry(config).get(GROUP, semver)
    assert version.status == REJECTED and version.approval["by"] == "gate"


def test_a_status_flipped_elsewhere_does_not_make_a_gate_failed_version_deployable(config: Path, mlops_home: Path) -> None:
    semver = _register(config, passed=False)
    # What the old `mlops approve` did, or anyone with write access to the registry file.
    import sqlite3

    with sqlite3.connect(mlops_home / "registry.db") as conn:
        conn.execute("UPDATE model_versions SET status = 'Approved', approval = ? WHERE grp = ?",
                     (json.dumps({"status": APPROVED, "by": "mallory", "at": "now", "reason": ""}), GROUP))
    ti = _resolved(config, semver)
    ti.xcoms[("deploy", "return_value")] = {"version": semver, "endpoint": GROUP, "url": "http://x"}
    for operator in (MlopsResolveVersionOperator(task_id="resolve_version", config_path=str(config)),
                     MlopsApprovalOperator(task_id="approve", config_path=str(config)),
                     MlopsDeployOperator(task_id="deploy", config_path=str(config)),
                     MlopsPromoteOperator(task_id="promote", config_path=str(config))):
        with pytest.raises(AirflowFailException) as refused:
            operator.execute(context(ti, {"model_version": semver}))
        assert isinstance(refused.value.__cause__, DeployRefusedError), operator.task_id
        assert "failed its evaluation gate (f1) and no override was recorded" in str(refused.value)
    assert not (mlops_home / "endpoints").exists()


def test_an_override_needs_an_allowed_person_and_a_reason(tmp_path: Path, mlops_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _model(tmp_path, gate_override_by=["carol"])
    semver = _register(config, passed=False)
    assert _cli(config, "approve", semver, "--by", "carol") == 1  # not marked as an override
    assert _cli(config, "approve", semver, "--override-gate", "--by", "dave", "--reason", "x") == 1
    assert _cli(config, "approve", semver, "--override-gate", "--by", "carol") == 1  # no reason
    err = capsys.readouterr().err
    assert "pass --override-gate with --reason" in err and "dave may not override" in err and "needs a reason" in err
    assert _cli(config, "approve", semver, "--override-gate", "--by", "carol", "--reason", "f1 dip is label noise") == 0
    version = _registry(config).get(GROUP, semver)
    assert version.status == APPROVED and version.approval["override"] is True
    assert version.approval["reason"] == "f1 dip is label noise"
    loaded = runtime.config_at(str(config))
    assert deploy_refusal(version, loaded.config.deployment) is None
    # The deploy checks the override against the config it runs with: without carol, it is refused.
    _model(tmp_path)
    refusal = deploy_refusal(version, runtime.config_at(str(config)).config.deployment)
    assert refusal is not None and "carol, who is not in deployment.gate_override_by" in refusal


def test_without_gate_override_by_nobody_may_override(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    semver = _register(config, passed=False)
    assert _cli(config, "approve", semver, "--override-gate", "--by", "root", "--reason", "trust me") == 1
    assert "deployment.gate_override_by is empty: nobody may override it" in capsys.readouterr().err


def test_approval_auto_never_overrides_a_gate(tmp_path: Path, mlops_home: Path) -> None:
    config = _model(tmp_path, approval="auto", gate_override_by=["carol"])
    semver = _register(config, passed=False)
    with pytest.raises(AirflowFailException, match="no override was recorded"):
        MlopsAutoApproveOperator(task_id="approve", config_path=str(config)).execute(context(_resolved(config, semver)))
    assert _registry(config).get(GROUP, semver).status == REJECTED


# --- decisions are compare-and-set -------------------------------------------------------------


def test_fifty_concurrent_decisions_exactly_one_wins(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    registry.register(GROUP, "1.0", idempotency_key="a", artifact_uri="/m", metrics={}, gate=PASSED, lineage={})
    with multiprocessing.get_context("spawn").Pool(50) as pool:
        outcomes = pool.starmap(decide, [(str(tmp_path), GROUP, i) for i in range(50)])
    [winner] = [o for o in outcomes if o.startswith("won")]
    assert outcomes.count("conflict") == 49
    _, status, by = winner.split(":")
    version = registry.get(GROUP, "1.0.0")
    assert (version.status, version.approval["by"]) == (status, by)
    decisions = [e for e in registry.audit_log(GROUP) if e["kind"] in ("approved", "rejected")]
    assert [(e["kind"], e["by"]) for e in decisions] == [("approved" if status == APPROVED else "rejected", by)]


def test_a_second_decision_is_a_conflict_that_names_the_first(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    semver = _register(config, passed=True)
    assert _cli(config, "reject", semver, "--by", "bob", "--reason", "drift in proline feature") == 0
    assert _cli(config, "approve", semver, "--by", "carol") == 1
    err = capsys.readouterr().err
    assert f"{GROUP} {semver} is already Rejected (by bob" in err and "drift in proline feature" in err


# --- who may decide ----------------------------------------------------------------------------


def test_only_approvers_decide_and_a_reject_needs_a_reason(tmp_path: Path, mlops_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _model(tmp_path, approvers=["alice", {"id": "7", "name": "bob"}])
    semver = _register(config, passed=True)
    assert _cli(config, "approve", semver, "--by", "mallory") == 1
    assert _cli(config, "reject", semver, "--by", "alice") == 1
    err = capsys.readouterr().err
    assert "mallory may not approve" in err and "not in deployment.approvers (alice, bob)" in err
    assert "rejecting demo--breast-cancer 1.0.0 needs a reason" in err
    assert _cli(config, "approve", semver, "--by", "bob", "--reason", "reviewed the gate table") == 0
    assert _registry(config).get(GROUP, semver).approval["by"] == "bob"


def test_approvers_are_the_hitl_assigned_users(tmp_path: Path, mlops_home: Path) -> None:
    config = _model(tmp_path, approvers=["alice", {"id": "7", "name": "bob"}], gate_override_by=["carol"],
                    approval_timeout="7d")
    loaded = runtime.config_at(str(config))
    approve = next(t for t in plan_model(loaded)[1].tasks if t.task_id == "approve")
    assert approve.kwargs["assigned_users"] == [{"id": "alice", "name": "alice"}, {"id": "7", "name": "bob"}]
    assert approve.kwargs["response_timeout_seconds"] == 7 * 86400
    operator = MlopsApprovalOperator(task_id="approve", **approve.kwargs)
    assert operator.assigned_users == approve.kwargs["assigned_users"] and operator.defaults == ["Reject"]
    assert list(operator.params) == ["reason"]
    deployment = loaded.config.deployment
    passed = _registry(config).get(GROUP, _register(config, passed=True, key="a"))
    failed = _registry(config).get(GROUP, _register(config, passed=False, key="b"))
    assert assigned_users(deployment, passed) == approve.kwargs["assigned_users"]
    assert assigned_users(deployment, failed) == [{"id": "carol", "name": "carol"}]  # an override: only carol


def test_forbid_self_approval(tmp_path: Path, mlops_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _model(tmp_path, approvers=["alice", "bob"], forbid_self_approval=True)
    semver = _register(config, passed=True, requested_by="gitlab:alice:pipeline:4242")
    assert _cli(config, "approve", semver, "--by", "alice") == 1
    assert "alice requested the training" in capsys.readouterr().err
    version = _registry(config).get(GROUP, semver)
    assert assigned_users(runtime.config_at(str(config)).config.deployment, version) == [{"id": "bob", "name": "bob"}]
    assert _cli(config, "approve", semver, "--by", "bob") == 0


def test_with_airflow_configured_by_is_refused_and_nothing_falls_back(config: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    semver = _register(config, passed=True)
    monkeypatch.setenv("MLOPS_AIRFLOW_API_URL", "http://127.0.0.1:9")
    assert _cli(config, "approve", semver, "--by", "root") == 1
    assert "--by names who decides only without Airflow" in capsys.readouterr().err
    assert _registry(config).get(GROUP, semver).status == PENDING


# --- the approval task: reasons, checks, expiry ---------------------------------------------------


def _event(option: str, user: str | None, reason: str | None, *, timedout: bool = False) -> dict[str, Any]:
    return {"chosen_options": [option], "params_input": {"reason": reason}, "responded_at": datetime.now(UTC),
            "responded_by_user": {"id": user, "name": user} if user else None, "timedout": timedout}


def test_the_reason_given_in_the_form_is_recorded(config: Path) -> None:
    semver = _register(config, passed=True)
    operator = MlopsApprovalOperator(task_id="approve", config_path=str(config))
    result = operator.execute_complete(context(_resolved(config, semver)), _event("Reject", "bob", "drift in proline feature"))
    assert result["status"] == REJECTED
    version = _registry(config).get(GROUP, semver)
    assert (version.approval["by"], version.approval["reason"]) == ("bob", "drift in proline feature")


def test_an_answer_from_someone_not_allowed_is_not_recorded(tmp_path: Path, mlops_home: Path) -> None:
    config = _model(tmp_path, approvers=["alice"])
    semver = _register(config, passed=True)
    operator = MlopsApprovalOperator(task_id="approve", config_path=str(config))
    # The api-server refuses mallory (assigned_users); with simple_auth_manager_all_admins it would not.
    with pytest.raises(AirflowFailException) as refused:
        operator.execute_complete(context(_resolved(config, semver)), _event("Approve", "mallory", None))
    assert isinstance(refused.value.__cause__, ApprovalRefusedError)
    assert _registry(config).get(GROUP, semver).status == PENDING


def test_an_override_in_the_form_needs_a_reason(tmp_path: Path, mlops_home: Path) -> None:
    config = _model(tmp_path, gate_override_by=["carol"])
    semver = _register(config, passed=False)
    operator = MlopsApprovalOperator(task_id="approve", config_path=str(config))
    with pytest.raises(AirflowFailException, match="needs a reason"):
        operator.execute_complete(context(_resolved(config, semver)), _event("Approve", "carol", ""))
    result = operator.execute_complete(context(_resolved(config, semver)), _event("Approve", "carol", "known label noise"))
    assert result["override"] is True and _registry(config).get(GROUP, semver).approval["override"] is True


def test_an_expired_request_is_rejected_as_expired_and_notified(tmp_path: Path, mlops_home: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_mlops.notifications import events

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(events, "rejected", lambda loaded, ctx, version, **kw: sent.append({"semver": version["semver"], **kw}))
    config = _model(tmp_path, approval_timeout="2d")
    semver = _register(config, passed=True)
    operator = MlopsApprovalOperator(task_id="approve", config_path=str(config))
    # What the scheduler's awaiting_input timeout sweep sends: the defaults (Reject), no user.
    result = operator.execute_complete(context(_resolved(config, semver)), _event("Reject", None, None, timedout=True))
    assert result["status"] == REJECTED
    version = _registry(config).get(GROUP, semver)
    assert (version.status, version.approval["by"], version.approval["reason"]) == (REJECTED, "airflow", "expired")
    assert [(s["semver"], s["reason"]) for s in sent] == [(semver, "expired")]


def test_a_preapproval_by_someone_not_allowed_does_not_pass_the_approval_step(tmp_path: Path, mlops_home: Path) -> None:
    config = _model(tmp_path)
    semver = _register(config, passed=True)
    assert _cli(config, "approve", semver, "--by", "mallory", "--registry-only") == 0
    _model(tmp_path, approvers=["alice"])  # the config the deploy runs with
    with pytest.raises(AirflowFailException, match="approved by mallory, who is not in deployment.approvers"):
        MlopsApprovalOperator(task_id="approve", config_path=str(config)).execute(context(_resolved(config, semver)))


# --- the audit log ----------------------------------------------------------------------------------


def test_audit_lists_who_did_what_when_and_why(tmp_path: Path, mlops_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _model(tmp_path, gate_override_by=["carol"])
    good = _register(config, passed=True, key="a")
    bad = _register(config, passed=False, key="b")
    other = _register(config, passed=True, key="c")
    assert _cli(config, "approve", good, "--by", "alice", "--reason", "gate table reviewed") == 0
    assert _cli(config, "approve", bad, "--override-gate", "--by", "carol", "--reason", "label noise") == 0
    assert _cli(config, "reject", other, "--by", "bob", "--reason", "drift") == 0
    ti = _resolved(config, good)
    ti.xcoms[("deploy", "return_value")] = {"version": good, "endpoint": GROUP, "url": "http://127.0.0.1:1"}
    MlopsPromoteOperator(task_id="promote", config_path=str(config)).execute(context(ti, {"requested_by": "gitlab:ci"}))
    capsys.readouterr()
    assert _cli(config, "audit", "--json") == 0
    log = json.loads(capsys.readouterr().out)
    decisions = [(e["kind"], e["version"], e["by"], e.get("reason")) for e in log if e["kind"] != "registered"]
    assert decisions == [
        ("gate_failed", bad, "gate", "failed the evaluation gate"),
        ("approved", good, "alice", "gate table reviewed"),
        ("override", bad, "carol", "label noise"),
        ("rejected", other, "bob", "drift"),
        ("promoted", good, "gitlab:ci", None),
    ]
    assert all(e["at"] for e in log) and log[-1]["endpoint"] == GROUP
    assert _cli(config, "audit") == 0
    table = capsys.readouterr().out
    assert "override" in table and "label noise" in table and "carol" in table


def test_person_matching_uses_ids_and_names() -> None:
    from airflow_provider_mlops.approvals import is_listed, is_requester
    from airflow_provider_mlops.config.models import Approver

    assert is_listed(Person("7", "bob"), [Approver(id="7", name="bob")])
    assert is_listed(Person.named("bob"), [Approver(id="7", name="bob")])  # a record keeps the name
    assert not is_listed(Person.named("mallory"), ["alice", Approver(id="7", name="bob")])
    assert is_requester(Person.named("alice"), "gitlab:alice:pipeline:4242")
    assert not is_requester(Person.named("bob"), "gitlab:alice:pipeline:4242")
    assert Person.from_hitl({"id": "7", "name": "bob"}) == Person("7", "bob")
