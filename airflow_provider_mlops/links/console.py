"""
The operator extra links: "Console" and "Logs" buttons on a task, for any backend.

A task pushes ``{"console": url, "logs": url}`` to XCom under :data:`LINKS_XCOM_KEY` (the
SageMaker backends build these URLs; the local backend has none, and the buttons stay empty).
Airflow evaluates each link when the task finishes and stores it for the UI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

from airflow_provider_mlops.links import LINKS_XCOM_KEY

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey


def push_links(context: Context, links: dict[str, Any] | None) -> None:
    """Record a task's console and log URLs for its extra links (an empty dict when it has none)."""
    push = getattr(context.get("ti"), "xcom_push", None)
    if push is not None:  # a bare context (a unit test calling execute_complete) has no XCom
        push(key=LINKS_XCOM_KEY, value={k: str(v) for k, v in (links or {}).items() if v})


class _MlopsLink(BaseOperatorLink):
    kind: ClassVar[str]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        links = XCom.get_value(ti_key=ti_key, key=LINKS_XCOM_KEY)
        return str(links.get(self.kind, "")) if isinstance(links, dict) else ""


class MlopsConsoleLink(_MlopsLink):
    """The AWS console page of the task's job, model package or endpoint."""

    name = "Console"
    kind = "console"


class MlopsLogsLink(_MlopsLink):
    """The CloudWatch logs of the task's job or endpoint."""

    name = "Logs"
    kind = "logs"
