"""
``mlops retrain | rollback | promote PROJECT/MODEL``: start the model's DAGs through Airflow's REST API.

These commands never train or deploy by themselves. ``retrain`` starts the train DAG with the
model's last release (CI's ``release.json`` beside mlops.yaml, else the newest version's lineage),
as the retrain DAG and the trigger Lambda do. ``rollback`` and ``promote`` start the deploy DAG
with ``{"model_version": ...}``, so the deploy run's approval step and its checks
(:func:`~airflow_provider_mlops.approvals.deploy_refusal`) hold exactly as for any other deploy;
a version those checks would refuse is refused here first, before a run is created.

Airflow is reached as ``mlops approve`` reaches it: ``MLOPS_AIRFLOW_API_URL`` with
``MLOPS_AIRFLOW_USERNAME``/``MLOPS_AIRFLOW_PASSWORD`` or ``MLOPS_AIRFLOW_TOKEN``. The run's
``requested_by`` is ``mlops-cli:<the Airflow user those credentials prove>``.

No Airflow import.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_mlops.cli_help import CONFIG_HELP, MODEL_REF_HELP, SubParsers, add_command
from airflow_provider_mlops.exceptions import DeployRefusedError, InputError, MlopsError, VersionNotFoundError
from airflow_provider_mlops.naming import dag_id
from airflow_provider_mlops.versioning import SEMVER_RULE, SemVer, is_semver

if TYPE_CHECKING:
    from airflow_provider_mlops.airflow_api import AirflowClient
    from airflow_provider_mlops.config.loader import LoadedConfig
    from airflow_provider_mlops.registry.base import ModelVersion

REQUESTED_BY_PREFIX = "mlops-cli:"


def run_id_for(action: str, detail: str = "") -> str:
    """A fresh run id that says where the run came from: ``mlops_cli__rollback__1.0.2__20261203T130102Z_ab12``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return "__".join(p for p in ("mlops_cli", action, detail, f"{stamp}_{secrets.token_hex(2)}") if p)


def trigger(client: AirflowClient, loaded: LoadedConfig, kind: str, action: str, conf: dict[str, Any],
            detail: str = "") -> dict[str, Any]:
    """Create one run of the model's ``kind`` DAG with ``conf`` (validated as that DAG will), and print where it is."""
    from airflow_provider_mlops import runtime
    from airflow_provider_mlops.airflow_api import AirflowApiError

    cfg = loaded.config
    target = dag_id(cfg.project, cfg.model, kind)
    conf_model = runtime.TrainRunConf if kind == "train" else runtime.DeployRunConf
    runtime.parse_conf(conf_model, conf, target, loaded)
    run_id = run_id_for(action, detail)
    try:
        dag = client.request("GET", f"/api/v2/dags/{quote(target, safe='')}")
        run = client.trigger_dag_run(target, run_id, conf)
    except AirflowApiError as exc:
        if exc.status == 404:
            raise MlopsError(
                f"Airflow at {client.base_url} has no DAG {target}: the DAG processor has not loaded {loaded.path} "
                "(is it under MLOPS_CONFIG_PATH on the Airflow side, and valid? run 'mlops validate' on it)"
            ) from None
        if exc.status in (401, 403):
            raise MlopsError(
                f"Airflow at {client.base_url} refused to start {target} ({exc.status}): the user of "
                "MLOPS_AIRFLOW_USERNAME (or MLOPS_AIRFLOW_TOKEN) may not trigger this DAG; ask for the permission "
                "to trigger it"
            ) from None
        raise
    link = f"{client.base_url}/dags/{quote(target, safe='')}/runs/{quote(run['dag_run_id'], safe='')}"
    print(f"started {target} run {run['dag_run_id']}")
    print(f"  conf: {', '.join(f'{k}={v}' for k, v in conf.items())}")
    print(f"  {link}")
    if dag.get("is_paused"):
        print(f"note: {target} is paused, so the run waits; unpause it in the UI (or with the REST API) to start it",
              file=sys.stderr)
    return dict(run)


def _client_and_requester() -> tuple[AirflowClient, str]:
    from airflow_provider_mlops.airflow_api import AirflowClient

    client = AirflowClient.from_env()
    _, name = client.whoami()
    return client, f"{REQUESTED_BY_PREFIX}{name}"


def _model(args: argparse.Namespace) -> LoadedConfig:
    from airflow_provider_mlops.cli_registry import find_config, parse_model_ref

    project, model = parse_model_ref(args.model)
    return find_config(project, model, args.config)


def cmd_retrain(args: argparse.Namespace) -> int:
    """Start the train DAG from the model's last release."""
    from airflow_provider_mlops import runtime
    from airflow_provider_mlops.registry.releases import last_release

    loaded = _model(args)
    cfg = loaded.config
    versions = runtime.registry_for(loaded).list_versions(runtime.group_of(loaded))
    release, source = last_release(runtime.release_file(loaded), cfg.project, cfg.model, versions)
    client, requester = _client_and_requester()
    conf = {"requested_by": requester, **release.train_conf(cfg.version)}
    print(f"retraining {cfg.project}/{cfg.model} from the release {release.describe()} (from {source})")
    if not release:
        print("note: no release is known, so the train DAG uses the image (or code) mlops.yaml names", file=sys.stderr)
    trigger(client, loaded, "train", "retrain", conf)
    return 0


