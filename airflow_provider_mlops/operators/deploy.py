"""The deploy DAG's steps: resolve the version, approve, deploy, smoke-test, promote."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_provider_mlops import runtime
from airflow_provider_mlops.exceptions import (
    DeploymentError,
    DeployRefusedError,
    InputError,
    MissingFileError,
    VersionNotFoundError,
)
from airflow_provider_mlops.gate import gate_table_markdown
from airflow_provider_mlops.links.console import MlopsConsoleLink, MlopsLogsLink, push_links
from airflow_provider_mlops.operators.base import MlopsBaseOperator, MlopsConfigMixin
from airflow_provider_mlops.registry.base import APPROVED, PENDING, REJECTED, ModelVersion
from airflow_provider_mlops.registry.releases import Release, release_of, resolve_release, trained_from

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_mlops.serving import ServingBackend

RESOLVE_TASK = "resolve_version"


def _serving(operator: MlopsConfigMixin) -> ServingBackend:
    from airflow_provider_mlops.serving import get_serving

    loaded = operator.loaded
    name = loaded.config.serving_backend
    return get_serving(name, **runtime.backend_kwargs(name, loaded))


class MlopsResolveVersionOperator(MlopsBaseOperator):
    """
    Pick the model version to deploy, from the run conf (``docs/versions.md``).

    - ``model_version``: that model version.
    - ``version`` / ``image`` (and ``commit``): a CI release; the newest model version trained
      from it (its lineage's ``image_version`` or ``image``) whose gate passed and which is not
      Rejected. A release whose versions all failed the gate is refused, naming them.
    - neither: the newest version awaiting deployment.

    Rejected versions are refused with the reason that rejected them. The smoke test's payload
    file is checked here, before anything is deployed.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :return: the version's record, plus ``approval_body`` (Markdown for the approver).
    """

    def execute(self, context: Context) -> dict[str, Any]:
        conf = runtime.parse_conf(runtime.DeployRunConf, context["dag_run"].conf, self.dag_id, self.loaded)
        self._check_payload_file()
        release = Release(version=conf.version, image=conf.image, commit=conf.commit)
        if conf.model_version:
            version = self._model_version(conf.model_version, release)
        elif release:
            version = resolve_release(self.group, self.registry.list_versions(self.group), release)
            self.log.info("Release %s of %s trained model version %s", release.describe(), self.group, version.semver)
        else:
            candidates = [v for v in self.registry.list_versions(self.group) if v.status in (PENDING, APPROVED) and v.stage is None]
            if not candidates:
                raise VersionNotFoundError(
                    f"{self.group} has no version awaiting deployment; train one first, or pass "
                    '{"model_version": "X.Y.Z"} (a model version) or {"version": "X.Y.Z"} (a CI release) '
                    "in the DAG run conf"
                )
            version = candidates[-1]
        if version.status == REJECTED:
            raise DeployRefusedError(
                f"{self.group} version {version.semver} is Rejected ({version.approval.get('reason') or 'no reason'}, "
                f"by {version.approval.get('by')}); it can't be deployed"
            )
        self.log.info("Deploying %s version %s (%s)", self.group, version.semver, version.status)
        return {**version.to_dict(), "approval_body": approval_body(version, self.loaded.config.endpoint_name)}

    def _model_version(self, semver: str, release: Release) -> ModelVersion:
        """An explicit model version; a release given beside it must be the one it was trained from."""
        try:
            version = self.registry.get(self.group, semver)
        except VersionNotFoundError as exc:
            versions = self.registry.list_versions(self.group)
            if any(release_of(v).version == semver for v in versions):
                raise VersionNotFoundError(
                    f"{exc}. {semver} is a release (an image version CI tagged): did you mean "
                    f'{{"version": "{semver}"}}?'
                ) from exc
            raise
        if release and not trained_from(version, release):
            raise InputError(
                f"DAG run conf of {self.dag_id}: model_version {semver} was trained from the release "
                f"{release_of(version).describe()}, not {release.describe()}; pass one of the two"
            )
        return version

    def _check_payload_file(self) -> None:
        payload_file = self.loaded.config.deployment.smoke_test.payload_file
        if payload_file and not Path(self.loaded.resolve(payload_file)).is_file():
            raise MissingFileError(
                f"{self.loaded.path}: deployment.smoke_test.payload_file {payload_file!r} does not exist at "
                f"{self.loaded.resolve(payload_file)}; publish it beside mlops.yaml, or set smoke_test.payload"
            )


def approval_body(version: ModelVersion, endpoint: str) -> str:
    """
    The approver's Markdown: the model version, its gate table and the release it was trained from.

    :param version: the version to deploy.
    :param endpoint: the endpoint it goes to.
    :return: Markdown for the HITL body.
    """
    gate = gate_table_markdown(version.gate) if version.gate.get("rows") else "_no gate result recorded_"
    lineage = version.lineage
    return "\n".join(
        [
            f"### {version.group} {version.semver} → endpoint `{endpoint}`",
            "",
            gate,
            "",
            f"- release (image version): `{lineage.get('image_version') or 'none recorded'}`",
            f"- image: `{lineage.get('image')}`",
            f"- commit: `{lineage.get('commit')}`",
            f"- data: `{json.dumps(lineage.get('data'))}`",
            f"- trained by run `{lineage.get('run_id')}`",
        ]
    )


class MlopsApprovalOperator(MlopsConfigMixin, ApprovalOperator):
    """
    Wait for a person to approve the deploy in the Airflow UI (Required Actions) or the CLI.

    The body shows the gate table. Approve and Reject are recorded on the model version with
    the approver and the time; Reject skips the rest of the run, which ends cleanly. A version
    already approved (``mlops approve`` before the run) passes without waiting.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    """

    template_fields: Sequence[str] = ("body", "subject")

    def __init__(self, *, config_path: str, config_root: str | None = None, **kwargs: Any) -> None:
        resolved = f"ti.xcom_pull(task_ids='{RESOLVE_TASK}')"
        kwargs.setdefault("subject", f"Deploy {{{{ {resolved}['group'] }}}} version {{{{ {resolved}['semver'] }}}}")
        kwargs.setdefault("body", f"{{{{ {resolved}['approval_body'] }}}}")
        from airflow_provider_mlops.notifications.callbacks import MlopsApprovalNotifier

        kwargs.setdefault("notifiers", [MlopsApprovalNotifier(config_path=config_path, config_root=config_root)])
        super().__init__(**kwargs)
        self.config_path = config_path
        self.config_root = config_root

    def _version(self, context: Context) -> dict[str, Any]:
        return context["ti"].xcom_pull(task_ids=RESOLVE_TASK)

    def execute(self, context: Context) -> Any:
        resolved = self._version(context)
        current = self.registry.get(self.group, resolved["semver"])
        if current.status == APPROVED:
            self.log.info("Version %s was already approved by %s at %s", current.semver, current.approval.get("by"), current.approval.get("at"))
            return {"chosen_options": [self.APPROVE], "responded_by": current.approval.get("by"), "preapproved": True}
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        resolved = self._version(context)
        chosen = (event.get("chosen_options") or [None])[0]
        user = event.get("responded_by_user") or {}
        who = user.get("name") or user.get("id") or "unknown"
        status = APPROVED if chosen == self.APPROVE else REJECTED
        # Record first: a reject skips downstream tasks inside the parent's execute_complete.
        if "error" not in event:
            self.registry.set_approval(self.group, resolved["semver"], status, by=who, reason=f"{chosen} in Airflow")
            self.log.info("%s %s by %s", resolved["semver"], status, who)
            if status == REJECTED:
                from airflow_provider_mlops.notifications import events

                events.rejected(self.loaded, context, resolved, by=who, reason=f"{chosen} in Airflow", log=self.log)
        result = super().execute_complete(context, event)
        return {"chosen_options": result["chosen_options"], "responded_by": who, "status": status}


class MlopsAutoApproveOperator(MlopsBaseOperator):
    """
    ``approval: auto``: record the approval on the version without waiting for a person.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        resolved = context["ti"].xcom_pull(task_ids=RESOLVE_TASK)
        current = self.registry.get(self.group, resolved["semver"])
        if current.status != APPROVED:
            current = self.registry.set_approval(self.group, current.semver, APPROVED, by="auto", reason="approval: auto in mlops.yaml")
        return {"status": current.status, "responded_by": current.approval.get("by")}


class MlopsDeployOperator(MlopsBaseOperator):
    """
    Serve the approved version on the model's endpoint: create it, or update it in place.

    The new version starts beside the old one and must pass its health check before traffic
    moves; if it fails, the old version keeps serving and the task fails with the reason.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :return: ``{"endpoint", "url", "version", "previous_version"}``.
    """

    operator_extra_links = (MlopsConsoleLink(), MlopsLogsLink())

    def execute(self, context: Context) -> dict[str, Any]:
        resolved = context["ti"].xcom_pull(task_ids=RESOLVE_TASK)
        version = self.registry.get(self.group, resolved["semver"])
        if version.status != APPROVED:
            raise DeployRefusedError(f"{self.group} version {version.semver} is {version.status}, not Approved; it can't be deployed")
        deployed = deploy_version(self, version)
        push_links(context, deployed.get("links"))
        return deployed


def deploy_version(operator: MlopsConfigMixin, version: ModelVersion) -> dict[str, Any]:
    return _serving(operator).deploy(operator.loaded.config.endpoint_name, version, operator.loaded)


class MlopsSmokeTestOperator(MlopsBaseOperator):
    """
    Send the config's smoke-test request to the endpoint and check the answer.

    If the answer is not a 200, the previous version (when there is one) is put back on the
    endpoint and the task fails, saying so.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :return: ``{"status", "response"}`` with the response truncated to 2 KB.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        deployed = context["ti"].xcom_pull(task_ids="deploy")
        smoke = self.loaded.config.deployment.smoke_test
        payload = smoke.payload or ""
        if smoke.payload_file:
            path = Path(self.loaded.resolve(smoke.payload_file))
            if not path.is_file():
                raise MissingFileError(f"{self.loaded.path}: deployment.smoke_test.payload_file {path} does not exist")
            payload = path.read_text()
        status, _, body = _serving(self).invoke(deployed, payload.encode(), smoke.content_type)
        if status != 200:
            previous = deployed.get("previous_version")
            if previous and not deployed.get("unchanged"):
                deploy_version(self, self.registry.get(self.group, previous))
                reason = f"smoke test of {deployed['endpoint']} {deployed['version']} got HTTP {status}: {body[:300]!r}"
                from airflow_provider_mlops.notifications import events

                events.rolled_back(self.loaded, context, endpoint=deployed["endpoint"], failed_version=deployed["version"],
                                   restored_version=previous, reason=reason, log=self.log)
                raise DeploymentError(f"{reason}; rolled back to {previous}")
            raise DeploymentError(f"smoke test of {deployed['endpoint']} {deployed['version']} got HTTP {status}: {body[:300]!r}")
        text = body.decode(errors="replace")[:2048]
        self.log.info("Smoke test passed: %s", text)
        return {"status": status, "response": text}


class MlopsPromoteOperator(MlopsBaseOperator):
    """
    Mark the deployed version as the production model (the gate's next champion).

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :return: the promoted version's record.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        deployed = context["ti"].xcom_pull(task_ids="deploy")
        version = self.registry.promote(
            self.group, deployed["version"], deployment={"endpoint": deployed["endpoint"], "url": deployed["url"], "run_id": context["ti"].run_id}
        )
        self.log.info("%s %s is now in production on %s", self.group, version.semver, deployed["endpoint"])
        return version.to_dict()
