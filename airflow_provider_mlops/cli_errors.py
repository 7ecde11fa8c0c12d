"""
How ``mlops`` reports a failed command: one line on stderr, exit code 1.

The product's own errors (:mod:`airflow_provider_mlops.exceptions`) already name the file, the
cause and the fix. The faults of the machine underneath (an :class:`OSError` such as a read-only
or full disk, a SQLite error, a damaged JSON file) that reach the CLI unmapped are put in the same
shape, ``mlops: error: <what> (<path>): <why>; <fix>``. ``--debug`` prints the traceback as well.
Anything else is a bug in mlops and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from airflow_provider_mlops.exceptions import ConfigError, ConfigErrors, MlopsError, StorageError

PREFIX = "mlops: error: "
_UNKNOWN_PATH = "rerun with --debug to see which file"


def print_config_errors(errors: Sequence[ConfigError]) -> None:
    """``validate`` lists every config error, one line each."""
    for error in errors:
        print(f"error: {error}", file=sys.stderr)


def config_errors_json(errors: Sequence[ConfigError]) -> list[dict[str, Any]]:
    """``validate --json``: each error as ``{file, line, field, value, message, fix}`` (JSON-safe values)."""
    rows = []
    for error in errors:
        value = error.value
        if not (value is None or isinstance(value, (str, int, float, bool))):
            value = repr(value)
        rows.append({"file": error.path, "line": error.line, "field": error.field, "value": value,
                     "message": error.problem, "fix": error.fix})
    return rows


def one_line(exc: BaseException) -> str:
    """The fault as one line: ``<what> (<path>): <why>; <fix>``, or the product error's own message."""
    if isinstance(exc, MlopsError):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = str(StorageError.from_os_error(exc))
    elif isinstance(exc, json.JSONDecodeError):
        text = (f"a JSON file is damaged ({_UNKNOWN_PATH}): {exc.msg} at line {exc.lineno} column {exc.colno}; "
                "restore that file from a backup, or rewrite it")
    elif isinstance(exc, sqlite3.Error):
        text = f"a SQLite database failed ({_UNKNOWN_PATH}): {exc}; free space or fix its folder's permissions, then retry"
    else:
        raise TypeError(f"no one-line form for {type(exc).__name__}") from exc
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one subcommand; a known fault is one line on stderr and exit 1 (with the traceback under ``--debug``)."""
    try:
        return int(func(args))
    except (MlopsError, OSError, sqlite3.Error, json.JSONDecodeError) as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        if isinstance(exc, ConfigErrors):
            print_config_errors(exc.errors)
        else:
            print(PREFIX + one_line(exc), file=sys.stderr)
        return 1


def add_debug_flag(parser: argparse.ArgumentParser, *, top: bool = True) -> None:
    """``--debug`` on the command and every subcommand, so it works before or after the subcommand's name."""
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="on an error, also print the traceback")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                add_debug_flag(child, top=False)
