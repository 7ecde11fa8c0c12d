"""
The example model's full pipeline, locally, on real Airflow DAGs: ``mlops demo``.

1. trains, evaluates, gates and registers the breast-cancer classifier (train DAG);
2. waits for approval in the deploy DAG and approves it through Airflow's REST API, as a
   person would from the UI or ``mlops approve``;
3. deploys it to a local endpoint, calls it, prints a prediction;
4. trains again with other hyperparameters and gates the candidate against production.

Everything lives under ``--workdir`` (Airflow's SQLite DB, the registry, the endpoints).

The demo is meant to be read: it hides deprecation warnings raised outside this package (by
Airflow's own dependencies; nothing here can fix them) and prints a line every few seconds while
a long step runs, so it is never silent for long.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from airflow_provider_mlops.naming import model_group

PROJECT, MODEL = "demo", "breast-cancer"
GROUP = model_group(PROJECT, MODEL)  # the registry group and endpoint name


#: Warnings raised by third-party code that the demo cannot fix, each ``(message regex, category)``.
#: Starlette's is a UserWarning subclass, so the DeprecationWarning rule does not cover it.
THIRD_PARTY_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"Using `httpx` with `starlette\.testclient` is deprecated", UserWarning),
)
#: Matches every module outside this package (``warnings`` matches module names from the start).
OUTSIDE_THIS_PACKAGE = r"(?!airflow_provider_mlops(\.|$))"


def quiet_third_party_warnings() -> None:
    """
    Hide deprecation warnings that other packages raise, and the known third-party ones above.

    This package's own deprecation warnings still show. Call it again after importing Airflow:
    its settings may add filters of their own in front of these.
    """
    deprecations: tuple[type[Warning], ...] = (DeprecationWarning, PendingDeprecationWarning)
    for deprecation in deprecations:
        warnings.filterwarnings("ignore", category=deprecation, module=OUTSIDE_THIS_PACKAGE)
    for message, category in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


@contextmanager
def progress(what: str, every: float = 5.0) -> Iterator[None]:
    """Print ``waiting for <what> (N s)`` every ``every`` seconds until the block ends."""
    done = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not done.wait(every):
            print(f"    waiting for {what} ({time.monotonic() - started:.0f} s)", flush=True)

    thread = threading.Thread(target=beat, name=f"demo-progress: {what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=every + 1)


def _say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _prepare_env(workdir: Path, dags: Path, examples: Path) -> dict[str, str]:
    env = {
        "AIRFLOW_HOME": str(workdir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{workdir / 'airflow' / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("MLOPS_DEMO_LOG_LEVEL", "WARNING"),
        "MLOPS_CONFIG_PATH": str(examples),
        "MLOPS_HOME": str(workdir / "mlops"),
    }
    os.environ.update(env)
    (workdir / "airflow").mkdir(parents=True, exist_ok=True)
    from airflow_provider_mlops.airflow_api import api_server_env

    # The api-server and dag.test() in this process must sign and accept the same tokens.
    shared = api_server_env(workdir / "airflow", {})
    os.environ.update(shared)
    return {**env, **shared}


def approve_when_waiting(client: Any, dag_id: str, version: str, config: Path, timeout: float = 300) -> None:
    """Wait until the deploy run parks in awaiting_input, then approve through ``mlops approve``."""
    from airflow_provider_mlops import cli

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pending in client.pending_approvals(dag_id):
            print(f"    approval requested: {pending['subject']}", flush=True)
            if cli.main(["approve", f"{PROJECT}/{MODEL}", version, "--config", str(config)]) != 0:
                raise RuntimeError("mlops approve failed")
            return
        time.sleep(0.5)
    raise TimeoutError(f"no approval request for {dag_id} {version} within {timeout}s")


def run_demo(workdir: Path, *, keep_serving: bool = False, dags: Path = Path("dags"), examples: Path = Path("examples")) -> int:
    started = time.monotonic()
    quiet_third_party_warnings()
    workdir, dags, examples = workdir.resolve(), dags.resolve(), examples.resolve()
    config = examples / MODEL / "mlops.yaml"
    for needed in (dags / "mlops_dags.py", config):
        if not needed.exists():
            print(f"error: {needed} not found; run the demo from the repository root", file=sys.stderr)
            return 1
    from airflow_provider_mlops.serving.local import LocalServing

    LocalServing(workdir / "mlops").stop(GROUP)  # a previous demo's endpoint
    shutil.rmtree(workdir, ignore_errors=True)
    env = _prepare_env(workdir, dags, examples)

    _say("Creating Airflow's metadata DB (SQLite)")
    airflow_bin = str(Path(sys.executable).with_name("airflow"))
    with progress("the metadata DB"):
        subprocess.run([airflow_bin, "db", "migrate"], env={**os.environ, **env}, check=True, capture_output=True)

    from airflow.dag_processing.dagbag import DagBag

    from airflow_provider_mlops import runtime
    from airflow_provider_mlops.airflow_api import run_api_server
    from airflow_provider_mlops.gate import gate_table_markdown
    from airflow_provider_mlops.serving.local import invoke

    quiet_third_party_warnings()  # again: importing Airflow may have put its filters first
    bag = DagBag(str(dags))
    if bag.import_errors:
        print(f"error: DAG import errors: {bag.import_errors}", file=sys.stderr)
        return 1
    train = bag.get_dag(f"mlops__{PROJECT}__{MODEL}__train")
    deploy = bag.get_dag(f"mlops__{PROJECT}__{MODEL}__deploy")
    registry = runtime.registry_for(runtime.config_at(str(config)))

    def run(dag: Any, conf: dict[str, Any]) -> None:
        with progress(f"the {dag.dag_id} run"):
            run = dag.test(run_conf=conf)
        if str(run.state) != "success":
            raise SystemExit(f"DAG {dag.dag_id} ended {run.state}; see logs under {workdir / 'airflow'}")

    _say(f"Train DAG {train.dag_id}: train -> evaluate -> gate -> register")
    run(train, {"requested_by": "demo"})
    first = registry.latest(GROUP)
    assert first is not None
    print(f"    registered {GROUP} {first.semver} ({first.status})")
    print(_indent(gate_table_markdown(first.gate)))

    _say("Starting a local airflow api-server for the approval (Airflow's HITL REST API)")
    with ExitStack() as stack:
        with progress("the api-server"):
            server = stack.enter_context(
                run_api_server(workdir / "airflow", env={**os.environ, **env}, username="demo-approver")
            )
        os.environ.update({"MLOPS_AIRFLOW_API_URL": server.base_url, "MLOPS_AIRFLOW_USERNAME": server.username,
                           "MLOPS_AIRFLOW_PASSWORD": server.password})
        approver = threading.Thread(
            target=approve_when_waiting, args=(server.client(), deploy.dag_id, first.semver, config), daemon=True
        )
        approver.start()
        _say(f"Deploy DAG {deploy.dag_id}: resolve -> approve (waits for a person) -> deploy -> smoke test -> promote")
        run(deploy, {"model_version": first.semver, "requested_by": "demo"})
        approver.join(timeout=5)
        for key in ("MLOPS_AIRFLOW_API_URL", "MLOPS_AIRFLOW_USERNAME", "MLOPS_AIRFLOW_PASSWORD"):
            os.environ.pop(key, None)

    deployed = registry.get(GROUP, first.semver)
    print(f"    approved by {deployed.approval.get('by')} at {deployed.approval.get('at')}; stage: {deployed.stage}")
    url = deployed.deployment["url"]
    payload = (examples / MODEL / "smoke_payload.json").read_bytes()
    status, headers, body = invoke(url, payload)
    _say(f"Prediction from {url}/invocations (version {headers.get('X-Mlops-Model-Version')}): HTTP {status}")
    print(f"    {body.decode()}")

    _say("Second training run (C=0.05), gated against production " + first.semver)
    run(train, {"requested_by": "demo", "hyperparameters": {"C": 0.05}})
    second = registry.latest(GROUP)
    assert second is not None
    print(f"    registered {GROUP} {second.semver} ({second.status})")
    print(_indent(gate_table_markdown(second.gate)))

    if not keep_serving:
        LocalServing(workdir / "mlops").stop(GROUP)
        print(f"\n    endpoint stopped (run with --keep-serving to leave it on {url})")
    elapsed = time.monotonic() - started
    summary = {"first": first.semver, "second": second.semver, "prediction": json.loads(body), "seconds": round(elapsed, 1)}
    _say(f"Demo finished in {elapsed:.1f}s: {json.dumps(summary)}")
    return 0 if status == 200 else 1


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
