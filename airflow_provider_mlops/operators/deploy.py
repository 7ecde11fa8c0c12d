"""The deploy DAG's steps: resolve the version, deploy, smoke-test, promote (the approval step: :mod:`.approve`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops import runtime
from airflow_provider_mlops.approvals import (
    counts_as_passing,
    deploy_refusal,
    failed_rules,
    gate_passed,
    hitl_users,
)
from airflow_provider_mlops.exceptions import (
    DeploymentError,
    DeployRefusedError,
    InputError,
    MissingFileError,
    VersionNotFoundError,
)
from airflow_provider_mlops.gate import gate_table_markdown
from airflow_provider_mlops.links.console import MlopsConsoleLink, MlopsLogsLink, push_links
from airflow_provider_mlops.naming import legacy_model_group
from airflow_provider_mlops.operators.base import MlopsBaseOperator, MlopsConfigMixin
from airflow_provider_mlops.registry.base import APPROVED, PENDING, ModelVersion
from airflow_provider_mlops.registry.releases import Release, release_of, resolve_release, trained_from

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_mlops.config.models import Deployment
    from airflow_provider_mlops.serving import ServingBackend

RESOLVE_TASK = "resolve_version"
#: The audit note a failed smoke test records before it rolls back: a later try resumes from it.


def serving_for(operator: MlopsConfigMixin) -> ServingBackend:
    """The serving backend of the operator's config (the run's pinned one)."""
    from airflow_provider_mlops.serving import get_serving

    loaded = operator.loaded
    name = loaded.config.serving_backend
    return get_serving(name, **runtime.backend_kwargs(name, loaded))


class MlopsResolveVersionOperator(MlopsBaseOperator):
    """
    Pick the model version to deploy, from the run conf (``docs/versions.md``).

    - ``model_version``: that model version.
    - ``version`` / ``image`` (and ``commit``): a CI release; the newest model version trained
      from it (its lineage's ``image_version`` or ``image``) whose gate passed (or that an
      allowed person approved as an override) and which is not Rejected. A release whose
      versions all failed the gate is refused, naming them.
    - neither: the newest version awaiting deployment.

    A version is refused when it may never be deployed: Rejected (with the reason that rejected
    it), or failed its gate with no override recorded (and, when ``deployment.gate_override_by``
    is empty, none possible). The smoke test's payload file is checked here, before anything is
    deployed.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :return: the version's record, plus ``approval_body`` (Markdown for the approver).
    """

    def execute(self, context: Context) -> dict[str, Any]:
        conf = runtime.parse_conf(runtime.DeployRunConf, context["dag_run"].conf, self.dag_id, self.loaded)
        self._check_payload_file()
        deployment = self.loaded.config.deployment
        release = Release(version=conf.version, image=conf.image, commit=conf.commit)
        if conf.model_version:
            version = self._model_version(conf.model_version, release)
        elif release:
            version = resolve_release(self.group, self.registry.list_versions(self.group), release,
                                      deployable=lambda v: counts_as_passing(v, deployment))
            self.log.info("Release %s of %s trained model version %s", release.describe(), self.group, version.semver)
        else:
            candidates = [v for v in self.registry.list_versions(self.group)
                          if v.status in (PENDING, APPROVED) and v.stage is None and counts_as_passing(v, deployment)]
            if not candidates:
                raise VersionNotFoundError(
                    f"{self.group} has no version awaiting deployment; train one first, or pass "
                    '{"model_version": "X.Y.Z"} (a model version) or {"version": "X.Y.Z"} (a CI release) '
                    "in the DAG run conf"
                )
            version = candidates[-1]
        refusal = deploy_refusal(version, deployment, approved=False)
        if refusal:
            raise DeployRefusedError(refusal)
        self.log.info("Deploying %s version %s (%s)", self.group, version.semver, version.status)
        return {**version.to_dict(),
                "approval_body": approval_body(version, self.loaded.config.endpoint_name, deployment)}

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
        if payload_file and not Path(runtime.inside_model_folder(self.loaded, payload_file,
                                                                 "deployment.smoke_test.payload_file")).is_file():
            raise MissingFileError(
                f"{self.loaded.path}: deployment.smoke_test.payload_file {payload_file!r} does not exist at "
                f"{self.loaded.resolve(payload_file)}; publish it beside mlops.yaml, or set smoke_test.payload"
            )


def approval_body(version: ModelVersion, endpoint: str, deployment: Deployment | None = None) -> str:
    """
    The approver's Markdown: the model version, its gate table and the release it was trained from.

    :param version: the version to deploy.
    :param endpoint: the endpoint it goes to.
    :param deployment: the config's ``deployment`` block: who may decide, and whether it expires.
    :return: Markdown for the HITL body.
    """
    gate = gate_table_markdown(version.gate) if version.gate.get("rows") else "_no gate result recorded_"
    lineage = version.lineage
    notes: list[str] = []
    if not gate_passed(version):
        who = ", ".join(u["name"] for u in hitl_users(deployment.gate_override_by)) if deployment else ""
        notes.append(f"**This version failed its evaluation gate ({failed_rules(version)}).** Approving it is an "
                     f"override: only {who or 'the people in deployment.gate_override_by'} may, with a reason.")
    notes.append("Give a reason to reject; it is recorded with your decision.")
    if deployment is not None and deployment.approval_timeout:
        notes.append(f"Unanswered after {deployment.approval_timeout}, the request is rejected as expired.")
    return "\n".join(
        [
            f"### {version.group} {version.semver} → endpoint `{endpoint}`",
            "",
            *notes,
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


class MlopsDeployOperator(MlopsBaseOperator):
    """
    Serve the approved version on the model's endpoint: create it, or update it in place.

    The new version starts beside the old one and must pass its health check before traffic
    moves; if it fails, the old version keeps serving and the task fails with the reason.

    A serving backend that can start a deploy without waiting (``start_deploy``: SageMaker)
    makes its calls here, checks the endpoint once, and while it is still moving defers to
    :class:`~airflow_provider_mlops.triggers.endpoint.EndpointDeployTrigger`, holding no worker
    slot; ``execute_complete`` verifies and records. The local backend deploys in the worker
    (seconds). A killed deferred deploy leaves the endpoint to finish or roll back (see the
    trigger's ``on_kill``).

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :return: ``{"endpoint", "url", "version", "previous_version"}``.
    """

    operator_extra_links = (MlopsConsoleLink(), MlopsLogsLink())

    def execute(self, context: Context) -> dict[str, Any]:
        resolved = context["ti"].xcom_pull(task_ids=RESOLVE_TASK)
        # The registry's record, read now, decides: not the XCom, not a status flipped elsewhere.
        version = self.registry.get(self.group, resolved["semver"])
        refusal = deploy_refusal(version, self.loaded.config.deployment)
        if refusal:
            raise DeployRefusedError(refusal)
        self._take_over_legacy_endpoint()
        serving = serving_for(self)
        if getattr(serving, "start_deploy", None) is None:  # seconds (local): in the worker
            return self._record_deployed(context, version, deploy_version(self, version))
        started = serving.start_deploy(self.loaded.config.endpoint_name, version, self.loaded)  # type: ignore[attr-defined]
        if started["unchanged"]:
            return self._record_deployed(context, version, started)
        push_links(context, started.get("links"))
        return self.execute_complete(context, settled_or_defer(self, serving, started))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the endpoint settled (or the wait ended): verify, clean up and record; every event is handled."""
        deployed = finish_endpoint_wait(self, event, "deploy")
        return self._record_deployed(context, self.registry.get(self.group, deployed["version"]), deployed)

    def _record_deployed(self, context: Context, version: ModelVersion, deployed: dict[str, Any]) -> dict[str, Any]:
        push_links(context, deployed.get("links"))
        approval = version.approval
        self.registry.record_event(self.group, "deployed", {
            "version": version.semver, "endpoint": deployed["endpoint"], "by": actor(context),
            "reason": f"{'override' if approval.get('override') else 'approved'} by {approval.get('by')}: "
                      f"{approval.get('reason') or 'no reason given'}",
            "previous_version": deployed.get("previous_version"), "run_id": context["ti"].run_id,
        })
        return deployed

    def _take_over_legacy_endpoint(self) -> None:
        """
        Keep a model that serves on its old endpoint name (``<project>-<model>``) from gaining a second one.

        Only when the config does not name its endpoint and the production version (this
        model's own registry record) was deployed there. A local endpoint is moved under the
        new name, router and port included, with no gap; a SageMaker endpoint cannot be renamed,
        so the deploy is refused with how to keep or leave it.
        """
        cfg = self.loaded.config
        if cfg.deployment.endpoint_name:
            return
        legacy = legacy_model_group(cfg.project, cfg.model)
        production = self.registry.production(self.group)
        if production is None or production.deployment.get("endpoint") != legacy:
            return
        adopt = getattr(serving_for(self), "adopt_endpoint", None)
        if adopt is not None:
            if adopt(legacy, cfg.endpoint_name):
                self.log.warning("Endpoint %s (the name before endpoints were <project>--<model>) is now %s; "
                                 "%s stays as a link to it", legacy, cfg.endpoint_name, legacy)
            return
        raise DeployRefusedError(
            f"{self.group}: production version {production.semver} serves on endpoint {legacy}, the name before "
            f"endpoints were <project>--<model>; this deploy would start a second endpoint {cfg.endpoint_name}. "
            f"Set deployment.endpoint_name: {legacy} to keep deploying there (a name with a '-' in project or model "
            "needs organisation.allow_resource_overrides), or deployment.endpoint_name: "
            f"{cfg.endpoint_name} to move to the new one and delete {legacy} afterwards"
        )


def settled_or_defer(operator: MlopsBaseOperator, serving: Any, started: dict[str, Any]) -> dict[str, Any]:
    """
    Check the endpoint once after ``start_deploy``/``start_rollback``; while it moves, defer.

    :return: the event to resume with at once when the endpoint has already settled (or is gone).
    :raises TaskDeferred: it is still moving: :class:`EndpointDeployTrigger` waits in the triggerer
        (no worker slot) and Airflow resumes the task in its ``execute_complete``.
    """
    import time
    from datetime import timedelta

    from airflow_provider_mlops.triggers.endpoint import EndpointDeployTrigger

    progress = serving.endpoint_progress(started["endpoint"])
    if progress is None or progress["settled"]:
        return {"status": "settled", "progress": progress, "deploy": started} if progress else {"status": "gone", "deploy": started}
    name = operator.loaded.config.serving_backend
    operator.defer(
        trigger=EndpointDeployTrigger(
            serving=name,
            serving_kwargs=runtime.backend_kwargs(name, operator.loaded),
            deploy=started,
            alarms=list(operator.loaded.config.deployment.auto_rollback_alarms),
            deadline=time.time() + serving.wait_timeout,
            poll_interval=serving.poll_interval,
        ),
        method_name="execute_complete",
        # The trigger times out first, with the endpoint's status in its message.
        timeout=timedelta(seconds=serving.wait_timeout + 600),
    )


def finish_endpoint_wait(operator: MlopsBaseOperator, event: dict[str, Any], what: str) -> dict[str, Any]:
    """Verify how an endpoint wait ended (the serving backend's ``finish_deploy``); an error or unknown event raises."""
    status, started = event.get("status"), event.get("deploy") or {}
    if status in ("settled", "timeout", "gone"):
        return serving_for(operator).finish_deploy(started, event, operator.loaded)  # type: ignore[attr-defined,no-any-return]
    if status == "error":
        raise DeploymentError(
            f"waiting for endpoint {started['endpoint']} to serve {started['endpoint_config']} failed: "
            f"{event.get('message')}; the {what} may still finish: check the endpoint before clearing the task"
        )
    raise DeploymentError(f"unexpected trigger event for {operator.task_id}: {event!r}")


def deploy_version(operator: MlopsConfigMixin, version: ModelVersion) -> dict[str, Any]:
    loaded = operator.loaded
    cfg = loaded.config
    if cfg.serving_backend == "local":  # the worker imports the inference code: it must be the model's own
        source = runtime.inside_model_folder(loaded, cfg.training.source_dir, "training.source_dir")
        runtime.inside_model_folder(loaded, str(Path(source) / cfg.deployment.inference_entrypoint),
                                    "deployment.inference_entrypoint")
    return serving_for(operator).deploy(cfg.endpoint_name, version, loaded)


def actor(context: Context) -> str:
    """Who asked for this run: the conf's ``requested_by`` (CI, the Lambda), else the user who triggered it."""
    run = context.get("dag_run")
    conf = getattr(run, "conf", None) or {}
    return str(conf.get("requested_by") or getattr(run, "triggering_user_name", None) or "airflow")


class MlopsPromoteOperator(MlopsBaseOperator):
    """
    Mark the deployed version as the production model (the gate's next champion).

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :return: the promoted version's record.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        deployed = context["ti"].xcom_pull(task_ids="deploy")
        refusal = deploy_refusal(self.registry.get(self.group, deployed["version"]), self.loaded.config.deployment)
        if refusal:
            raise DeployRefusedError(refusal)
        version = self.registry.promote(
            self.group, deployed["version"], deployment={"endpoint": deployed["endpoint"], "url": deployed["url"],
                                                         "run_id": context["ti"].run_id, "by": actor(context)}
        )
        self.log.info("%s %s is now in production on %s", self.group, version.semver, deployed["endpoint"])
        return version.to_dict()
