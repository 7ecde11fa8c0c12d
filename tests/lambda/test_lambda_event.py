"""The trigger event contract, without any server: validation, DAG id, run id, conf."""

from __future__ import annotations

import base64
import json

import pytest
from mlops_trigger.errors import ConfigurationError, EventError
from mlops_trigger.event import CONF_FIELDS, FIELDS, parse_event
from mlops_trigger.settings import Settings, registry_from_arn
from trigger_testenv import COMMIT, ECR_REGISTRY, HOSTILE_EVENTS, MODEL, PROJECT, valid_event


def parse(raw, **kwargs):
    return parse_event(raw, ecr_registry=ECR_REGISTRY, **kwargs)


def test_valid_event_maps_to_dag_run_and_conf():
    event = parse(valid_event())
    assert event.dag_id == f"mlops__{PROJECT}__{MODEL}__train"
    assert event.conf == {
        "version": "1.0.7",
        "image": f"{ECR_REGISTRY}/{PROJECT}/{MODEL}:1.0.7",
        "commit": COMMIT,
        "requested_by": "gitlab:alice:pipeline:4242",
    }
    assert tuple(event.conf) == CONF_FIELDS
    assert event.run_id.startswith("trigger__1.0.7__")


@pytest.mark.parametrize("action", ["train", "deploy", "retrain"])
def test_each_action_has_its_own_dag(action):
    assert parse(valid_event(action=action)).dag_id == f"mlops__{PROJECT}__{MODEL}__{action}"


def test_run_id_is_deterministic_and_covers_every_field():
    event = valid_event()
    reordered = dict(reversed(list(event.items())))
    assert parse(event).run_id == parse(reordered).run_id == parse(json.dumps(event)).run_id
    changed = {
        "action": "deploy",
        "version": "1.0.8",
        "image": f"{ECR_REGISTRY}/{PROJECT}/{MODEL}:{COMMIT[:12]}",
        "commit": "f" * 40,
        "requested_by": "gitlab:bob:pipeline:4243",
    }
    seen = {parse(event).run_id}
    for name, value in changed.items():
        other = valid_event(**{name: value})
        if name == "commit":
            other["image"] = f"{ECR_REGISTRY}/{PROJECT}/{MODEL}:1.0.7"
        seen.add(parse(other).run_id)
    assert len(seen) == 1 + len(changed)


def test_run_id_is_a_valid_airflow_run_id():
    import re

    from airflow.configuration import conf

    pattern = conf.get("scheduler", "allowed_run_id_pattern")
    assert re.match(pattern, parse(valid_event()).run_id)
    assert len(parse(valid_event()).run_id) <= 250


@pytest.mark.parametrize(
    "image",
    [
        f"{ECR_REGISTRY}/{PROJECT}/{MODEL}:1.0.7",
        f"{ECR_REGISTRY}/{PROJECT}/{MODEL}:{COMMIT[:12]}",
        f"{ECR_REGISTRY}/{PROJECT}/{MODEL}@sha256:{'a' * 64}",
        f"{ECR_REGISTRY}/{PROJECT}/{MODEL}:1.0.7@sha256:{'b' * 64}",
    ],
)
def test_pinned_images_in_the_model_repository_are_accepted(image):
    assert parse(valid_event(image=image)).image == image


def test_repository_prefix_is_part_of_the_expected_repository():
    image = f"{ECR_REGISTRY}/ml/{PROJECT}/{MODEL}:1.0.7"
    assert parse(valid_event(image=image), repository_prefix="ml/").image == image
    with pytest.raises(EventError):
        parse(valid_event(), repository_prefix="ml/")


@pytest.mark.parametrize(
    ("name", "raw", "status", "code", "field"), HOSTILE_EVENTS, ids=[case[0] for case in HOSTILE_EVENTS]
)
def test_hostile_events_are_refused_with_a_clear_4xx(name, raw, status, code, field):
    with pytest.raises(EventError) as caught:
        parse(raw)
    error = caught.value
    assert 400 <= error.status < 500
    assert (error.status, error.code, error.field) == (status, code, field)
    answer = error.as_response()
    assert answer["ok"] is False and answer["statusCode"] == status
    assert len(answer["message"]) < 400, "messages quote bad values shortened"
    json.dumps(answer)  # always serialisable


def test_there_are_enough_hostile_cases():
    assert len(HOSTILE_EVENTS) >= 15


def test_function_url_event_with_base64_body_is_accepted():
    body = base64.b64encode(json.dumps(valid_event()).encode()).decode()
    event = parse({"headers": {}, "requestContext": {}, "body": body, "isBase64Encoded": True})
    assert event.project == PROJECT


def test_every_field_is_required():
    for name in FIELDS:
        raw = valid_event()
        del raw[name]
        with pytest.raises(EventError, match=name):
            parse(raw)


def test_settings_default_registry_comes_from_the_function_arn():
    assert registry_from_arn("arn:aws:lambda:eu-west-1:111122223333:function:f") == (
        "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
    )
    assert registry_from_arn("arn:aws-cn:lambda:cn-north-1:111122223333:function:f").endswith(".com.cn")
    with pytest.raises(ConfigurationError, match="MLOPS_ECR_REGISTRY"):
        registry_from_arn(None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "MLOPS_TRIGGER_TARGET"),
        ({"MLOPS_TRIGGER_TARGET": "mwaa"}, "MLOPS_MWAA_ENVIRONMENT"),
        ({"MLOPS_TRIGGER_TARGET": "airflow", "MLOPS_AIRFLOW_API_URL": "file:///etc"}, "http"),
        ({"MLOPS_AIRFLOW_API_URL": "http://x"}, "credentials"),
        ({"MLOPS_TRIGGER_TARGET": "local"}, "MLOPS_TRIGGER_TARGET"),
        (
            {"MLOPS_AIRFLOW_API_URL": "https://admin:pw@airflow:8080", "MLOPS_AIRFLOW_TOKEN": "t"},
            "credentials",
        ),
    ],
)
def test_misconfigured_lambda_is_refused_at_settings(env, message):
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env({"MLOPS_ECR_REGISTRY": ECR_REGISTRY, **env})


def test_settings_infer_the_target_and_hide_secrets():
    mwaa = Settings.from_env({"MLOPS_MWAA_ENVIRONMENT": "mlops-dev", "MLOPS_ECR_REGISTRY": ECR_REGISTRY})
    assert mwaa.target == "mwaa"
    airflow = Settings.from_env(
        {
            "MLOPS_AIRFLOW_API_URL": "http://127.0.0.1:1/",
            "MLOPS_AIRFLOW_USERNAME": "u",
            "MLOPS_AIRFLOW_PASSWORD": "hunter2-secret",
            "MLOPS_ECR_REGISTRY": ECR_REGISTRY,
        }
    )
    assert (airflow.target, airflow.airflow_url) == ("airflow", "http://127.0.0.1:1")
    assert "hunter2-secret" not in repr(airflow)
