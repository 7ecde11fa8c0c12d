"""
``mlops card PROJECT/MODEL VERSION``: a version's model card as Markdown (the Model tab's
"Export as Markdown", from the command line).

No Airflow import. Registered in ``cli.py`` by ``cli_card.add_parsers(sub)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_card(args: argparse.Namespace) -> int:
    from airflow_provider_mlops import runtime
    from airflow_provider_mlops.cli_registry import find_config, parse_model_ref
    from airflow_provider_mlops.ui.card import card_markdown, model_card
    from airflow_provider_mlops.ui.data import find_version, model_ref

    project, model = parse_model_ref(args.model)
    loaded = find_config(project, model, args.config)
    versions = runtime.registry_for(loaded).list_versions(runtime.group_of(loaded))
    markdown = card_markdown(model_card(loaded, find_version(versions, args.version, model_ref(loaded))))
    if args.output:
        Path(args.output).write_text(markdown, encoding="utf-8")
        print(f"wrote the model card of {project}/{model} {args.version} to {args.output}")
    else:
        print(markdown, end="")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The subcommand ``card``."""
    p = sub.add_parser(
        "card", help="print a version's model card as Markdown",
        description="The model card of one registered version: description, owner, training data, metrics, "
        "gate, approval and deployment, as Markdown.\nExample: mlops card demo/breast-cancer 1.0.0 -o CARD.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="PROJECT/MODEL, for example demo/breast-cancer")
    p.add_argument("version", help="the version, MAJOR.MINOR.PATCH, for example 1.0.0 (see mlops versions)")
    p.add_argument("--config", help="the model's mlops.yaml (default: search MLOPS_CONFIG_PATH)")
    p.add_argument("-o", "--output", help="write the Markdown to this file instead of stdout")
    p.set_defaults(func=cmd_card)
