"""
Who may decide a deploy, and which versions may be deployed: the rules every path checks.

- A version is **deployable** when it is Approved and its gate passed, or when a person in
  ``deployment.gate_override_by`` approved it as an **override**, with a reason. The deploy
  DAG's ``resolve_version``, ``approve``, ``deploy`` and ``promote`` steps all check this on the
  registry record itself, so flipping a status elsewhere cannot make a version deployable.
- A version is **undecided** until a person (or ``approval: auto``, or an expired request)
  decides it. A gate failure is recorded as ``Rejected by gate``: that is not a decision, and a
  person in ``deployment.gate_override_by`` may still override it. The registries record
  decisions compare-and-set: the first one wins, any other gets ``ApprovalConflictError``.
- **Who decides**: ``deployment.approvers`` (empty: anyone Airflow lets answer), and for an
  override ``deployment.gate_override_by`` (empty: no overrides). ``forbid_self_approval``
  refuses the person or pipeline that requested the version's training. A reject and an
  override need a reason.

The Airflow approval task, ``mlops approve``/``reject`` and the deploy steps share these
functions. Pure: no Airflow, boto3 or network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from airflow_provider_mlops.exceptions import ApprovalRefusedError
from airflow_provider_mlops.registry.base import APPROVED, REJECTED, ModelVersion, is_decided

if TYPE_CHECKING:
    from airflow_provider_mlops.config.models import ApproverRef, Deployment

#: Who records ``approval: auto``.
AUTO_ACTOR = "auto"
#: Who records an approval request that timed out (``deployment.approval_timeout``), and why.
EXPIRY_ACTOR = "airflow"
EXPIRED_REASON = "expired"


class HitlUser(TypedDict):
    """A HITL ``assigned_users`` entry (the shape of ``airflow.sdk.execution_time.hitl.HITLUser``)."""

    id: str
    name: str


@dataclass(frozen=True)
class Person:
    """
    Someone deciding: the id their auth manager gives (HITL ``assigned_users`` compare it) and a name.

    The simple auth manager's id is the user name; FAB's is a number.
    """

    id: str
    name: str

    @classmethod
    def named(cls, name: str) -> Person:
        return cls(id=name, name=name)

    @classmethod
    def from_hitl(cls, user: dict[str, Any] | None) -> Person:
        user = user or {}
        ident = str(user.get("id") or user.get("name") or "unknown")
        return cls(id=ident, name=str(user.get("name") or ident))


def _ref(entry: ApproverRef) -> tuple[str, str]:
    if isinstance(entry, str):
        return entry, entry
    return entry.id, entry.name


def hitl_users(entries: Iterable[ApproverRef]) -> list[HitlUser]:
    """HITL ``assigned_users``: ``[{"id", "name"}]``, in the order of the config."""
    return [HitlUser(id=ident, name=name) for ident, name in (_ref(e) for e in entries)]


def is_listed(person: Person, entries: Iterable[ApproverRef]) -> bool:
    """True when ``person`` is one of ``entries`` (by id, or by name: a record keeps the name)."""
    for entry in entries:
        ident, name = _ref(entry)
        if person.id == ident or person.name in (ident, name):
            return True
    return False


def is_requester(person: Person, requested_by: str | None) -> bool:
    """
    True when ``person`` requested the training: ``alice``, or a pipeline's ``gitlab:alice:pipeline:42``.

    :param requested_by: the version's lineage ``requested_by``.
    """
    if not requested_by:
        return False
    parts = {requested_by, *requested_by.split(":")}
    return person.id in parts or person.name in parts


def gate_passed(version: ModelVersion) -> bool:
    return version.gate.get("passed") is True


def failed_rules(version: ModelVersion) -> str:
    rows = [str(r.get("metric")) for r in version.gate.get("rows", []) if not r.get("passed")]
    return ", ".join(rows) or ("no gate result recorded" if not version.gate else "failed")


def _who(version: ModelVersion) -> Person:
    approval = version.approval
    name = str(approval.get("by") or "")
    return Person(id=str(approval.get("by_id") or name), name=name)


def override_problem(version: ModelVersion, deployment: Deployment) -> str | None:
    """Why ``version``'s recorded override does not make it deployable; None when it does."""
    approval = version.approval
    if not approval.get("override"):
        return "no override was recorded"
    if not str(approval.get("reason") or "").strip():
        return f"the override by {approval.get('by')} has no reason"
    if not is_listed(_who(version), deployment.gate_override_by):
        return f"the override is by {approval.get('by')}, who is not in deployment.gate_override_by"
    return None


