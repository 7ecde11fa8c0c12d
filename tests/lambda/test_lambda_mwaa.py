"""
The Lambda's MWAA path: requests checked by botocore's Stubber against the real ``mwaa`` API
model, then replayed (Path, Method, Body) against a real api-server to prove Airflow accepts them.

MWAA's ``InvokeRestApi`` forwards ``Path`` below the Airflow REST API root (``/api/v2`` on
Airflow 3) and answers Airflow's 4xx as ``RestApiClientException`` with ``RestApiStatusCode``.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from mlops_trigger.app import handle
from mlops_trigger.logs import get_logger
from mlops_trigger.mwaa import MwaaTarget
from mlops_trigger.settings import Settings
from trigger_testenv import ECR_REGISTRY, MODEL, PROJECT, Context, valid_event

from airflow_provider_mlops.airflow_api import AirflowApiError

ENVIRONMENT = "mlops-dev"
API_ROOT = "/api/v2"


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

    def record(params, **_):
        sent.append(dict(params))

    client.meta.events.register("provide-client-params.mwaa.InvokeRestApi", record)
    with Stubber(client) as stubber:
        yield client, stubber, sent
        stubber.assert_no_pending_responses()


def settings() -> Settings:
    return Settings.from_env({"MLOPS_MWAA_ENVIRONMENT": ENVIRONMENT, "MLOPS_ECR_REGISTRY": ECR_REGISTRY})


def call(event, client):
    return handle(
        event,
        Context(),
        settings=settings(),
        target=MwaaTarget(ENVIRONMENT, client=client),
        logger=get_logger(),
    )


def replay(airflow_stack, request):
    """Send an InvokeRestApi request to the real api-server the way MWAA forwards it."""
    client = airflow_stack.client()
    try:
        return 200, client.request(request["Method"], API_ROOT + request["Path"], request.get("Body"))
    except AirflowApiError as exc:
        return exc.status, exc.body


def test_invoke_rest_api_request_is_valid_and_airflow_accepts_it(mwaa, airflow_stack):
    client, stubber, sent = mwaa
    event = valid_event(version="2.3.1", image=f"{ECR_REGISTRY}/{PROJECT}/{MODEL}:2.3.1")
    dag_id = f"mlops__{PROJECT}__{MODEL}__train"
    stubber.add_response(
        "invoke_rest_api",
        {"RestApiStatusCode": 200, "RestApiResponse": {"dag_run_id": "x", "state": "queued"}},
        expected_params={
            "Name": ENVIRONMENT,
            "Path": f"/dags/{dag_id}/dagRuns",
            "Method": "POST",
            "Body": {
                "dag_run_id": stub_any_run_id(),
                "logical_date": None,
                "conf": {k: event[k] for k in ("version", "image", "commit", "requested_by")},
            },
        },
    )
    answer = call(event, client)
    assert answer["statusCode"] == 201 and answer["target"] == "mwaa", answer
    assert answer["state"] == "queued"
    (request,) = sent
    assert len(request["Path"]) <= MwaaTarget.MAX_PATH

    status, created = replay(airflow_stack, request)
    assert status == 200, created
    assert created["dag_run_id"] == answer["dag_run_id"] == request["Body"]["dag_run_id"]
    assert created["conf"] == request["Body"]["conf"]


def test_retried_invocation_maps_airflows_409_to_the_existing_run(mwaa, airflow_stack):
    client, stubber, sent = mwaa
    event = valid_event(version="2.3.2", image=f"{ECR_REGISTRY}/{PROJECT}/{MODEL}:2.3.2")
    stubber.add_response("invoke_rest_api", {"RestApiStatusCode": 200, "RestApiResponse": {}})
    first = call(event, client)
    # What MWAA answers when Airflow says 409: replayed below to prove Airflow does say it.
    stubber.add_client_error(
        "invoke_rest_api",
        service_error_code="RestApiClientException",
        http_status_code=400,
        modeled_fields={
            "RestApiStatusCode": 409,
            "RestApiResponse": {"detail": "Unique constraint violation"},
        },
    )
    again = call(event, client)
    assert (first["statusCode"], again["statusCode"]) == (201, 200)
    assert again["dag_run_id"] == first["dag_run_id"] and again["created"] is False
    assert sent[0] == sent[1], "a retried invocation sends the very same request"

    statuses = [replay(airflow_stack, request)[0] for request in sent]
    assert statuses == [200, 409]


@pytest.mark.parametrize(
    ("airflow_status", "status", "code"),
    [
        (404, 404, "dag_not_found"),
        (400, 422, "rejected_by_airflow"),
        (403, 502, "airflow_auth_failed"),
        (500, 502, "airflow_error"),
    ],
)
def test_airflow_refusals_through_mwaa(mwaa, airflow_status, status, code):
    client, stubber, _ = mwaa
    error = "RestApiServerException" if airflow_status >= 500 else "RestApiClientException"
    stubber.add_client_error(
        "invoke_rest_api",
        service_error_code=error,
        http_status_code=400,
        modeled_fields={"RestApiStatusCode": airflow_status, "RestApiResponse": {"detail": "no"}},
    )
    answer = call(valid_event(), client)
    assert (answer["statusCode"], answer["error"]) == (status, code)


def test_unknown_dag_replayed_is_a_404(airflow_stack):
    status, _ = replay(
        airflow_stack,
        {
            "Method": "POST",
            "Path": "/dags/mlops__nobody__nothing__train/dagRuns",
            "Body": {"dag_run_id": "r", "logical_date": None, "conf": {}},
        },
    )
    assert status == 404


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ResourceNotFoundException", 500, "lambda_misconfigured"),
        ("AccessDeniedException", 502, "airflow_auth_failed"),
        ("ValidationException", 502, "airflow_error"),
        ("InternalServerException", 502, "airflow_error"),
    ],
)
def test_mwaa_service_errors(mwaa, code, status, error):
    client, stubber, _ = mwaa
    stubber.add_client_error("invoke_rest_api", service_error_code=code, http_status_code=400)
    answer = call(valid_event(), client)
    assert (answer["statusCode"], answer["error"]) == (status, error)


def test_names_too_long_for_mwaa_path_are_refused_before_calling(mwaa):
    client, _, sent = mwaa
    long_project, long_model = "p" * 20, "m" * 20
    event = valid_event(
        project=long_project, model=long_model, image=f"{ECR_REGISTRY}/{long_project}/{long_model}:1.0.7"
    )
    answer = call(event, client)
    assert (answer["statusCode"], answer["error"]) == (400, "dag_id_too_long_for_mwaa")
    assert sent == []


def test_hostile_events_never_reach_mwaa(mwaa):
    from trigger_testenv import HOSTILE_EVENTS

    client, _, sent = mwaa
    for _, raw, status, _, _ in HOSTILE_EVENTS:
        assert call(raw, client)["statusCode"] == status
    assert sent == []


class stub_any_run_id:
    """Matches any ``trigger__<version>__<hash>`` run id in Stubber's expected_params."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith("trigger__")

    def __repr__(self) -> str:
        return "<any trigger__ run id>"
