"""
Pipeline events → :class:`Message`, the one shape every channel renders.

Pure functions over the plain dicts the operators already pass through XCom (a registered
version's ``to_dict()``, the deploy result, a task's context values): no Airflow, Slack or AWS
import, so the same message is built in a task, a callback, the CLI or a test. The renderers in
:mod:`.formats` turn a message into Slack Block Kit and an SNS body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Every event a model can subscribe to in ``notifications.events``.
EVENTS = ("training_finished", "awaiting_approval", "deployed", "rejected", "rolled_back", "failure")

#: How many characters of an error message a failure notification carries.
ERROR_SUMMARY_CHARS = 600


@dataclass(frozen=True)
class GateRow:
    """One metric of the gate table, already formatted for display."""

    metric: str
    candidate: str
    production: str
    delta: str
    rules: str  # each rule with its own outcome, e.g. ">= 0.9: pass, delta >= -0.01: FAIL"
    result: str  # the metric's outcome: pass only when every rule passes ("-" when it has no rule)


@dataclass(frozen=True)
class Message:
    """
    One notification, independent of the channel it goes to.

    :param event: one of :data:`EVENTS`.
    :param project: the model's project (an SNS message attribute).
    :param model: the model's name (an SNS message attribute).
    :param title: one line, used as the Slack header and the SNS subject.
    :param summary: one or two sentences saying what happened and what to do.
    :param status: ``success``, ``info``, ``warning`` or ``failure`` (the emoji and colour).
    :param fields: label/value pairs: version, champion, endpoint, DAG, task, ...
    :param gate_passed: the gate's decision, when the message carries a gate table.
    :param gate_rows: the gate table, candidate against production.
    :param confusion_matrix: ``{"labels": [...], "matrix": [[...]]}`` for classifiers.
    :param detail: free text shown preformatted (an error summary).
    :param links: label/URL pairs (Airflow run, approval, log, SageMaker console).
    """

    event: str
    project: str
    model: str
    title: str
    summary: str
    status: str = "info"
    fields: tuple[tuple[str, str], ...] = ()
    gate_passed: bool | None = None
    gate_rows: tuple[GateRow, ...] = ()
    confusion_matrix: Mapping[str, Any] | None = None
    detail: str | None = None
    links: tuple[tuple[str, str], ...] = field(default=())

    @property
    def version(self) -> str | None:
        return dict(self.fields).get("Version")


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _delta(value: Any) -> str:
    return "-" if value is None else f"{value:+.4f}"


def gate_rows(gate: Mapping[str, Any]) -> tuple[GateRow, ...]:
    """The gate result of :func:`airflow_provider_mlops.gate.evaluate_gate` as display rows."""
    rows = []
    for row in gate.get("rows") or ():
        rules = ", ".join(
            f"{c['rule']}: {'pass' if c.get('passed') else 'FAIL'}" + (f" ({c['detail']})" if c.get("detail") else "")
            for c in row.get("checks", ())
        )
        rows.append(
            GateRow(
                metric=row["metric"] + (" *" if row.get("primary") else ""),
                candidate=_number(row.get("candidate")),
                production=_number(row.get("champion")),
                delta=_delta(row.get("delta")),
                rules=rules or "-",
                result=("pass" if row.get("passed") else "FAIL") if row.get("checks") else "-",
            )
        )
    return tuple(rows)


def _links(**named: str | None) -> tuple[tuple[str, str], ...]:
    return tuple((label, url) for label, url in named.items() if url)


def _champion(gate: Mapping[str, Any]) -> str:
    return gate.get("champion_version") or "none (first model)"


def training_finished(project: str, model: str, version: Mapping[str, Any], *, links: Mapping[str, str | None]) -> Message:
    """
    Training, evaluation and the gate finished, and the candidate is registered.

    :param version: the registered version's record (``ModelVersion.to_dict()``).
    :param links: ``{"Airflow run": url, "SageMaker": url, ...}``; empty values are dropped.
    """
    gate = version.get("gate") or {}
    passed = bool(gate.get("passed"))
    semver = version.get("semver", "?")
    if passed:
        summary = f"Candidate {semver} passed the gate and awaits approval to deploy."
    else:
        summary = f"Candidate {semver} FAILED the gate and is registered as Rejected; production is unchanged."
    return Message(
        event="training_finished",
        project=project,
        model=model,
        title=f"{project}/{model} {semver}: training finished, gate {'PASSED' if passed else 'FAILED'}",
        summary=summary,
        status="success" if passed else "warning",
        fields=(
            ("Model", f"{project}/{model}"),
            ("Version", semver),
            ("Champion", _champion(gate)),
            ("Status", str(version.get("status", "?"))),
            ("Requested by", str((version.get("lineage") or {}).get("requested_by") or "-")),
        ),
        gate_passed=passed,
        gate_rows=gate_rows(gate),
        confusion_matrix=(version.get("metrics") or {}).get("confusion_matrix"),
        links=_links(**links),
    )


def awaiting_approval(
    project: str, model: str, version: Mapping[str, Any], *, endpoint: str, links: Mapping[str, str | None]
) -> Message:
    """A deploy waits for a person to approve it in the Airflow UI (Required Actions)."""
    gate = version.get("gate") or {}
    semver = version.get("semver", "?")
    return Message(
        event="awaiting_approval",
        project=project,
        model=model,
        title=f"{project}/{model} {semver}: deploy to {endpoint} awaits approval",
        summary=f"Approve or reject deploying {semver} to endpoint {endpoint} in the Airflow UI (Required Actions).",
        status="info",
        fields=(
            ("Model", f"{project}/{model}"),
            ("Version", semver),
            ("Champion", _champion(gate)),
            ("Endpoint", endpoint),
        ),
        gate_passed=gate.get("passed") if gate else None,
        gate_rows=gate_rows(gate),
        confusion_matrix=(version.get("metrics") or {}).get("confusion_matrix"),
        links=_links(**links),
    )


def deployed(
    project: str,
    model: str,
    deployment: Mapping[str, Any],
    *,
    strategy: str,
    backend: str,
    links: Mapping[str, str | None],
) -> Message:
    """
    A version passed its smoke test and is in production.

    :param deployment: the deploy step's result: ``endpoint``, ``version``, ``previous_version``, ``url``.
    """
    semver = deployment.get("version", "?")
    endpoint = deployment.get("endpoint", "?")
    previous = deployment.get("previous_version")
    replaced = f"it replaced {previous}" if previous else "it is the first version on this endpoint"
    return Message(
        event="deployed",
        project=project,
        model=model,
        title=f"{project}/{model} {semver}: deployed to {endpoint}",
        summary=f"{semver} serves endpoint {endpoint} ({strategy}) and is the production model; {replaced}.",
        status="success",
        fields=(
            ("Model", f"{project}/{model}"),
            ("Version", semver),
            ("Previous", previous or "none"),
            ("Endpoint", endpoint),
            ("Strategy", strategy),
            ("Serving", backend),
        ),
        links=_links(**links),
    )


def rejected(
    project: str, model: str, version: Mapping[str, Any], *, by: str, reason: str, links: Mapping[str, str | None]
) -> Message:
    """A person rejected the deploy; the version is recorded as Rejected."""
    semver = version.get("semver", "?")
    return Message(
        event="rejected",
        project=project,
        model=model,
        title=f"{project}/{model} {semver}: deploy rejected by {by}",
        summary=f"{by} rejected deploying {semver} ({reason}). The version is Rejected; production is unchanged.",
        status="warning",
        fields=(("Model", f"{project}/{model}"), ("Version", semver), ("Rejected by", by)),
        links=_links(**links),
    )


def rolled_back(
    project: str,
    model: str,
    *,
    endpoint: str,
    failed_version: str,
    restored_version: str,
    reason: str,
    links: Mapping[str, str | None],
) -> Message:
    """A deployed version failed its smoke test and the previous one was put back."""
    return Message(
        event="rolled_back",
        project=project,
        model=model,
        title=f"{project}/{model} {failed_version}: rolled back to {restored_version} on {endpoint}",
        summary=f"{failed_version} failed its smoke test on {endpoint}; {restored_version} serves again.",
        status="failure",
        fields=(
            ("Model", f"{project}/{model}"),
            ("Version", failed_version),
            ("Restored", restored_version),
            ("Endpoint", endpoint),
        ),
        detail=summarise_error(reason),
        links=_links(**links),
    )


def task_failure(
    project: str,
    model: str,
    *,
    dag_id: str,
    task_id: str,
    try_number: int | None,
    max_tries: int | None,
    error: str,
    links: Mapping[str, str | None],
) -> Message:
    """A task of one of the model's DAGs failed for good (its retries are spent)."""
    tries = f"{try_number}" + (f" of {max_tries + 1}" if max_tries is not None else "") if try_number else "?"
    return Message(
        event="failure",
        project=project,
        model=model,
        title=f"{project}/{model}: task {task_id} failed in {dag_id}",
        summary=f"Task {task_id} of {dag_id} failed on try {tries}. See the log for the full error.",
        status="failure",
        fields=(("Model", f"{project}/{model}"), ("DAG", dag_id), ("Task", task_id), ("Try", tries)),
        detail=summarise_error(error),
        links=_links(**links),
    )


