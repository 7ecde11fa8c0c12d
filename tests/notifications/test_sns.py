"""SNS delivery through the amazon provider's SnsNotifier: moto on 127.0.0.1, read back from SQS."""

from __future__ import annotations

import json
import logging

import pytest
from example_messages import example_messages
from notify_fakes import MotoSns, SlackServer

from airflow_provider_mlops.config.models import Notifications
from airflow_provider_mlops.notifications import formats
from airflow_provider_mlops.notifications.send import RetryPolicy, send

FAST = RetryPolicy(attempts=3, first_delay=0.05, max_delay=0.2, request_timeout=2, total_seconds=10)
MESSAGE = example_messages()["training_finished_failed"]


def _sns(topic_arn: str) -> Notifications:
    return Notifications(sns={"topic_arn": topic_arn, "aws_conn_id": "aws_moto"})


def test_published_message_arrives_on_the_subscribed_queue(moto_sns: MotoSns) -> None:
    [result] = send(MESSAGE, _sns(moto_sns.topic_arn), policy=FAST)
    assert result.ok, result.error
    [envelope] = moto_sns.received()
    assert envelope["TopicArn"] == moto_sns.topic_arn
    assert envelope["Subject"] == "demo/breast-cancer 1.0.1: training finished, gate FAILED"
    assert envelope["Message"] == formats.sns_body(MESSAGE)
    assert "f1 *       0.9727     0.9889      -0.0162  >= 0.9: pass, delta >= -0.01: FAIL  FAIL" in envelope["Message"]
    attributes = {k: v["Value"] for k, v in envelope["MessageAttributes"].items()}
    assert attributes == {"project": "demo", "model": "breast-cancer", "event": "training_finished",
                          "status": "warning", "version": "1.0.1"}
    assert {v["Type"] for v in envelope["MessageAttributes"].values()} == {"String"}


def test_subscription_filter_policy_on_event_attribute(moto_sns: MotoSns) -> None:
    subscriptions = moto_sns.client("sns").list_subscriptions_by_topic(TopicArn=moto_sns.topic_arn)["Subscriptions"]
    moto_sns.client("sns").set_subscription_attributes(
        SubscriptionArn=subscriptions[0]["SubscriptionArn"], AttributeName="FilterPolicy",
        AttributeValue=json.dumps({"event": ["failure"]}),
    )
    examples = example_messages()
    assert all(r.ok for r in send(examples["deployed"], _sns(moto_sns.topic_arn), policy=FAST))
    assert all(r.ok for r in send(examples["failure"], _sns(moto_sns.topic_arn), policy=FAST))
    received = moto_sns.received()
    assert [json.loads(json.dumps(e))["MessageAttributes"]["event"]["Value"] for e in received] == ["failure"]


def test_slack_and_sns_both_receive_one_message(moto_sns: MotoSns, slack_server: SlackServer) -> None:
    both = Notifications(slack={"connection_id": "slack_hook"}, sns={"topic_arn": moto_sns.topic_arn, "aws_conn_id": "aws_moto"})
    results = send(example_messages()["deployed"], both, policy=FAST)
    assert [(r.channel, r.ok) for r in results] == [("slack", True), ("sns", True)]
    assert len(slack_server.requests) == 1 and len(moto_sns.received()) == 1


def test_throttling_is_retried_then_logged_without_raising(
    slack_server: SlackServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An endpoint that answers every publish with HTTP 500 / 429: retried, given up, logged, no secret."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_THROTTLED",
        json.dumps({"conn_type": "aws", "login": "AKIATHROTTLED", "password": "aws-secret-4242-throttled",
                    "extra": {"endpoint_url": slack_server.url, "region_name": "us-east-1"}}),
    )
    slack_server.respond_with("429", default="500")
    caplog.set_level(logging.DEBUG)
    target = Notifications(sns={"topic_arn": "arn:aws:sns:us-east-1:123456789012:mlops", "aws_conn_id": "aws_throttled"})
    [result] = send(MESSAGE, target, policy=FAST)
    assert not result.ok and result.attempts == 3
    assert len(slack_server.requests) == 3
    assert "aws-secret-4242-throttled" not in caplog.text
