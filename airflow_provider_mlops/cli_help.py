"""
How every ``mlops`` subcommand describes itself: a one-line help, the same line as its
description, and an example in its epilog (``mlops COMMAND --help``).

No Airflow import.
"""

from __future__ import annotations

import argparse

#: The placeholders the help texts share.
MODEL_REF_HELP = "the model as PROJECT/MODEL, as in its mlops.yaml; for example demo/breast-cancer"
CONFIG_HELP = "the model's mlops.yaml (default: the one for PROJECT/MODEL under $MLOPS_CONFIG_PATH, else .)"
SubParsers = argparse._SubParsersAction


def add_command(
    sub: SubParsers[argparse.ArgumentParser], name: str, *, help: str, examples: list[str], details: str = "",
) -> argparse.ArgumentParser:
    """
    A subcommand whose ``--help`` says what it does and shows how to call it.

    :param sub: the parent's subparsers.
    :param name: the subcommand's name.
    :param help: one line: what it does (shown in the parent's list, and as the description).
    :param examples: whole command lines, shown under "Examples:".
    :param details: more lines for the description (what it needs, what it prints).
    """
    lines = "\n".join(f"  {example}" for example in examples)
    return sub.add_parser(
        name, help=help, description=f"{help}.\n\n{details}".rstrip() if details else f"{help}.",
        epilog=f"Example{'s' if len(examples) > 1 else ''}:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def undocumented(parser: argparse.ArgumentParser, path: str = "mlops") -> list[str]:
    """Every command without an example and every argument without help text, for the test that forbids them."""
    missing: list[str] = []
    if path != "mlops" and "Example" not in f"{parser.description or ''} {parser.epilog or ''}":
        missing.append(f"{path}: no example in its help")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                if not helps.get(name):
                    missing.append(f"{path} {name}: no help line")
                missing.extend(undocumented(child, f"{path} {name}"))
        elif not action.help and action.dest != "help":
            missing.append(f"{path}: argument {'/'.join(action.option_strings) or action.dest} has no help")
    return missing