def deployable_version(loaded: LoadedConfig, version: ModelVersion) -> ModelVersion:
    """``version``, unless the deploy DAG would refuse it (Rejected, or failed its gate with no valid override)."""
    from airflow_provider_mlops.approvals import deploy_refusal

    refusal = deploy_refusal(version, loaded.config.deployment, approved=False)
    if refusal:
        raise DeployRefusedError(f"{refusal}; no deploy run was started")
    return version


def _get(versions: list[ModelVersion], semver: str, loaded: LoadedConfig) -> ModelVersion:
    if not is_semver(semver):
        raise InputError(f"version {semver!r} must be {SEMVER_RULE}; for example 1.0.2")
    for version in versions:
        if version.semver == semver:
            return version
    cfg = loaded.config
    known = ", ".join(v.semver for v in versions) or "none yet"
    raise VersionNotFoundError(f"{cfg.project}/{cfg.model} has no version {semver} (versions: {known}); "
                               f"run 'mlops versions {cfg.project}/{cfg.model}' to see them")


def _production(versions: list[ModelVersion]) -> ModelVersion | None:
    return next((v for v in reversed(versions) if v.stage == "production"), None)


def previous_production(versions: list[ModelVersion]) -> ModelVersion | None:
    """The version that was in production before the current one: the archived one deployed last."""
    archived = [v for v in versions if v.stage == "archived" and v.deployment]
    return max(archived, key=lambda v: (str(v.deployment.get("at") or ""), SemVer.parse(v.semver)), default=None)


def cmd_deploy_version(args: argparse.Namespace) -> int:
    """``rollback`` and ``promote``: a deploy run for one model version."""
    from airflow_provider_mlops import runtime

    loaded = _model(args)
    cfg = loaded.config
    versions = runtime.registry_for(loaded).list_versions(runtime.group_of(loaded))
    production = _production(versions)
    ref = f"{cfg.project}/{cfg.model}"
    if args.command == "rollback" and args.version is None:
        target = previous_production(versions)
        if target is None:
            raise VersionNotFoundError(
                f"{ref} has no earlier production version to roll back to (production: "
                f"{production.semver if production else 'none'}); name one: mlops rollback {ref} VERSION"
            )
    else:
        target = _get(versions, args.version, loaded)
        if args.command == "rollback" and not target.deployment:
            raise InputError(f"{ref} {target.semver} was never in production, so there is nothing to roll back to; "
                             f"to deploy it for the first time: mlops promote {ref} {target.semver}")
    if production is not None and production.semver == target.semver:
        raise InputError(f"{ref} {target.semver} is already in production "
                         f"(endpoint {production.deployment.get('endpoint', cfg.endpoint_name)}); nothing to {args.command}")
    deployable_version(loaded, target)
    client, requester = _client_and_requester()
    print(f"{args.command} {ref}: {production.semver if production else 'nothing'} in production -> {target.semver}")
    trigger(client, loaded, "deploy", args.command, {"model_version": target.semver, "requested_by": requester},
            detail=target.semver)
    return 0


def add_parsers(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """The subcommands ``retrain``, ``rollback`` and ``promote``."""
    rest = ("Needs MLOPS_AIRFLOW_API_URL and MLOPS_AIRFLOW_USERNAME/MLOPS_AIRFLOW_PASSWORD (or MLOPS_AIRFLOW_TOKEN), "
            "as mlops approve.\nPrints the run id and a link to the run.")
    p = add_command(sub, "retrain", help="start the model's train DAG from its last release, through Airflow's REST API",
                    examples=["mlops retrain demo/breast-cancer"],
                    details="The release is CI's release.json beside mlops.yaml, else the newest version's lineage.\n"
                            + rest)
    p.add_argument("model", metavar="PROJECT/MODEL", help=MODEL_REF_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(func=cmd_retrain)

    p = add_command(sub, "rollback", help="deploy the previous production version again, through the deploy DAG",
                    examples=["mlops rollback demo/breast-cancer", "mlops rollback demo/breast-cancer 1.0.1"],
                    details="The deploy run's approval step applies; a Rejected version, or one that failed its "
                            "gate without an override, is refused.\n" + rest)
    p.add_argument("model", metavar="PROJECT/MODEL", help=MODEL_REF_HELP)
    p.add_argument("version", nargs="?", metavar="VERSION",
                   help="a version that was in production before (default: the one before the current one)")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(func=cmd_deploy_version)

    p = add_command(sub, "promote", help="deploy a model version to production, through the deploy DAG",
                    examples=["mlops promote demo/breast-cancer 1.0.2"],
                    details="The deploy run's approval step applies; a Rejected version, or one that failed its "
                            "gate without an override, is refused.\n" + rest)
    p.add_argument("model", metavar="PROJECT/MODEL", help=MODEL_REF_HELP)
    p.add_argument("version", metavar="VERSION", help="the model version, MAJOR.MINOR.PATCH; see mlops versions")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(func=cmd_deploy_version)
