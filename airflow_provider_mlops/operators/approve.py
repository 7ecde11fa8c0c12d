"""The deploy DAG's approval step: a person in the Airflow UI (or ``mlops approve``), or ``approval: auto``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_provider_mlops.approvals import (
    AUTO_ACTOR,
    EXPIRED_REASON,
    EXPIRY_ACTOR,
    Person,
    assigned_users,
    check_decision,
    deploy_refusal,
    gate_passed,
)
from airflow_provider_mlops.exceptions import ApprovalConflictError, DeployRefusedError
from airflow_provider_mlops.operators.base import MlopsBaseOperator, MlopsConfigMixin
from airflow_provider_mlops.operators.deploy import RESOLVE_TASK
from airflow_provider_mlops.registry.base import APPROVED, REJECTED, is_decided

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_mlops.registry.base import ModelVersion

#: The HITL form's one field; ``mlops approve|reject --reason`` sends the same field.
REASON_PARAM = "reason"
#: What a Reject from the form records when its reason field was left empty.
NO_REASON_GIVEN = "no reason given"


def reason_param() -> dict[str, Any]:
    """The HITL ``params``: a free-text reason, recorded with the decision."""
    from airflow.sdk import Param

    return {
        REASON_PARAM: Param(
            None,
            type=["null", "string"],
            maxLength=2000,
            title="Reason",
            description="Why you decide so; it is recorded with the decision and in the audit log. Required to "
                        "reject, and to approve a version that failed its gate (an override).",
        )
    }


class MlopsApprovalOperator(MlopsConfigMixin, ApprovalOperator):
    """
    Wait for a person to approve the deploy in the Airflow UI (Required Actions) or the CLI.

    The body shows the gate table, and the form a reason field (HITL ``params``). Only the
    people in ``deployment.approvers`` may answer (HITL ``assigned_users``, enforced by the
    api-server), and for a version that failed its gate only those in
    ``deployment.gate_override_by`` (an override, which needs a reason). The answer is checked
    again here against the same rules, then recorded on the version compare-and-set, with who,
    when and the reason given; Reject skips the rest of the run, which ends cleanly. With
    ``deployment.approval_timeout`` an unanswered request is rejected as ``expired`` (HITL's own
    timeout and defaults) and notified. A version already approved by an allowed person (``mlops
    approve --registry-only`` before the run) passes without waiting.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :param assigned_users: who may answer, as HITL users (default: ``deployment.approvers``;
        re-read from the config when the task runs).
    :param response_timeout_seconds: ``deployment.approval_timeout`` in seconds (re-read when
        the task runs).
    """

    template_fields: Sequence[str] = ("body", "subject")

    def __init__(
        self,
        *,
        config_path: str,
        config_root: str | None = None,
        assigned_users: list[dict[str, str]] | None = None,
        response_timeout_seconds: int | None = None,
        **kwargs: Any,
    ) -> None:
        resolved = f"ti.xcom_pull(task_ids='{RESOLVE_TASK}')"
        kwargs.setdefault("subject", f"Deploy {{{{ {resolved}['group'] }}}} version {{{{ {resolved}['semver'] }}}}")
        kwargs.setdefault("body", f"{{{{ {resolved}['approval_body'] }}}}")
        kwargs.setdefault("params", reason_param())
        if assigned_users:
            kwargs.setdefault("assigned_users", assigned_users)
        if response_timeout_seconds:
            kwargs.setdefault("response_timeout", timedelta(seconds=response_timeout_seconds))
            kwargs.setdefault("defaults", [self.REJECT])
        from airflow_provider_mlops.notifications.callbacks import MlopsApprovalNotifier

        kwargs.setdefault("notifiers", [MlopsApprovalNotifier(config_path=config_path, config_root=config_root)])
        super().__init__(**kwargs)
        self.config_path = config_path
        self.config_root = config_root

    def _current(self, context: Context) -> ModelVersion:
        resolved = context["ti"].xcom_pull(task_ids=RESOLVE_TASK)
        return self.registry.get(self.group, resolved["semver"])

    def execute(self, context: Context) -> Any:
        version = self._current(context)
        deployment = self.loaded.config.deployment
        if is_decided(version):
            refusal = deploy_refusal(version, deployment)
            if refusal:
                raise DeployRefusedError(refusal)
            self.log.info("Version %s was already approved by %s at %s", version.semver, version.approval.get("by"),
                          version.approval.get("at"))
            return {"chosen_options": [self.APPROVE], "responded_by": version.approval.get("by"), "preapproved": True,
                    "status": APPROVED}
        refusal = deploy_refusal(version, deployment, approved=False)
        if refusal:
            raise DeployRefusedError(refusal)
        # The config the run reads decides who may answer, and for how long.
        self.assigned_users = assigned_users(deployment, version)
        seconds = deployment.approval_timeout_seconds
        self.response_timeout = timedelta(seconds=seconds) if seconds else None
        self.defaults = [self.REJECT] if seconds else None
        self.log.info("Waiting for %s of %s %s%s", "an override" if not gate_passed(version) else "a decision",
                      version.group, version.semver,
                      f" from {', '.join(u['name'] for u in self.assigned_users)}" if self.assigned_users else "")
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        if "error" in event:
            return super().execute_complete(context, event)
        version = self._current(context)
        deployment = self.loaded.config.deployment
        reason = str((event.get("params_input") or {}).get(REASON_PARAM) or "").strip()
        override = False
        if event.get("timedout"):
            person, status, reason = Person.named(EXPIRY_ACTOR), REJECTED, EXPIRED_REASON
        else:
            person = Person.from_hitl(event.get("responded_by_user"))
            approve = (event.get("chosen_options") or [None])[0] == self.APPROVE
            override = approve and not gate_passed(version)
            if not approve and not reason:
                # The form cannot require a field for one button only; the Reject itself stands.
                reason = NO_REASON_GIVEN
            check_decision(deployment, version, person, approve=approve, override=override, reason=reason)
            status = APPROVED if approve else REJECTED
        # Record first: a reject skips downstream tasks inside the parent's execute_complete.
        try:
            self.registry.set_approval(self.group, version.semver, status, by=person.name, by_id=person.id,
                                       reason=reason, override=override)
        except ApprovalConflictError:
            self.log.error("%s %s was decided elsewhere first; this answer (%s by %s) is not recorded",
                           version.group, version.semver, status, person.name)
            raise
        self.log.info("%s %s %s by %s: %s", version.semver, status, "(override)" if override else "", person.name, reason)
        if status == REJECTED:
            from airflow_provider_mlops.notifications import events

            events.rejected(self.loaded, context, version.to_dict(), by=person.name, reason=reason, log=self.log)
        result = super().execute_complete(context, event)
        return {"chosen_options": result["chosen_options"], "responded_by": person.name, "status": status,
                "reason": reason, "override": override}


class MlopsAutoApproveOperator(MlopsBaseOperator):
    """
    ``approval: auto``: record the approval on the version without waiting for a person.

    Only a version that passed its gate is approved automatically: an override is always a
    person's decision. A version someone else decided first is taken as decided.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        resolved = context["ti"].xcom_pull(task_ids=RESOLVE_TASK)
        current = self.registry.get(self.group, resolved["semver"])
        deployment = self.loaded.config.deployment
        if not is_decided(current) and gate_passed(current):
            try:
                current = self.registry.set_approval(self.group, current.semver, APPROVED, by=AUTO_ACTOR,
                                                     reason="approval: auto in mlops.yaml")
            except ApprovalConflictError:
                current = self.registry.get(self.group, current.semver)
        refusal = deploy_refusal(current, deployment)
        if refusal:
            raise DeployRefusedError(refusal)
        return {"status": current.status, "responded_by": current.approval.get("by")}
