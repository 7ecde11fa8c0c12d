"""
Deliver a :class:`~.messages.Message` to Slack and SNS through the providers' notifiers.

Slack goes through :class:`~airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier`
when the connection is an Incoming Webhook (``conn_type: slackwebhook``), else through
:class:`~airflow.providers.slack.notifications.slack.SlackNotifier` (the Web API,
``chat.postMessage`` to ``notifications.slack.channel``). SNS goes through
:class:`~airflow.providers.amazon.aws.notifications.sns.SnsNotifier`, with the connection's
``endpoint_url`` extra honoured by the amazon provider.

Delivery never raises and never blocks the pipeline for long: each channel is tried with
exponential backoff within one total time budget (:class:`RetryPolicy`), and a failure is logged
with every secret of the connection (webhook token, bot token, AWS keys) replaced by ``***``.
The SDKs' own retry loops are switched off so that this budget is the only one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.exceptions import NotificationSetupError
from airflow_provider_mlops.notifications.formats import slack_payload, sns_attributes, sns_body, sns_subject
from airflow_provider_mlops.notifications.messages import Message

if TYPE_CHECKING:
    from airflow_provider_mlops.config.models import Notifications, SlackTarget, SnsTarget

logger = logging.getLogger(__name__)

REDACTED = "***"


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise NotificationSetupError(
            f"notifications need {module}, which is not installed: pip install 'airflow-provider-mlops[{extra}]'"
        )


@dataclass(frozen=True)
class RetryPolicy:
    """
    How hard one notification tries before giving up (per channel).

    :param attempts: the most tries, the first included.
    :param first_delay: seconds before the second try; each later delay doubles.
    :param max_delay: the longest single delay (a Slack ``Retry-After`` is capped by it too).
    :param request_timeout: seconds one HTTP request may take (connect and read).
    :param total_seconds: the budget for all tries and delays of one channel.
    """

    attempts: int = 4
    first_delay: float = 1.0
    max_delay: float = 8.0
    request_timeout: int = 10
    total_seconds: float = 45.0


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class Delivery:
    """The outcome of one channel: ``ok``, how many tries it took, and the redacted last error."""

    channel: str
    ok: bool
    attempts: int
    error: str | None = None


class Redactor:
    """Replaces known secrets in text; also registers them with Airflow's secrets masker."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if secret and len(secret) >= 4 and secret not in self.secrets:
                self.secrets.append(secret)
                try:
                    from airflow.sdk.log import mask_secret

                    mask_secret(secret)
                except Exception:  # masking is best effort; our own redaction still applies
                    pass
        self.secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def webhook_forms(secret: str | None) -> list[str]:
    """
    Every form in which a webhook secret can come back in an error: the whole URL, its path, the
    path after ``/services/``, and its last segment (the token). An upstream error that repeats
    only the path must not show the token either.
    """
    if not secret:
        return []
    from urllib.parse import urlsplit

    value = secret.strip()
    path = urlsplit(value).path if "://" in value else value
    forms = [value, path, path.strip("/")]
    if "/services/" in f"/{path.strip('/')}":
        forms.append(f"/{path.strip('/')}".split("/services/", 1)[1])
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if len(last) >= 8:
        forms.append(last)
    return [form for form in forms if len(form) >= 8]


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def deliver(
    channel: str,
    attempt: Callable[[], Any],
    *,
    policy: RetryPolicy,
    redact: Redactor,
    log: logging.Logger | Any = logger,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Call ``attempt`` until it returns, with backoff, within ``policy``; never raises."""
    deadline = time.monotonic() + policy.total_seconds
    delay = policy.first_delay
    error = "not attempted"
    for number in range(1, policy.attempts + 1):
        try:
            attempt()
            if number > 1:
                log.info("Notification to %s sent on try %d", channel, number)
            return Delivery(channel, True, number)
        except Exception as exc:  # a notification must never fail the pipeline
            error = redact(f"{type(exc).__name__}: {exc}")[:500]
            wait = min(max(delay, _retry_after(exc) or 0.0), policy.max_delay)
            remaining = deadline - time.monotonic()
            if number == policy.attempts or remaining <= wait or isinstance(exc, NotificationSetupError):
                log.warning("Notification to %s failed after %d tries; giving up: %s", channel, number, error)
                return Delivery(channel, False, number, error)
            log.warning("Notification to %s failed (try %d of %d): %s; retrying in %.1fs",
                        channel, number, policy.attempts, error, wait)
            sleep(wait)
            delay = min(delay * 2, policy.max_delay)
    return Delivery(channel, False, policy.attempts, error)  # pragma: no cover - the loop always returns


def _slack_attempt(message: Message, target: SlackTarget, policy: RetryPolicy, redact: Redactor) -> Callable[[], None]:
    from airflow.sdk import BaseHook

    payload = slack_payload(message)
    state: dict[str, Any] = {}

    def attempt() -> None:
        if "notifier" not in state:
            _require("airflow.providers.slack", "slack")
            conn = BaseHook.get_connection(target.connection_id)
            redact.add(conn.password, conn.get_uri() if conn.password else None)
            if conn.password and conn.host:
                redact.add(conn.host.rstrip("/") + "/" + conn.password.strip().lstrip("/"))
            redact.add(*webhook_forms(conn.password))
            if conn.conn_type == "slackwebhook":
                from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

                state["notifier"] = SlackWebhookNotifier(
                    slack_webhook_conn_id=target.connection_id, text=payload["text"], blocks=payload["blocks"],
                    timeout=policy.request_timeout, retry_handlers=[], unfurl_links=False,
                )
            else:
                from airflow.providers.slack.notifications.slack import SlackNotifier

                extra: dict[str, Any] = {"channel": target.channel} if target.channel else {}
                state["notifier"] = SlackNotifier(
                    slack_conn_id=target.connection_id, text=payload["text"], blocks=payload["blocks"],
                    timeout=policy.request_timeout, retry_handlers=[], unfurl_links=False, username="MLOps", **extra,
                )
        # notify() and not __call__: __call__ renders Jinja over the text and swallows errors.
        state["notifier"].notify({})

    return attempt


def _sns_attempt(message: Message, target: SnsTarget, policy: RetryPolicy, redact: Redactor) -> Callable[[], None]:
    state: dict[str, Any] = {}
    region = target.topic_arn.split(":")[3]

    def attempt() -> None:
        if "notifier" not in state:
            _require("airflow.providers.amazon", "aws")
            from airflow.providers.amazon.aws.hooks.sns import SnsHook
            from airflow.providers.amazon.aws.notifications.sns import SnsNotifier
            from botocore.config import Config

            notifier = SnsNotifier(
                aws_conn_id=target.aws_conn_id, target_arn=target.topic_arn, region_name=region,
                message=sns_body(message), subject=sns_subject(message), message_attributes=sns_attributes(message),
            )
            config = Config(connect_timeout=policy.request_timeout, read_timeout=policy.request_timeout,
                            retries={"max_attempts": 1, "mode": "standard"})
            notifier.hook = SnsHook(aws_conn_id=target.aws_conn_id, region_name=region, config=config)  # type: ignore[misc]
            try:
                credentials = notifier.hook.get_credentials()
                redact.add(credentials.secret_key, credentials.token)
            except Exception:  # publishing will report the real problem
                pass
            state["notifier"] = notifier
        state["notifier"].notify({})

    return attempt


def send(
    message: Message,
    notifications: Notifications,
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    log: logging.Logger | Any = logger,
) -> list[Delivery]:
    """
    Send ``message`` to every channel configured in ``notifications`` (the event filter is the caller's).

    :param message: what to send.
    :param notifications: the model's ``notifications:`` block (Slack and/or SNS targets).
    :param policy: retries, timeouts and the total time budget per channel.
    :param log: where delivery problems are logged (an operator passes its task log).
    :return: one :class:`Delivery` per configured channel; this function never raises.
    """
    redact = Redactor()
    results: list[Delivery] = []
    channels: list[tuple[str, Callable[[], None]]] = []
    try:
        if notifications.slack is not None:
            channels.append(("slack", _slack_attempt(message, notifications.slack, policy, redact)))
        if notifications.sns is not None:
            channels.append(("sns", _sns_attempt(message, notifications.sns, policy, redact)))
    except Exception as exc:  # building a payload must not fail the pipeline either
        log.warning("Notification %s could not be prepared: %s", message.event, redact(f"{type(exc).__name__}: {exc}"))
        return results
    for channel, attempt in channels:
        results.append(deliver(channel, attempt, policy=policy, redact=redact, log=log))
    for result in results:
        if result.ok:
            log.info("Notification %s sent to %s", message.event, result.channel)
    return results
