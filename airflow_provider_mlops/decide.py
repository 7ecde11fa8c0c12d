"""
``mlops approve | reject`` and ``mlops audit``: decisions on a model version, and their record.

With ``MLOPS_AIRFLOW_API_URL`` set, a decision answers the deploy run that waits for it through
Airflow's HITL REST API, as the Airflow user the credentials prove (``GET /ui/auth/me``), with
the reason in the form's ``reason`` field: the same path as the UI's Required Actions, where
the api-server refuses a user outside the request's ``assigned_users``. When no run waits, the
CLI says so and records nothing; ``--registry-only`` records the decision for a later run,
still as that Airflow user. Without Airflow (local development), the decision goes to the
registry as ``--by``, ``$MLOPS_APPROVER`` or the login name.

Either way the same rules apply first (:mod:`airflow_provider_mlops.approvals`): approvers,
overrides only by ``deployment.gate_override_by`` with a reason, a reason to reject, no
self-approval under ``forbid_self_approval``; and the registry records the decision
compare-and-set, so a version already decided gives a conflict error.

No Airflow import.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.approvals import Person, check_decision, gate_passed
from airflow_provider_mlops.exceptions import (
    ApprovalConflictError,
    ApprovalRefusedError,
    InputError,
    MlopsError,
    VersionNotFoundError,
)
from airflow_provider_mlops.naming import dag_id
from airflow_provider_mlops.registry.base import APPROVED, REJECTED, already_decided_message, is_decided
from airflow_provider_mlops.versioning import SEMVER_RULE, is_semver

if TYPE_CHECKING:
    from airflow_provider_mlops.airflow_api import AirflowClient
    from airflow_provider_mlops.config.loader import LoadedConfig
    from airflow_provider_mlops.registry.base import ModelVersion

API_URL_ENV = "MLOPS_AIRFLOW_API_URL"
#: The approval form's field that carries the reason (the HITL task's ``params``).
REASON_FIELD = "reason"


def decide(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """``mlops approve`` / ``mlops reject`` on ``loaded``'s model; see the module docstring."""
    from airflow_provider_mlops import runtime

    if not is_semver(args.version):
        raise InputError(f"version {args.version!r} must be {SEMVER_RULE}")
    approve = args.command == "approve"
    override = bool(getattr(args, "override_gate", False))
    reason = (args.reason or "").strip()
    status = APPROVED if approve else REJECTED
    registry = runtime.registry_for(loaded)
    group = runtime.group_of(loaded)
    try:
        version = registry.get(group, args.version)
    except VersionNotFoundError:
        # Named by PROJECT/MODEL, never split back from the group (an old "a-b-c" group splits two ways).
        ref = f"{loaded.config.project}/{loaded.config.model}"
        known = ", ".join(v.semver for v in registry.list_versions(group)) or "none yet"
        raise VersionNotFoundError(
            f"{ref} (registry group {group}) has no version {args.version} (versions: {known}); "
            f"run 'mlops versions {ref}' to see them"
        ) from None
    client = None
    if os.environ.get(API_URL_ENV):
        if args.by:
            raise InputError(
                f"--by names who decides only without Airflow: with {API_URL_ENV} set you decide as the Airflow "
                "user you log in as (MLOPS_AIRFLOW_USERNAME and MLOPS_AIRFLOW_PASSWORD, or MLOPS_AIRFLOW_TOKEN)"
            )
        from airflow_provider_mlops.airflow_api import AirflowClient

        client = AirflowClient.from_env()
        person = Person(*client.whoami())
    else:
        person = Person.named(args.by or os.environ.get("MLOPS_APPROVER") or getpass.getuser())
    if is_decided(version):
        raise ApprovalConflictError(already_decided_message(version, status))
    check_decision(loaded.config.deployment, version, person, approve=approve, override=override, reason=reason)
    what = "override of the gate of" if override else ("approval of" if approve else "rejection of")
    if client is not None and not args.registry_only:
        return _answer_in_airflow(client, loaded, version, person, approve=approve, reason=reason, what=what)
    updated = registry.set_approval(group, version.semver, status, by=person.name, by_id=person.id, reason=reason,
                                    override=override)
    print(f"{group} {version.semver}: {updated.status}{' (gate override)' if override else ''} by {person.name} "
          f"at {updated.approval['at']}" + (f": {reason}" if reason else ""))
    return 0


