"""
Slack and SNS notifications of the model lifecycle.

- :mod:`.messages`: pipeline events → a channel-neutral :class:`Message` (pure).
- :mod:`.formats`: a message → Slack Block Kit, and an SNS subject, body and attributes (pure).
- :mod:`.links`: Airflow UI and SageMaker console links.
- :mod:`.send`: delivery through the Slack and amazon providers' notifiers, with retries and
  backoff in a bounded time, secrets redacted; it never raises.
- :mod:`.events`: task context + config → the right message, filtered by ``notifications.events``.
- :mod:`.callbacks`: the failure callback and the approval notifier (Airflow ``BaseNotifier``).

Nothing here imports slack_sdk, boto3 or the provider packages at module level.
"""

from airflow_provider_mlops.notifications.messages import EVENTS, Message

__all__ = ["EVENTS", "Message"]
