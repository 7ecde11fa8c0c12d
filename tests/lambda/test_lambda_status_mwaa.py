"""
The status query on MWAA: ``InvokeRestApi`` requests checked by botocore's ``Stubber`` against the
real ``mwaa`` model (``Path`` at most 64 characters), replayed against a real api-server to get
the answers the stub gives back, and task logs read from CloudWatch Logs (moto).

MWAA forwards ``Path`` below the REST API root (``/api/v2`` on Airflow 3) with
``QueryParameters`` as the query string; the replay does the same.
"""

from __future__ import annotations

import json
import time
import urllib.parse

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from mlops_trigger.app import handle
from mlops_trigger.event import parse_event
from mlops_trigger.logs import get_logger
from mlops_trigger.mwaa import MwaaTarget
from mlops_trigger.settings import Settings
from mlops_trigger.targets import TaskInstance
from status_testenv import FAILED_TASK_LOG, HOSTILE_QUERIES, fail_run, status_query
from trigger_testenv import ECR_REGISTRY, MODEL, PROJECT, Context, valid_event

from airflow_provider_mlops.airflow_api import AirflowApiError

ENVIRONMENT = "mlops-dev"
API_ROOT = "/api/v2"
LOG_GROUP = f"airflow-{ENVIRONMENT}-Task"
UI_URL = "https://abc123.c2.us-east-1.airflow.amazonaws.com"


@pytest.fixture
def mwaa():
    client = boto3.client(
        "mwaa",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(inject_host_prefix=False),
    )
    sent: list[dict] = []
    client.meta.events.register(
        "provide-client-params.mwaa.InvokeRestApi", lambda params, **_: sent.append(dict(params))
    )
    with Stubber(client) as stubber:
        yield client, stubber, sent
        stubber.assert_no_pending_responses()


@pytest.fixture
def logs(aws):
    """CloudWatch Logs on moto, with MWAA's task log group."""
    client = boto3.client("logs")
    client.create_log_group(logGroupName=LOG_GROUP)
    return client


def call(event, client, logs_client=None, ui_url=UI_URL):
    env = {"MLOPS_MWAA_ENVIRONMENT": ENVIRONMENT, "MLOPS_ECR_REGISTRY": ECR_REGISTRY}
    if ui_url:
        env["MLOPS_AIRFLOW_UI_URL"] = ui_url
    target = MwaaTarget(ENVIRONMENT, client=client, logs_client=logs_client)
    return handle(event, Context(), settings=Settings.from_env(env), target=target, logger=get_logger())


def replay(airflow_stack, request):
    """Send an InvokeRestApi request to the real api-server the way MWAA forwards it."""
    path = API_ROOT + request["Path"]
    if request.get("QueryParameters"):
        path += "?" + urllib.parse.urlencode(request["QueryParameters"])
    try:
        return 200, airflow_stack.client().request(request["Method"], path, request.get("Body"))
    except AirflowApiError as exc:
        return exc.status, exc.body


def expected_requests(dag_id, run_id):
    """What the MWAA target sends for one status query, in order."""
    return [
        {
            "Name": ENVIRONMENT,
            "Path": f"/dags/{dag_id}/dagRuns",
            "Method": "GET",
            "QueryParameters": {"run_id_pattern": run_id, "limit": 100},
        },
        {
            "Name": ENVIRONMENT,
            "Path": "/dags/~/dagRuns/~/taskInstances/list",
            "Method": "POST",
            "Body": {"dag_ids": [dag_id], "dag_run_ids": [run_id], "page_limit": 100, "page_offset": 0},
        },
    ]


def stub_with_airflows_answers(stubber, airflow_stack, requests):
    """Replay each request against the real api-server and stub MWAA's response with its answer."""
    for request in requests:
        status, body = replay(airflow_stack, request)
        assert status == 200, (request, body)
        stubber.add_response(
            "invoke_rest_api", {"RestApiStatusCode": 200, "RestApiResponse": body}, expected_params=request
        )


def now_ms():
    """CloudWatch refuses events older than 14 days: log them as of now."""
    return int(time.time() * 1000)


def real_run(airflow_stack, version):
    """A run that the trigger's event makes, created on the real api-server (queued: no scheduler)."""
    event = parse_event(
        valid_event(version=version, requested_by=f"gitlab:mwaa:{version}"), ecr_registry=ECR_REGISTRY
    )
    airflow_stack.client().trigger_dag_run(event.dag_id, event.run_id, event.conf)
    return event.dag_id, event.run_id


def test_a_queued_run_through_invoke_rest_api(mwaa, airflow_stack):
    client, stubber, sent = mwaa
    dag_id, run_id = real_run(airflow_stack, "4.2.1")
    stub_with_airflows_answers(stubber, airflow_stack, expected_requests(dag_id, run_id))
    answer = call(status_query(dag_run_id=run_id), client)
    assert answer["statusCode"] == 200 and answer["target"] == "mwaa", answer
    assert answer["state"] == "queued" and answer["failed"] == [] and answer["tasks"]
    assert answer["url"] == f"{UI_URL}/dags/{dag_id}/runs/{run_id}"
    assert all(len(request["Path"]) <= MwaaTarget.MAX_PATH for request in sent)


