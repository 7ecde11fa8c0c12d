"""
``mlops endpoint status | stop | invoke PROJECT/MODEL``: the local endpoints under the MLOps home.

An endpoint is named by its model (``demo/breast-cancer``: the endpoint name comes from the
model's mlops.yaml, ``deployment.endpoint_name`` or ``<project>--<model>``), or, as before, by the
endpoint name itself. An endpoint that was never deployed is an error (exit 1), not empty JSON.
``stop`` stops the router and the model servers and keeps the endpoint's deployment history
(``history.json`` in its state folder; the registry's audit log is never touched).

No Airflow import.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_mlops.cli_help import CONFIG_HELP, SubParsers, add_command
from airflow_provider_mlops.exceptions import DeploymentError, InputError, StorageError

#: Where ``stop`` keeps the versions an endpoint served, oldest first (the serving state's
#: ``current.json`` goes when its processes stop).
HISTORY_FILE = "history.json"
MAX_HISTORY = 200
if TYPE_CHECKING:
    from airflow_provider_mlops.config.loader import LoadedConfig

_ENDPOINT_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@dataclass(frozen=True)
class Endpoint:
    """A local endpoint as the command line named it."""

    name: str
    home: Path
    model: str | None = None  # PROJECT/MODEL when named by its model
    loaded: LoadedConfig | None = None  # its config then

    @property
    def state(self) -> Path:
        return self.home / "endpoints" / self.name


def resolve_endpoint(ref: str, *, config: str | None, home: str | None) -> Endpoint:
    """``PROJECT/MODEL`` (the endpoint name derived from its config) or a raw endpoint name."""
    from airflow_provider_mlops.cli_registry import find_config, parse_model_ref

    if "/" in ref:
        project, model = parse_model_ref(ref)
        loaded = find_config(project, model, config)
        cfg = loaded.config
        if cfg.serving_backend != "local":
            raise InputError(
                f"{ref} serves on {cfg.serving_backend} (endpoint {cfg.endpoint_name}, {loaded.path}): "
                "mlops endpoint manages local endpoints only; use the serving platform's console or CLI"
            )
        from airflow_provider_mlops import runtime

        return Endpoint(cfg.endpoint_name, Path(home) if home else runtime.mlops_home(loaded), ref, loaded)
    if config:
        raise InputError(f"--config {config} goes with PROJECT/MODEL, not with the endpoint name {ref!r}: "
                         "name the endpoint by its model (for example demo/breast-cancer), or drop --config")
    if not _ENDPOINT_NAME_RE.fullmatch(ref):
        raise InputError(
            f"endpoint {ref!r} must be PROJECT/MODEL (for example demo/breast-cancer) or an endpoint name "
            "(letters, digits and '-', for example demo--breast-cancer)"
        )
    return Endpoint(ref, Path(home or os.environ.get("MLOPS_HOME") or Path.home() / ".mlops"))


def _require_deployed(endpoint: Endpoint) -> None:
    """Refuse an endpoint that has no state folder: nothing was ever deployed there."""
    if endpoint.state.is_dir():
        return
    folder = endpoint.home / "endpoints"
    known = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    there = f"endpoints there: {', '.join(known)}" if known else "there are no endpoints there"
    whose = f"{endpoint.model} has no endpoint {endpoint.name}" if endpoint.model else f"no endpoint {endpoint.name}"
    raise DeploymentError(
        f"{whose} under {folder} ({there}); deploy a version with the model's deploy DAG, "
        "or pass --home (or set MLOPS_HOME) to look in another MLOps home"
    )


def _archived_history(state: Path) -> list[str]:
    try:
        data = json.loads((state / HISTORY_FILE).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise StorageError("cannot read the endpoint's history", path=state / HISTORY_FILE, why=str(exc),
                           fix="restore it from a backup, or delete it to start the endpoint's history again") from None
    return [str(v) for v in data.get("history", [])] if isinstance(data, dict) else []


def endpoint_status(endpoint: Endpoint) -> dict[str, Any]:
    """The serving state, with the history kept across stops (oldest first)."""
    from airflow_provider_mlops.serving.local import LocalServing

    _require_deployed(endpoint)
    status = LocalServing(endpoint.home).status(endpoint.name)
    status["history"] = [*_archived_history(endpoint.state), *status.get("history", [])][-MAX_HISTORY:]
    if endpoint.model:
        status["model"] = endpoint.model
    return status


def stop_endpoint(endpoint: Endpoint) -> dict[str, Any]:
    """Stop the endpoint's processes; its history goes to ``history.json`` first, and the stop to the audit log."""
    from airflow_provider_mlops._proc import write_json_atomic
    from airflow_provider_mlops.serving.local import LocalServing

    before = endpoint_status(endpoint)
    LocalServing(endpoint.home).stop(endpoint.name)
    try:
        write_json_atomic(endpoint.state / HISTORY_FILE, {"history": before["history"]})
    except OSError as exc:
        raise StorageError.from_os_error(exc, f"stopped endpoint {endpoint.name} but cannot keep its history",
                                         path=endpoint.state / HISTORY_FILE) from exc
    if endpoint.loaded is not None:
        from airflow_provider_mlops import runtime

        runtime.registry_for(endpoint.loaded).record_event(runtime.group_of(endpoint.loaded), "endpoint_stopped", {
            "endpoint": endpoint.name, "version": before.get("version"),
            "by": os.environ.get("MLOPS_APPROVER") or getpass.getuser(),
        })
    return before