def deploy_refusal(version: ModelVersion, deployment: Deployment, *, approved: bool = True) -> str | None:
    """
    Why ``version`` may not be deployed; None when it may.

    :param version: the registry's record, read just now.
    :param deployment: the config's ``deployment`` block.
    :param approved: also require the decision itself (the deploy and promote steps); False
        before the approval step, which may still decide an undecided version.
    """
    label = f"{version.group} version {version.semver}"
    approval = version.approval
    if version.status == REJECTED and is_decided(version):
        return f"{label} was Rejected by {approval.get('by')} ({approval.get('reason') or 'no reason'}); it can't be deployed"
    if not gate_passed(version):
        gate = f"{label} failed its evaluation gate ({failed_rules(version)})"
        if version.status == APPROVED:
            problem = override_problem(version, deployment)
            if problem:
                return (f"{gate} and {problem}: it can't be deployed. A version that failed its gate is deployed "
                        "only when a person in deployment.gate_override_by approves it with a reason "
                        "(mlops approve --override-gate --reason TEXT)")
        elif approved or not deployment.gate_override_by:
            why = "deployment.gate_override_by is empty, so no override is possible" if not deployment.gate_override_by \
                else "no override was recorded"
            return f"{gate}; {why}. It can't be deployed"
    if not approved:
        return None
    if version.status != APPROVED:
        return f"{label} is {version.status}, not Approved; it can't be deployed"
    if not approval.get("override"):
        who = _who(version)
        if who.name == AUTO_ACTOR and deployment.approval != "auto":
            return f"{label} was approved by 'auto', but deployment.approval is manual: a person must approve it"
        if who.name != AUTO_ACTOR and deployment.approvers and not is_listed(who, deployment.approvers):
            return f"{label} was approved by {who.name}, who is not in deployment.approvers; it can't be deployed"
    if deployment.forbid_self_approval and is_requester(_who(version), version.lineage.get("requested_by")):
        return (f"{label} was approved by {approval.get('by')}, who requested its training, and "
                "deployment.forbid_self_approval is set; another person must approve it")
    return None


def counts_as_passing(version: ModelVersion, deployment: Deployment) -> bool:
    """
    A version a release (or a run naming no version) may pick: its gate passed and nobody rejected
    it, or an allowed person approved it as an override with a reason.
    """
    if deploy_refusal(version, deployment, approved=False) is not None:
        return False
    return gate_passed(version) or version.status == APPROVED


def assigned_users(deployment: Deployment, version: ModelVersion) -> list[HitlUser] | None:
    """
    The HITL ``assigned_users`` of ``version``'s approval request; None when anyone may answer.

    The approvers, or for a version that failed its gate the people who may override it; the
    requester is left out under ``forbid_self_approval``.

    :raises ApprovalRefusedError: nobody is left who may answer.
    """
    override = not gate_passed(version)
    entries = list(deployment.gate_override_by if override else deployment.approvers)
    if not entries:
        return None
    requested_by = version.lineage.get("requested_by")
    users = [u for u in hitl_users(entries)
             if not (deployment.forbid_self_approval and is_requester(Person(u["id"], u["name"]), requested_by))]
    if not users:
        key = "deployment.gate_override_by" if override else "deployment.approvers"
        raise ApprovalRefusedError(
            f"{version.group} {version.semver}: everyone in {key} requested its training ({requested_by}) and "
            "deployment.forbid_self_approval is set, so nobody may decide it; add another person to that list"
        )
    return users


def check_decision(
    deployment: Deployment, version: ModelVersion, person: Person, *, approve: bool, override: bool, reason: str
) -> None:
    """
    Refuse a decision ``person`` may not make.

    :param approve: approve (True) or reject (False).
    :param override: the person asks to approve a version that failed its gate.
    :param reason: the reason given ("" for none).
    :raises ApprovalRefusedError: with what is wrong and how to do it right.
    """
    label = f"{version.group} {version.semver}"
    if not approve:
        if not reason.strip():
            raise ApprovalRefusedError(f"rejecting {label} needs a reason: pass --reason TEXT (it is recorded)")
        allowed = [*deployment.approvers, *deployment.gate_override_by]
        if deployment.approvers and not is_listed(person, allowed):
            raise ApprovalRefusedError(f"{person.name} may not decide {label}: not in deployment.approvers")
        return
    if gate_passed(version):
        if override:
            raise ApprovalRefusedError(f"{label} passed its gate: there is nothing to override; approve it without --override-gate")
        if deployment.approvers and not is_listed(person, deployment.approvers):
            raise ApprovalRefusedError(
                f"{person.name} may not approve {label}: not in deployment.approvers "
                f"({', '.join(u['name'] for u in hitl_users(deployment.approvers))})"
            )
    else:
        if not override:
            raise ApprovalRefusedError(
                f"{label} failed its evaluation gate ({failed_rules(version)}): approving it is an override. "
                "A person in deployment.gate_override_by may pass --override-gate with --reason TEXT"
            )
        if not deployment.gate_override_by:
            raise ApprovalRefusedError(
                f"{label} failed its evaluation gate and deployment.gate_override_by is empty: nobody may override it"
            )
        if not is_listed(person, deployment.gate_override_by):
            raise ApprovalRefusedError(f"{person.name} may not override the gate of {label}: not in deployment.gate_override_by")
        if not reason.strip():
            raise ApprovalRefusedError(f"an override of {label}'s gate needs a reason: pass --reason TEXT (it is recorded)")
    if deployment.forbid_self_approval and is_requester(person, version.lineage.get("requested_by")):
        raise ApprovalRefusedError(
            f"{person.name} requested the training of {label} ({version.lineage.get('requested_by')}), and "
            "deployment.forbid_self_approval is set: another person must approve it"
        )
