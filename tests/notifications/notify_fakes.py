"""
Real servers on 127.0.0.1 for the notification tests.

- ``slack_server``: a local HTTP server standing in for a Slack Incoming Webhook and the Slack
  Web API. It records every request and answers from a script (``200``, ``500``, ``429`` or
  ``timeout``), so tests drive failures on purpose.
- ``moto``: a ``ThreadedMotoServer`` with an SNS topic and an SQS queue subscribed to it, so a
  published notification is read back through the real pub/sub path.

Connections are given to Airflow as ``AIRFLOW_CONN_*`` environment variables.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

WEBHOOK_TOKEN = "T0SECRET/B0SECRET/xoxWebhookSecretToken42"
BOT_TOKEN = "xoxb-0000-bot-secret-token-4242"


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        if self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}
        return json.loads(self.body)


@dataclass
class SlackServer:
    """What the fake Slack received, and what it answers next (``script`` is consumed in order)."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    default: str = "200"
    released: threading.Event = field(default_factory=threading.Event)

    def respond_with(self, *answers: str, default: str = "200") -> None:
        self.script[:] = list(answers)
        self.default = default


def _handler(server: SlackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def do_POST(self) -> None:  # http.server names it so
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            server.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            answer = server.script.pop(0) if server.script else server.default
            web_api = self.path.startswith("/api/")
            if answer == "timeout":
                server.released.wait(5)
                return
            if answer == "429":
                self._send(429, b'{"ok": false, "error": "ratelimited"}' if web_api else b"rate_limited", {"Retry-After": "0"})
            elif answer == "500":
                self._send(500, b"internal_error")
            elif answer == "500-echo":  # an upstream error that repeats the request's path
                self._send(500, f"no_service for {self.path}".encode())
            else:
                self._send(200, b'{"ok": true, "ts": "1.0"}' if web_api else b"ok")

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            content_type = "application/json" if body.startswith(b"{") else "text/plain"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def slack_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackServer]:
    """A fake Slack on 127.0.0.1, wired as connections ``slack_hook`` (webhook) and ``slack_api`` (Web API)."""
    state = SlackServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_HOOK",
        json.dumps({"conn_type": "slackwebhook", "host": f"{state.url}/services", "password": WEBHOOK_TOKEN}),
    )
    # The whole webhook URL in the password, as Slack's "copy webhook URL" gives it.
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_URL",
        json.dumps({"conn_type": "slackwebhook", "password": f"{state.url}/services/{WEBHOOK_TOKEN}"}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_API",
        json.dumps({"conn_type": "slack", "password": BOT_TOKEN, "extra": {"base_url": f"{state.url}/api/"}}),
    )
    yield state
    state.released.set()
    httpd.shutdown()
    httpd.server_close()


@dataclass
class MotoSns:
    endpoint: str
    topic_arn: str
    queue_url: str
    client: Any

    def received(self, wait: int = 2) -> list[dict[str, Any]]:
        """Every SNS envelope the subscribed queue got (the queue is emptied)."""
        out = self.client("sqs").receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait)
        return [json.loads(m["Body"]) for m in out.get("Messages", [])]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_sns(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> MotoSns:
    """An SNS topic with an SQS queue subscribed, on moto; AWS connection ``aws_moto`` points there."""
    import urllib.request

    import boto3

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=5).read()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_MOTO",
        json.dumps({"conn_type": "aws", "login": "testing", "password": "moto-secret-key-4242",
                    "extra": {"endpoint_url": moto_server, "region_name": "us-east-1"}}),
    )

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto_server, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    topic_arn = client("sns").create_topic(Name="mlops-notifications")["TopicArn"]
    queue_url = client("sqs").create_queue(QueueName="mlops-notifications")["QueueUrl"]
    queue_arn = client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return MotoSns(moto_server, topic_arn, queue_url, client)
