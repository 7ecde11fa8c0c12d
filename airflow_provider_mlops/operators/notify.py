"""The notify step: report a pipeline milestone on the model's Slack and SNS channels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The events this operator sends, and what its source task's XCom must hold for each.
STEP_EVENTS = {
    "training_finished": "the registered version's record (the register task)",
    "deployed": "the deploy result: endpoint, version, previous_version, url (the deploy task)",
}


class MlopsNotifyOperator(MlopsBaseOperator):
    """
    Send a pipeline event to the channels in ``notifications:`` of the model's mlops.yaml.

    The message is built from the source task's XCom: ``training_finished`` carries the gate
    table (candidate against production, with deltas and each rule's outcome), the confusion
    matrix and links; ``deployed`` carries the endpoint, version and strategy. Delivery is
    retried with backoff, then logged: this task never fails because a channel is down.

    .. seealso:: ``docs/notifications.md``

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :param event: ``training_finished`` or ``deployed``.
    :param source_task_id: the task whose XCom the message is built from.
    :return: ``{"event", "model", "version", "deliveries": [{"channel", "ok", "attempts", "error"}]}``.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#fdf3e8"

    def __init__(self, *, event: str, source_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if event not in STEP_EVENTS:
            from airflow_provider_mlops.exceptions import InputError

            raise InputError(f"MlopsNotifyOperator {kwargs.get('task_id')}: event {event!r} is not one of {sorted(STEP_EVENTS)}")
        self.event = event
        self.source_task_id = source_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_mlops.notifications import events

        record = context["ti"].xcom_pull(task_ids=self.source_task_id) or {}
        loaded = self.loaded
        if self.event == "training_finished":
            deliveries = events.training_finished(loaded, context, record, log=self.log)
            version = record.get("semver")
        else:
            deliveries = events.deployed(loaded, context, record, log=self.log)
            version = record.get("version")
        return {
            "event": self.event,
            "model": self.group,
            "version": version,
            "deliveries": [{"channel": d.channel, "ok": d.ok, "attempts": d.attempts, "error": d.error} for d in deliveries],
        }
