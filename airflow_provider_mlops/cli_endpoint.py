"""
``mlops endpoint status | stop | invoke NAME``: the local endpoints under the MLOps home.

No Airflow import.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def cmd_endpoint(args: argparse.Namespace) -> int:
    from airflow_provider_mlops.serving.local import LocalServing, invoke

    home = Path(args.home or os.environ.get("MLOPS_HOME") or Path.home() / ".mlops")
    serving = LocalServing(home)
    if args.action == "status":
        print(json.dumps(serving.status(args.name), indent=2))
    elif args.action == "stop":
        serving.stop(args.name)
        print(f"stopped endpoint {args.name}")
    else:
        url = serving.ensure_running(args.name)  # a router that died is started again on its port
        body = Path(args.payload_file).read_bytes() if args.payload_file else (args.payload or "").encode()
        status, headers, answer = invoke(url, body)
        print(f"HTTP {status} from version {headers.get('X-Mlops-Model-Version')}: {answer.decode(errors='replace')}")
        return 0 if status == 200 else 1
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The subcommand ``endpoint``."""
    p = sub.add_parser("endpoint", help="inspect, call or stop a local endpoint")
    p.add_argument("action", choices=["status", "stop", "invoke"])
    p.add_argument("name")
    p.add_argument("--home", help="the MLOps home (default: $MLOPS_HOME or ~/.mlops)")
    p.add_argument("--payload")
    p.add_argument("--payload-file")
    p.set_defaults(func=cmd_endpoint)