def read_payload(payload: str | None, payload_file: str | None, stdin: IO[bytes] | None = None) -> bytes:
    """The request body: ``--payload``, ``--payload-file``, or stdin when it is not a terminal; never empty."""
    if payload is not None and payload_file is not None:
        raise InputError("pass --payload or --payload-file, not both")
    example = "for example --payload '{\"instances\": [[1.0, 2.0]]}', --payload-file request.json, or < request.json"
    if payload_file is not None:
        try:
            body = Path(payload_file).read_bytes()
        except OSError as exc:
            raise InputError(f"--payload-file {payload_file}: cannot read it ({exc.strerror or exc}); {example}") from None
        where = f"--payload-file {payload_file}"
    elif payload is not None:
        body, where = payload.encode(), "--payload"
    else:
        source = stdin if stdin is not None else sys.stdin.buffer
        if source.isatty():
            raise InputError(f"mlops endpoint invoke needs a request body and stdin is a terminal; {example}")
        body, where = source.read(), "stdin"
    if not body.strip():
        raise InputError(f"the request body from {where} is empty: the endpoint would get nothing to predict; {example}")
    return body


def cmd_endpoint(args: argparse.Namespace) -> int:
    endpoint = resolve_endpoint(args.endpoint, config=args.config, home=args.home)
    if args.action == "status":
        print(json.dumps(endpoint_status(endpoint), indent=2))
        return 0
    if args.action == "stop":
        before = stop_endpoint(endpoint)
        print(f"stopped endpoint {endpoint.name} (was serving {before.get('version') or 'nothing'}); "
              f"its history ({len(before['history'])} deploys) is kept")
        return 0
    from airflow_provider_mlops.serving.local import LocalServing, invoke

    body = read_payload(args.payload, args.payload_file)
    _require_deployed(endpoint)
    url = LocalServing(endpoint.home).ensure_running(endpoint.name)  # a router that died is started again on its port
    status, headers, answer = invoke(url, body, content_type=args.content_type)
    print(f"HTTP {status} from version {headers.get('X-Mlops-Model-Version')}: {answer.decode(errors='replace')}")
    return 0 if status == 200 else 1


def add_parsers(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """The subcommand ``endpoint`` and its actions."""
    p = add_command(sub, "endpoint", help="inspect, call or stop a model's local endpoint",
                    examples=["mlops endpoint status demo/breast-cancer",
                              "mlops endpoint invoke demo/breast-cancer --payload-file payload.json"],
                    details="ENDPOINT is PROJECT/MODEL (the endpoint name comes from its mlops.yaml) or the "
                            "endpoint name itself.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    specs = [
        ("status", "print the endpoint's URL, serving version, processes and history as JSON; exit 1 if unknown",
         ["mlops endpoint status demo/breast-cancer", "mlops endpoint status demo--breast-cancer --home .demo/mlops"]),
        ("stop", "stop the endpoint's router and model servers; its deployment history and audit log stay",
         ["mlops endpoint stop demo/breast-cancer"]),
        ("invoke", "send one request to the endpoint and print the answer; exit 1 unless HTTP 200",
         ["mlops endpoint invoke demo/breast-cancer --payload '{\"instances\": [[14.1, 20.3]]}'",
          "mlops endpoint invoke demo/breast-cancer < payload.json"]),
    ]
    for name, line, examples in specs:
        a = add_command(actions, name, help=line, examples=examples)
        a.add_argument("endpoint", metavar="ENDPOINT",
                       help="PROJECT/MODEL (for example demo/breast-cancer), or the endpoint name (demo--breast-cancer)")
        a.add_argument("--config", help=CONFIG_HELP)
        a.add_argument("--home", help="the MLOps home (default: the config's registry.home, else $MLOPS_HOME or ~/.mlops)")
        if name == "invoke":
            a.add_argument("--payload", help="the request body, for example '{\"instances\": [[14.1, 20.3]]}'")
            a.add_argument("--payload-file", help="a file holding the request body (default: read stdin when piped)")
            a.add_argument("--content-type", default="application/json",
                           help="the body's content type (default application/json)")
        a.set_defaults(func=cmd_endpoint)
