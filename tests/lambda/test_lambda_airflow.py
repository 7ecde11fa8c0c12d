"""
The Lambda's self-hosted path against a real ``airflow api-server`` (Airflow 3, simple auth manager).

The handler is called directly, as Lambda would call it; it reaches the api-server over
127.0.0.1 with username and password, or with credentials from Secrets Manager (moto).
"""

from __future__ import annotations

import json

import handler
import pytest
from trigger_testenv import FOREIGN_DAG, HOSTILE_EVENTS, MODEL, PROJECT, Context, unwrap, valid_event


@pytest.fixture
def airflow_target(clean_env, airflow_stack):
    for key, value in airflow_stack.lambda_env().items():
        clean_env.setenv(key, value)
    return airflow_stack


def invoke(event):
    return handler.handler(event, Context())


def test_valid_event_creates_a_run_with_the_expected_conf(airflow_target):
    before = airflow_target.count_runs()
    event = valid_event(version="1.0.11", requested_by="gitlab:alice:pipeline:11")
    answer = invoke(event)
    assert answer["statusCode"] == 201, answer
    assert answer["ok"] and answer["created"] and answer["target"] == "airflow"
    assert answer["dag_id"] == f"mlops__{PROJECT}__{MODEL}__train"
    run = airflow_target.client().get_dag_run(answer["dag_id"], answer["dag_run_id"])
    assert run["conf"] == {k: event[k] for k in ("version", "image", "commit", "requested_by")}
    assert run["run_type"] == "manual" and run["logical_date"] is None
    assert airflow_target.count_runs() == before + 1


def test_the_same_event_again_returns_the_same_run(airflow_target):
    event = valid_event(version="1.0.12", requested_by="gitlab:alice:pipeline:12")
    first = invoke(event)
    count = airflow_target.count_runs()
    again = invoke(json.loads(json.dumps(event)))
    assert first["statusCode"] == 201 and again["statusCode"] == 200, (first, again)
    assert again["ok"] and again["created"] is False
    assert again["dag_run_id"] == first["dag_run_id"]
    assert airflow_target.count_runs() == count


@pytest.mark.parametrize("action", ["deploy", "retrain"])
def test_deploy_and_retrain_reach_their_own_dags(airflow_target, action):
    answer = invoke(valid_event(action=action, version="1.0.13"))
    assert answer["statusCode"] == 201, answer
    assert answer["dag_id"] == f"mlops__{PROJECT}__{MODEL}__{action}"


@pytest.mark.parametrize(
    ("name", "raw", "status", "code", "field"), HOSTILE_EVENTS, ids=[case[0] for case in HOSTILE_EVENTS]
)
def test_hostile_events_create_nothing(airflow_target, name, raw, status, code, field):
    before = airflow_target.count_runs()
    answer = unwrap(invoke(raw))
    assert (answer["statusCode"], answer["error"], answer.get("field")) == (status, code, field), answer
    assert answer["ok"] is False and answer["message"]
    assert airflow_target.count_runs() == before


def test_foreign_dag_exists_but_is_never_triggered(airflow_target):
    client = airflow_target.client()
    assert client.request("GET", f"/api/v2/dags/{FOREIGN_DAG}")["dag_id"] == FOREIGN_DAG
    for raw in (
        {**valid_event(), "dag_id": FOREIGN_DAG},
        valid_event(action=FOREIGN_DAG),
        valid_event(project="x", model="y", action="train"),  # valid names, no such DAG: 404
    ):
        answer = invoke(raw)
        assert 400 <= answer["statusCode"] < 500, answer
    assert client.request("GET", f"/api/v2/dags/{FOREIGN_DAG}/dagRuns")["total_entries"] == 0


def test_unknown_model_is_a_404_that_says_to_publish(airflow_target):
    answer = invoke(
        valid_event(
            project="nobody",
            model="nothing",
            image=valid_event()["image"].replace(f"{PROJECT}/{MODEL}", "nobody/nothing"),
        )
    )
    assert (answer["statusCode"], answer["error"]) == (404, "dag_not_found")
    assert "publish" in answer["message"]


def test_a_foreign_run_with_our_run_id_is_a_conflict_not_a_success(airflow_target):
    from mlops_trigger.event import parse_event
    from trigger_testenv import ECR_REGISTRY

    event = valid_event(version="1.0.14")
    parsed = parse_event(event, ecr_registry=ECR_REGISTRY)
    airflow_target.client().trigger_dag_run(parsed.dag_id, parsed.run_id, {"something": "else"})
    answer = invoke(event)
    assert (answer["statusCode"], answer["error"]) == (409, "run_id_conflict")


