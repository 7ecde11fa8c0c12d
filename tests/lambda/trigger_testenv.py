"""
Shared test support for tests/lambda and tests/ci: valid events, and one real Airflow stack.

The stack is a real ``airflow api-server`` (simple auth manager, SQLite) on 127.0.0.1, with two
DAG bundles: the repository's ``dags/`` loader reading ``examples/``, and a ``foreign`` bundle whose DAG is outside the
mlops__ namespace, so tests can prove the trigger never reaches it. No scheduler runs: created
runs stay queued, which is all the trigger tests need.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LAMBDA_DIR = REPO / "lambda"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(LAMBDA_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDA_DIR))

ACCOUNT = "123456789012"
REGION = "us-east-1"
ECR_REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mlops-dev-trigger"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PROJECT, MODEL = "demo", "breast-cancer"
FOREIGN_DAG = "foreign_dag"
KINDS = ("train", "deploy", "retrain")


def valid_event(**overrides: Any) -> dict[str, Any]:
    version = overrides.get("version", "1.0.7")
    event = {
        "action": "train",
        "project": PROJECT,
        "model": MODEL,
        "version": version,
        "image": f"{ECR_REGISTRY}/{PROJECT}/{MODEL}:{version}",
        "commit": COMMIT,
        "requested_by": "gitlab:alice:pipeline:4242",
    }
    event.update(overrides)
    return event


@dataclass
class Context:
    """The parts of the Lambda context object the handler reads."""

    aws_request_id: str = "test-request"
    invoked_function_arn: str = FUNCTION_ARN
    function_name: str = "mlops-dev-trigger"


FOREIGN_DAGS = textwrap.dedent(
    f"""
    from airflow.sdk import DAG
    from airflow.providers.standard.operators.empty import EmptyOperator

    with DAG("{FOREIGN_DAG}", schedule=None, catchup=False):
        EmptyOperator(task_id="noop")
    """
)


@dataclass
class AirflowStack:
    base_url: str
    username: str
    password: str = field(repr=False)
    env: dict[str, str] = field(repr=False)
    server: Any = field(default=None, repr=False)

    def client(self) -> Any:
        return self.server.client()

    def dag_id(self, kind: str = "train") -> str:
        return f"mlops__{PROJECT}__{MODEL}__{kind}"

    def count_runs(self) -> int:
        """Every DAG run of every DAG, so a test can prove that nothing was created."""
        return int(self.client().request("GET", "/api/v2/dags/~/dagRuns?limit=1")["total_entries"])

    def lambda_env(self) -> dict[str, str]:
        """The Lambda environment that targets this api-server with username and password."""
        return {
            "MLOPS_TRIGGER_TARGET": "airflow",
            "MLOPS_AIRFLOW_API_URL": self.base_url,
            "MLOPS_AIRFLOW_USERNAME": self.username,
            "MLOPS_AIRFLOW_PASSWORD": self.password,
            "MLOPS_ECR_REGISTRY": ECR_REGISTRY,
        }


def _airflow(env: dict[str, str], *args: str, timeout: float = 180) -> None:
    airflow_bin = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow_bin), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def start_stack(root: Path, stack: ExitStack) -> AirflowStack:
    """Migrate a SQLite DB, serialise the DAGs and start the api-server; ``stack`` stops it."""
    from airflow_provider_mlops.airflow_api import api_server_env, run_api_server

    home = root / "airflow-home"
    foreign = root / "foreign-dags"
    home.mkdir(parents=True)
    foreign.mkdir()
    (foreign / "foreign_dags.py").write_text(FOREIGN_DAGS)
    mlops_dags = REPO / "dags"
    bundle = "airflow.dag_processing.bundles.local.LocalDagBundle"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))}
    base.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(mlops_dags),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
                [
                    {"name": "mlops", "classpath": bundle, "kwargs": {"path": str(mlops_dags)}},
                    {"name": "foreign", "classpath": bundle, "kwargs": {"path": str(foreign)}},
                ]
            ),
            "MLOPS_CONFIG_PATH": str(REPO / "examples"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
    )
    env = api_server_env(home, base)
    _airflow(env, "db", "migrate")
    _airflow(env, "dags", "reserialize")
    server = stack.enter_context(run_api_server(home, env=env))
    airflow = AirflowStack(server.base_url, server.username, server.password, env, server)
    client = airflow.client()
    for dag_id in [*(airflow.dag_id(kind) for kind in KINDS), FOREIGN_DAG]:
        client.unpause(dag_id)
    return airflow


_SHARED: dict[str, AirflowStack] = {}


def shared_stack(tmp_path_factory: Any, add_cleanup: Callable[[Callable[[], None]], None]) -> AirflowStack:
    """One stack per pytest session, whichever of tests/lambda and tests/ci asks first."""
    if "stack" not in _SHARED:
        exit_stack = ExitStack()
        try:
            _SHARED["stack"] = start_stack(tmp_path_factory.mktemp("airflow"), exit_stack)
        except BaseException:
            exit_stack.close()
            raise
        add_cleanup(exit_stack.close)
        add_cleanup(lambda: _SHARED.pop("stack", None))
    return _SHARED["stack"]


def start_moto(stack: ExitStack) -> str:
    """A moto server on 127.0.0.1 (ECR, S3, Secrets Manager); returns its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    stack.callback(server.stop)
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


_MOTO: dict[str, str] = {}


def shared_moto(add_cleanup: Callable[[Callable[[], None]], None]) -> str:
    if "url" not in _MOTO:
        exit_stack = ExitStack()
        _MOTO["url"] = start_moto(exit_stack)
        add_cleanup(exit_stack.close)
        add_cleanup(lambda: _MOTO.pop("url", None))
    return _MOTO["url"]