def ci_job_failure(
    project: str,
    model: str,
    *,
    pipeline_url: str,
    job: str,
    stage: str,
    version: str | None = None,
    commit: str | None = None,
    source: str | None = None,
    links: Mapping[str, str | None],
) -> Message:
    """
    A job of the model's GitLab CI pipeline failed: the ``failure`` event, as a failed task sends it.

    :param pipeline_url: the pipeline's page (it is also the first link).
    :param job: the failed job's name; ``stage`` its stage.
    :param version: the image version the pipeline builds, when it got that far.
    :param source: the model repository's GitLab path.
    """
    fields = [("Model", f"{project}/{model}"), ("Pipeline", pipeline_url), ("Job", job), ("Stage", stage)]
    fields += [(label, value) for label, value in (
        ("Version", version), ("Commit", commit[:12] if commit else None), ("Repository", source)) if value]
    return Message(
        event="failure",
        project=project,
        model=model,
        title=f"{project}/{model}: CI job {job} failed in stage {stage}",
        summary=f"Job {job} ({stage}) of the GitLab pipeline {pipeline_url} failed; the jobs after it did not run. "
        "See the job log.",
        status="failure",
        fields=tuple(fields),
        links=_links(**links),
    )


def summarise_error(error: str) -> str:
    """The first :data:`ERROR_SUMMARY_CHARS` characters of an error, on whole lines where possible."""
    text = error.strip()
    if len(text) <= ERROR_SUMMARY_CHARS:
        return text
    return text[: ERROR_SUMMARY_CHARS - 1].rstrip() + "…"