def _answer_in_airflow(
    client: AirflowClient, loaded: LoadedConfig, version: ModelVersion, person: Person, *, approve: bool, reason: str,
    what: str,
) -> int:
    """Answer the deploy run that waits for ``version``; nothing is recorded when none waits."""
    from airflow_provider_mlops.airflow_api import AirflowApiError

    cfg = loaded.config
    deploy_dag = dag_id(cfg.project, cfg.model, "deploy")
    pending = _pending_request(client, deploy_dag, version.semver)
    if pending is None:
        raise MlopsError(
            f"no deploy run of {cfg.project}/{cfg.model} waits for approval of {version.semver} in Airflow at "
            f"{client.base_url}, so nothing was recorded. Start a deploy run with "
            f'{{"model_version": "{version.semver}"}} and run this again, or record the {what} {version.semver} '
            f"for a later run with --registry-only (recorded as {person.name})"
        )
    ti = pending.get("task_instance", {})
    _wait_awaiting_input(client, deploy_dag, ti)
    option = "Approve" if approve else "Reject"
    try:
        client.respond(deploy_dag, ti["dag_run_id"], ti["task_id"], option, ti.get("map_index", -1),
                       params_input={REASON_FIELD: reason or None})
    except AirflowApiError as exc:
        if exc.status == 403:
            raise ApprovalRefusedError(
                f"Airflow refused {person.name}'s answer to {deploy_dag} run {ti['dag_run_id']}: not one of the "
                f"request's assigned users (deployment.approvers, or deployment.gate_override_by for a version "
                f"that failed its gate). Airflow said: {exc.body[:300]}"
            ) from None
        if exc.status == 409:
            raise ApprovalConflictError(
                f"{deploy_dag} run {ti['dag_run_id']} was answered already; the first answer stands"
            ) from None
        raise
    gate = "" if gate_passed(version) else " (gate override)"
    done = APPROVED if approve else REJECTED  # "Approved" / "Rejected", never the option name plus "d"
    print(f"{done} {version.group} {version.semver}{gate} in Airflow run {ti['dag_run_id']} as {person.name}"
          + (f": {reason}" if reason else ""))
    return 0


def _pending_request(client: AirflowClient, deploy_dag: str, semver: str) -> dict[str, Any] | None:
    """The HITL request of ``deploy_dag`` whose subject names ``semver`` (and not ``1.0.10`` for ``1.0.1``)."""
    for pending in client.pending_approvals(deploy_dag):
        if re.search(rf"(?<![\d.]){re.escape(semver)}(?![\d.]*\d)", pending.get("subject") or ""):
            return pending
    return None


def _wait_awaiting_input(client: Any, dag: str, ti: dict[str, Any], timeout: float = 30.0) -> None:
    """Answer only once the task is parked: a response in the instant before that can be lost."""
    from urllib.parse import quote

    path = f"/api/v2/dags/{quote(dag)}/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/{quote(ti['task_id'])}"
    deadline = time.monotonic() + timeout
    while client.request("GET", path).get("state") != "awaiting_input":
        if time.monotonic() > deadline:
            raise MlopsError(f"task {ti['task_id']} of {dag} run {ti['dag_run_id']} did not reach awaiting_input in {timeout:.0f}s")
        time.sleep(0.3)


def audit(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """``mlops audit``: every decision, deploy, rollback and promotion of the model, oldest first."""
    from airflow_provider_mlops import runtime

    group = runtime.group_of(loaded)
    events = runtime.registry_for(loaded).audit_log(group)
    if args.json:
        print(json.dumps(events, indent=2, sort_keys=True))
        return 0
    cfg = loaded.config
    if not events:
        print(f"(no events of {cfg.project}/{cfg.model} yet)")
        return 0
    print(f"{'at':<30} {'event':<12} {'version':<9} {'by':<20} {'endpoint':<24} why")
    for event in events:
        print(f"{event.get('at', ''):<30} {event.get('kind', ''):<12} {event.get('version') or '-':<9} "
              f"{event.get('by') or '-':<20} {event.get('endpoint') or '-':<24} {event.get('reason') or ''}")
    return 0