def test_a_failed_run_with_its_log_tail_from_cloudwatch(mwaa, airflow_stack, logs):
    client, stubber, _ = mwaa
    dag_id, run_id = real_run(airflow_stack, "4.2.2")
    task_id = fail_run(airflow_stack, dag_id, run_id)
    stub_with_airflows_answers(stubber, airflow_stack, expected_requests(dag_id, run_id))
    stream = f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt=1.log"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[
            {"timestamp": now_ms() + n, "message": json.dumps(entry)}
            for n, entry in enumerate(FAILED_TASK_LOG)
        ],
    )
    answer = call(status_query(dag_run_id=run_id), client, logs)
    assert answer["state"] == "failed", answer
    (failure,) = answer["failed"]
    assert (failure["task_id"], failure["try_number"]) == (task_id, 1)
    assert failure["log_tail"].endswith("failed: ValueError: boom")
    assert "DAG bundles loaded" not in failure["log_tail"]


def test_a_missing_log_stream_or_a_denied_read_is_said_in_the_tail(mwaa, airflow_stack, logs):
    client, stubber, _ = mwaa
    dag_id, run_id = real_run(airflow_stack, "4.2.3")
    fail_run(airflow_stack, dag_id, run_id)
    stub_with_airflows_answers(stubber, airflow_stack, expected_requests(dag_id, run_id))
    (failure,) = call(status_query(dag_run_id=run_id), client, logs)["failed"]
    assert failure["log_tail"].startswith("(log not available: CloudWatch has no log stream")

    denied = boto3.client("logs")
    with Stubber(denied) as logs_stub:
        logs_stub.add_client_error("get_log_events", service_error_code="AccessDeniedException")
        stub_with_airflows_answers(stubber, airflow_stack, expected_requests(dag_id, run_id))
        answer = call(status_query(dag_run_id=run_id), client, denied)
    assert answer["state"] == "failed"
    assert f"logs:GetLogEvents on {LOG_GROUP}" in answer["failed"][0]["log_tail"]


def test_a_mapped_task_log_is_read_from_its_own_stream(logs):
    stream = f"dag_id=d/run_id=trigger__1.0.7__{'0' * 20}/task_id=t/map_index=2/attempt=3.log"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": now_ms(), "message": "plain line"}],
    )
    target = MwaaTarget(ENVIRONMENT, client=object(), logs_client=logs)
    entries = target.task_log("d", f"trigger__1.0.7__{'0' * 20}", TaskInstance("t", "failed", 3, 2))
    assert entries == ["plain line"]


def test_an_unknown_run_through_mwaa_is_a_404(mwaa, airflow_stack):
    client, stubber, _ = mwaa
    run_id = "trigger__9.9.9__ffffffffffffffffffff"
    dag_id = f"mlops__{PROJECT}__{MODEL}__train"
    stub_with_airflows_answers(stubber, airflow_stack, expected_requests(dag_id, run_id)[:1])
    answer = call(status_query(dag_run_id=run_id), client)
    assert (answer["statusCode"], answer["error"]) == (404, "run_not_found")


def test_an_unknown_dag_through_mwaa_is_a_404(mwaa, airflow_stack):
    client, stubber, _ = mwaa
    request = expected_requests("mlops__nobody__nothing__train", "trigger__1.0.7__" + "0" * 20)[0]
    status, body = replay(airflow_stack, request)
    assert status == 404
    stubber.add_client_error(
        "invoke_rest_api",
        service_error_code="RestApiClientException",
        http_status_code=400,
        modeled_fields={"RestApiStatusCode": status, "RestApiResponse": {"detail": "not found"}},
        expected_params=request,
    )
    answer = call(
        status_query(
            project="nobody", model="nothing", dag_run_id=request["QueryParameters"]["run_id_pattern"]
        ),
        client,
    )
    assert (answer["statusCode"], answer["error"]) == (404, "run_not_found")


@pytest.mark.parametrize(
    ("error", "modeled", "status", "code"),
    [
        ("AccessDeniedException", None, 502, "airflow_auth_failed"),
        ("ResourceNotFoundException", None, 500, "lambda_misconfigured"),
        (
            "RestApiServerException",
            {"RestApiStatusCode": 500, "RestApiResponse": {"detail": "db"}},
            502,
            "airflow_error",
        ),
        (
            "RestApiClientException",
            {"RestApiStatusCode": 403, "RestApiResponse": {"detail": "no"}},
            502,
            "airflow_auth_failed",
        ),
    ],
)
def test_mwaa_errors_on_a_status_query(mwaa, error, modeled, status, code):
    client, stubber, _ = mwaa
    stubber.add_client_error(
        "invoke_rest_api", service_error_code=error, http_status_code=400, modeled_fields=modeled or {}
    )
    answer = call(status_query(), client)
    assert (answer["statusCode"], answer["error"]) == (status, code)


def test_without_a_ui_address_the_answer_has_no_link(mwaa, airflow_stack):
    client, stubber, _ = mwaa
    dag_id, run_id = real_run(airflow_stack, "4.2.4")
    stub_with_airflows_answers(stubber, airflow_stack, expected_requests(dag_id, run_id))
    answer = call(status_query(dag_run_id=run_id), client, ui_url=None)
    assert answer["statusCode"] == 200 and answer["url"] is None


def test_hostile_status_queries_never_reach_mwaa(mwaa):
    client, _, sent = mwaa
    for _, raw, status, _, _ in HOSTILE_QUERIES:
        assert call(raw, client)["statusCode"] == status
    assert sent == []


def test_names_too_long_for_mwaa_path_are_refused_before_calling(mwaa):
    client, _, sent = mwaa
    answer = call(status_query(project="p" * 20, model="m" * 20), client)
    assert (answer["statusCode"], answer["error"]) == (400, "dag_id_too_long_for_mwaa")
    assert sent == []
