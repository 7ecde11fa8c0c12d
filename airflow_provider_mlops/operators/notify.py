"""Notifications (a placeholder that logs the summary; Slack and SNS arrive with their issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class MlopsNotifyOperator(MlopsBaseOperator):
    """
    Report an event of the pipeline. For now it writes the summary to the task log.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :param event: the event name, for example ``training_finished``.
    :param source_task_id: the task whose XCom the summary is built from.
    """

    def __init__(self, *, event: str, source_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.event = event
        self.source_task_id = source_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        record = context["ti"].xcom_pull(task_ids=self.source_task_id) or {}
        summary = {
            "event": self.event,
            "model": self.group,
            "version": record.get("semver"),
            "status": record.get("status"),
            "gate_passed": (record.get("gate") or {}).get("passed"),
        }
        self.log.info("Notification %s: %s", self.event, summary)
        return summary