def aws_env(endpoint_url: str) -> dict[str, str]:
    """What boto3 needs to talk to moto: fake credentials and AWS_ENDPOINT_URL."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def unwrap(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer object: as a direct Invoke returns it, or from an HTTP response's JSON body."""
    if "body" in answer:
        assert answer["headers"]["Content-Type"] == "application/json", answer
        inner = json.loads(answer["body"])
        assert inner["statusCode"] == answer["statusCode"], answer
        return dict(inner)
    return answer


def _without(name: str) -> dict[str, Any]:
    event = valid_event()
    del event[name]
    return event


#: Malformed and hostile events: (id, raw event, status, error code, field or None).
#: Each must be refused with a 4xx answer and create nothing.
HOSTILE_EVENTS: list[tuple[str, Any, int, str, str | None]] = [
    ("traversal-in-project", valid_event(project="../../etc"), 400, "invalid_event", "project"),
    ("traversal-in-model", valid_event(model=f"{MODEL}/../../{FOREIGN_DAG}"), 400, "invalid_event", "model"),
    ("url-encoded-traversal", valid_event(project="%2e%2e%2f"), 400, "invalid_event", "project"),
    ("uppercase-name", valid_event(project="Demo"), 400, "invalid_event", "project"),
    ("dunder-injection", valid_event(model="x__deploy"), 400, "invalid_event", "model"),
    ("nul-byte-in-name", valid_event(model="breast\x00cancer"), 400, "invalid_event", "model"),
    ("foreign-dag-id-field", {**valid_event(), "dag_id": FOREIGN_DAG}, 400, "unknown_field", "dag_id"),
    ("foreign-dag-as-action", valid_event(action=FOREIGN_DAG), 400, "invalid_event", "action"),
    ("unknown-action", valid_event(action="backfill"), 400, "invalid_event", "action"),
    ("missing-commit", _without("commit"), 400, "missing_field", "commit"),
    ("empty-object", {}, 400, "missing_field", "action"),
    ("version-series-only", valid_event(version="1.0"), 400, "invalid_event", "version"),
    ("version-leading-zero", valid_event(version="01.0.1"), 400, "invalid_event", "version"),
    ("version-non-ascii-digit", valid_event(version="1.0.1\u0660"), 400, "invalid_event", "version"),
    ("version-as-number", valid_event(version=1.0), 400, "wrong_type", "version"),
    ("project-as-list", valid_event(project=[PROJECT]), 400, "wrong_type", "project"),
    ("action-as-null", valid_event(action=None), 400, "wrong_type", "action"),
    ("operator-object", valid_event(action={"$ne": "train"}), 400, "wrong_type", "action"),
    ("short-commit", valid_event(commit="0123456"), 400, "invalid_event", "commit"),
    ("uppercase-commit", valid_event(commit=COMMIT.upper()), 400, "invalid_event", "commit"),
    (
        "image-other-registry",
        valid_event(image=f"evil.example.com/{PROJECT}/{MODEL}:1.0.7"),
        400,
        "invalid_event",
        "image",
    ),
    (
        "image-other-model",
        valid_event(image=f"{ECR_REGISTRY}/{PROJECT}/other-model:1.0.7"),
        400,
        "invalid_event",
        "image",
    ),
    (
        "image-repo-traversal",
        valid_event(image=f"{ECR_REGISTRY}/{PROJECT}/{MODEL}/../other:1.0.7"),
        400,
        "invalid_event",
        "image",
    ),
    ("image-unpinned", valid_event(image=f"{ECR_REGISTRY}/{PROJECT}/{MODEL}"), 400, "invalid_event", "image"),
    (
        "image-latest-tag",
        valid_event(image=f"{ECR_REGISTRY}/{PROJECT}/{MODEL}:latest"),
        400,
        "invalid_event",
        "image",
    ),
    (
        "log-injection",
        valid_event(requested_by='alice\n{"level": "INFO"}'),
        400,
        "invalid_event",
        "requested_by",
    ),
    ("empty-requested-by", valid_event(requested_by=""), 400, "invalid_event", "requested_by"),
    ("oversized-field", valid_event(requested_by="a" * 10_000), 413, "payload_too_large", None),
    (
        "oversized-json-text",
        json.dumps(valid_event(requested_by="b" * 10_000)),
        413,
        "payload_too_large",
        None,
    ),
    ("non-json-text", "action=train&project=demo", 400, "not_json", None),
    ("non-utf8-bytes", b"\xff\xfe\x00garbage", 400, "not_json", None),
    ("json-array", ["train", PROJECT, MODEL], 400, "not_an_object", None),
    ("json-scalar-text", '"train"', 400, "not_an_object", None),
    ("function-url-bad-body", {"headers": {}, "requestContext": {}, "body": "{oops"}, 400, "not_json", None),
    # A validator in front that keeps the first key would see "train"; the Lambda must not run "deploy".
    (
        "duplicate-key",
        json.dumps(valid_event())[:-1] + ', "action": "deploy"}',
        400,
        "duplicate_key",
        "action",
    ),
    (
        "function-url-duplicate-key",
        {"headers": {}, "requestContext": {}, "body": json.dumps(valid_event())[:-1] + ', "project": "other"}'},
        400,
        "duplicate_key",
        "project",
    ),
    (
        "function-url-base64-flag-as-string",
        {"headers": {}, "requestContext": {}, "body": json.dumps(valid_event()), "isBase64Encoded": "false"},
        400,
        "wrong_type",
        "isBase64Encoded",
    ),
    (
        "function-url-bad-base64",
        {"headers": {}, "requestContext": {}, "body": "%%%", "isBase64Encoded": True},
        400,
        "not_json",
        None,
    ),
]
