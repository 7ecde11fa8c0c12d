"""Slack delivery through the provider's notifiers, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import logging

import pytest
from example_messages import example_messages
from notify_fakes import BOT_TOKEN, WEBHOOK_TOKEN, SlackServer

from airflow_provider_mlops.config.models import Notifications
from airflow_provider_mlops.notifications import formats
from airflow_provider_mlops.notifications.send import RetryPolicy, send

FAST = RetryPolicy(attempts=3, first_delay=0.05, max_delay=0.2, request_timeout=1, total_seconds=10)
MESSAGE = example_messages()["training_finished_failed"]
WEBHOOK = Notifications(slack={"connection_id": "slack_hook"})
WEB_API = Notifications(slack={"connection_id": "slack_api", "channel": "#ml-releases"})


def test_webhook_receives_the_block_kit_payload(slack_server: SlackServer) -> None:
    [result] = send(MESSAGE, WEBHOOK, policy=FAST)
    assert result.ok and result.attempts == 1
    [request] = slack_server.requests
    assert request.path == f"/services/{WEBHOOK_TOKEN}"
    body = request.json()
    expected = formats.slack_payload(MESSAGE)
    assert body["blocks"] == expected["blocks"]
    assert body["text"] == expected["text"]
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "section", "section", "actions", "context"]
    assert body["blocks"][5]["elements"][0]["url"].startswith("http://localhost:8080/dags/mlops__demo__breast-cancer__train/runs/")


def test_web_api_posts_to_the_configured_channel(slack_server: SlackServer) -> None:
    [result] = send(MESSAGE, WEB_API, policy=FAST)
    assert result.ok
    [request] = slack_server.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    body = request.json()
    assert body["channel"] == "#ml-releases"
    blocks = body["blocks"] if isinstance(body["blocks"], list) else __import__("json").loads(body["blocks"])
    assert blocks == formats.slack_payload(MESSAGE)["blocks"]


@pytest.mark.parametrize("failure", ["500", "429", "timeout"])
def test_transient_failures_are_retried_then_succeed(slack_server: SlackServer, failure: str) -> None:
    slack_server.respond_with(failure)
    [result] = send(MESSAGE, WEBHOOK, policy=FAST)
    assert result.ok and result.attempts == 2
    assert len(slack_server.requests) == 2
    assert slack_server.requests[0].json() == slack_server.requests[1].json()


def test_web_api_rate_limit_is_retried(slack_server: SlackServer) -> None:
    slack_server.respond_with("429")
    [result] = send(MESSAGE, WEB_API, policy=FAST)
    assert result.ok and result.attempts == 2


def test_a_slack_that_keeps_failing_is_logged_and_never_raises(
    slack_server: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    slack_server.respond_with(default="500")
    caplog.set_level(logging.DEBUG)
    [result] = send(MESSAGE, WEBHOOK, policy=FAST)
    assert not result.ok and result.attempts == 3 and len(slack_server.requests) == 3
    assert "500" in (result.error or "")
    assert "giving up" in caplog.text
    for secret in (WEBHOOK_TOKEN, "xoxWebhookSecretToken42"):
        assert secret not in caplog.text
        assert secret not in (result.error or "")


def test_timeouts_stop_at_the_total_budget_not_the_attempt_count(slack_server: SlackServer) -> None:
    slack_server.respond_with(default="timeout")
    policy = RetryPolicy(attempts=5, first_delay=0.05, max_delay=0.1, request_timeout=1, total_seconds=2.5)
    [result] = send(MESSAGE, WEBHOOK, policy=policy)
    # Each try waits out its 1 s request timeout: the 2.5 s budget ends the loop before 5 tries.
    assert not result.ok and 1 < result.attempts < 5
    assert len(slack_server.requests) == result.attempts


def test_a_webhook_url_in_the_password_never_leaks_when_the_error_repeats_its_path(
    slack_server: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    slack_server.respond_with(default="500-echo")
    caplog.set_level(logging.DEBUG)
    [result] = send(MESSAGE, Notifications(slack={"connection_id": "slack_url"}), policy=FAST)
    assert not result.ok and "no_service" in (result.error or "")
    for secret in (WEBHOOK_TOKEN, "xoxWebhookSecretToken42", "B0SECRET/xoxWebhookSecretToken42"):
        assert secret not in caplog.text
        assert secret not in (result.error or "")


def test_a_missing_connection_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    [result] = send(MESSAGE, Notifications(slack={"connection_id": "no_such_slack"}), policy=FAST)
    assert not result.ok and "no_such_slack" in (result.error or "")


def test_web_api_token_never_reaches_the_logs(slack_server: SlackServer, caplog: pytest.LogCaptureFixture) -> None:
    slack_server.respond_with(default="500")
    caplog.set_level(logging.DEBUG)
    [result] = send(MESSAGE, WEB_API, policy=FAST)
    assert not result.ok
    assert BOT_TOKEN not in caplog.text and BOT_TOKEN not in (result.error or "")


def test_a_missing_extra_names_the_pip_install_and_is_not_retried(
    slack_server: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "airflow.providers.slack" else real(name, *a))
    [result] = send(MESSAGE, WEBHOOK, policy=FAST)
    assert not result.ok and result.attempts == 1
    assert "pip install 'airflow-provider-mlops[slack]'" in (result.error or "")
    assert slack_server.requests == []