def test_wrong_password_is_a_502_and_creates_nothing(airflow_target, clean_env):
    clean_env.setenv("MLOPS_AIRFLOW_PASSWORD", "not-the-password")
    before = airflow_target.count_runs()
    answer = invoke(valid_event(version="1.0.15"))
    assert (answer["statusCode"], answer["error"]) == (502, "airflow_auth_failed")
    assert "not-the-password" not in json.dumps(answer)
    assert airflow_target.count_runs() == before


def test_credentials_from_secrets_manager(airflow_target, clean_env, aws):
    import boto3

    secret = {"username": airflow_target.username, "password": airflow_target.password}
    arn = boto3.client("secretsmanager").create_secret(Name="mlops/airflow", SecretString=json.dumps(secret))[
        "ARN"
    ]
    clean_env.delenv("MLOPS_AIRFLOW_USERNAME")
    clean_env.delenv("MLOPS_AIRFLOW_PASSWORD")
    clean_env.setenv("MLOPS_AIRFLOW_SECRET_ID", arn)
    answer = invoke(valid_event(version="1.0.16"))
    assert answer["statusCode"] == 201, answer


def test_missing_secret_is_a_500_that_names_the_setting(airflow_target, clean_env, aws):
    clean_env.delenv("MLOPS_AIRFLOW_USERNAME")
    clean_env.delenv("MLOPS_AIRFLOW_PASSWORD")
    clean_env.setenv("MLOPS_AIRFLOW_SECRET_ID", "mlops/does-not-exist")
    answer = invoke(valid_event(version="1.0.17"))
    assert (answer["statusCode"], answer["error"]) == (500, "lambda_misconfigured")
    assert "MLOPS_AIRFLOW_SECRET_ID" in answer["message"]


def test_a_token_is_used_as_is(airflow_target, clean_env):
    token = airflow_target.client().get_token()
    clean_env.delenv("MLOPS_AIRFLOW_USERNAME")
    clean_env.delenv("MLOPS_AIRFLOW_PASSWORD")
    clean_env.setenv("MLOPS_AIRFLOW_TOKEN", token)
    assert invoke(valid_event(version="1.0.18"))["statusCode"] == 201


def test_logs_are_json_lines_without_credentials(airflow_target, capsys):
    token = airflow_target.client().get_token()
    invoke(valid_event(version="1.0.19"))
    invoke(valid_event(version="1.0.19"))
    invoke("not json")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert [r["outcome"] for r in records] == ["created", "existing", "rejected"]
    assert records[0]["dag_run_id"] == records[1]["dag_run_id"]
    assert {"time", "level", "message", "status", "request_id"} <= set(records[0])
    text = "\n".join(lines)
    assert airflow_target.password not in text and token not in text


def test_unreachable_airflow_is_a_504(clean_env):
    from trigger_testenv import ECR_REGISTRY

    clean_env.setenv("MLOPS_AIRFLOW_API_URL", "http://127.0.0.1:9")
    clean_env.setenv("MLOPS_AIRFLOW_TOKEN", "t")
    clean_env.setenv("MLOPS_ECR_REGISTRY", ECR_REGISTRY)
    answer = invoke(valid_event())
    assert (answer["statusCode"], answer["error"]) == (504, "airflow_unreachable")


def test_the_api_server_serves_the_repositorys_dags(airflow_stack):
    from trigger_testenv import REPO

    for kind in ("train", "deploy", "retrain"):
        dag = airflow_stack.client().request("GET", f"/api/v2/dags/{airflow_stack.dag_id(kind)}")
        assert dag["fileloc"] == str(REPO / "dags" / "mlops_dags.py")


def test_a_function_url_gets_an_http_answer_with_the_json_body(airflow_target):
    """API Gateway and function URLs pass only statusCode/headers/body on: the details go in the body."""
    wrapped = {"headers": {}, "requestContext": {}, "body": json.dumps(valid_event(project="Bad"))}
    answer = invoke(wrapped)
    assert answer["statusCode"] == 400 and set(answer) == {"statusCode", "headers", "body"}
    assert unwrap(answer)["field"] == "project"
    created = invoke({"headers": {}, "requestContext": {}, "body": json.dumps(valid_event(version="1.0.12"))})
    assert created["statusCode"] == 201 and unwrap(created)["dag_run_id"].startswith("trigger__1.0.12__")
