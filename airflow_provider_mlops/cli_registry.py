"""
``mlops versions | approve | reject | audit``: a model's registered versions and the decisions on them.

No Airflow import.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_mlops.cli_help import CONFIG_HELP, MODEL_REF_HELP, SubParsers, add_command
from airflow_provider_mlops.exceptions import InputError
from airflow_provider_mlops.naming import NAME_RULE, is_valid_name

if TYPE_CHECKING:
    from airflow_provider_mlops.config.loader import LoadedConfig


def parse_model_ref(ref: str) -> tuple[str, str]:
    """``PROJECT/MODEL`` as given on the command line, checked."""
    project, sep, model = ref.partition("/")
    if not sep or not is_valid_name(project) or not is_valid_name(model):
        raise InputError(f"model {ref!r} must be PROJECT/MODEL, each {NAME_RULE}; for example demo/breast-cancer")
    return project, model


def find_config(project: str, model: str, config: str | None) -> LoadedConfig:
    """The model's mlops.yaml: ``--config``, else the one for ``project/model`` under MLOPS_CONFIG_PATH (or .)."""
    from airflow_provider_mlops.config.loader import config_roots, load_all, load_config

    if config:
        # Under a config root (MLOPS_CONFIG_PATH), its organisation defaults apply as the DAG loader applies them.
        path = Path(config).resolve()
        root = next((r for r in config_roots() if path.is_relative_to(r.resolve())), None)
        loaded = load_config(config, root=root)
        if (loaded.config.project, loaded.config.model) != (project, model):
            raise InputError(f"{config} is {loaded.config.project}/{loaded.config.model}, not {project}/{model}")
        return loaded
    roots = config_roots(default=".")
    configs, _ = load_all(roots)
    for item in configs:
        if (item.config.project, item.config.model) == (project, model):
            return item
    raise InputError(
        f"no mlops.yaml for {project}/{model} under {', '.join(map(str, roots))}: pass --config PATH "
        "or set MLOPS_CONFIG_PATH"
    )


def cmd_versions(args: argparse.Namespace) -> int:
    from airflow_provider_mlops import runtime

    project, model = parse_model_ref(args.model)
    loaded = find_config(project, model, args.config)
    versions = runtime.registry_for(loaded).list_versions(runtime.group_of(loaded))
    if args.json:
        print(json.dumps([v.to_dict() for v in versions], indent=2))
        return 0
    primary = loaded.config.evaluation.primary_metric or ""  # set from metrics[0] when the config omits it
    print(f"{'version':<10} {'status':<22} {'stage':<11} {primary:<8} {'gate':<6} {'approved by':<14} created")
    for v in versions:
        metric = v.metrics.get(primary)
        gate = "pass" if v.gate.get("passed") else ("FAIL" if v.gate else "-")
        print(
            f"{v.semver:<10} {v.status:<22} {v.stage or '-':<11} "
            f"{'-' if metric is None else f'{metric:.4f}':<8} {gate:<6} {v.approval.get('by', '-'):<14} {v.created_at}"
        )
    if not versions:
        print(f"(no versions of {project}/{model} yet)")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    """approve / reject: answer the waiting deploy run through Airflow's REST API, or record it (decide.py)."""
    from airflow_provider_mlops.decide import decide

    project, model = parse_model_ref(args.model)
    return decide(args, find_config(project, model, args.config))


def cmd_audit(args: argparse.Namespace) -> int:
    """The model's audit log: decisions, deploys, rollbacks, promotions (decide.py)."""
    from airflow_provider_mlops.decide import audit

    project, model = parse_model_ref(args.model)
    return audit(args, find_config(project, model, args.config))


def add_parsers(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """The subcommands ``versions``, ``approve``, ``reject`` and ``audit``."""
    p = add_command(sub, "versions", help="list a model's registered versions (status, stage, primary metric, gate)",
                    examples=["mlops versions demo/breast-cancer", "mlops versions demo/breast-cancer --json"])
    p.add_argument("model", metavar="PROJECT/MODEL", help=MODEL_REF_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--json", action="store_true", help="print the version records as JSON")
    p.set_defaults(func=cmd_versions)

    airflow = ("With MLOPS_AIRFLOW_API_URL (and MLOPS_AIRFLOW_USERNAME/MLOPS_AIRFLOW_PASSWORD or MLOPS_AIRFLOW_TOKEN) "
               "set, it answers the deploy run that waits for the decision, as that Airflow user;\n"
               "without it, or with --registry-only, the decision is recorded in the registry.")
    for name, example in (("approve", "mlops approve demo/breast-cancer 1.0.2 --reason 'gate table reviewed'"),
                          ("reject", "mlops reject demo/breast-cancer 1.0.2 --reason 'recall dropped on site B'")):
        p = add_command(sub, name, help=f"{name} a model version's deployment", examples=[example], details=airflow)
        p.add_argument("model", metavar="PROJECT/MODEL", help=MODEL_REF_HELP)
        p.add_argument("version", metavar="VERSION", help="the model version, MAJOR.MINOR.PATCH; see mlops versions")
        p.add_argument("--config", help=CONFIG_HELP)
        p.add_argument("--by", help="who decides, without Airflow only (default: $MLOPS_APPROVER or $USER); "
                       "with MLOPS_AIRFLOW_API_URL set, you decide as the Airflow user you log in as")
        p.add_argument("--reason", default="", help="why; recorded (required to reject, and for --override-gate)")
        p.add_argument("--registry-only", action="store_true",
                       help="record the decision in the registry for a later deploy run, without answering a waiting one")
        if name == "approve":
            p.add_argument("--override-gate", action="store_true",
                           help="approve a version that failed its gate (deployment.gate_override_by only; needs --reason)")
        p.set_defaults(func=cmd_decide)

    p = add_command(sub, "audit", help="a model's audit log: approvals, rejections, overrides, deploys, rollbacks, "
                    "promotions", examples=["mlops audit demo/breast-cancer", "mlops audit demo/breast-cancer --json"])
    p.add_argument("model", metavar="PROJECT/MODEL", help=MODEL_REF_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--json", action="store_true", help="print the events as JSON")
    p.set_defaults(func=cmd_audit)
