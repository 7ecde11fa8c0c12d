"""
Links a notification carries: the Airflow UI (run, task log, approval) and the SageMaker console.

The Airflow UI's address is ``[api] base_url`` (``AIRFLOW__API__BASE_URL``), as Airflow's own
``log_url`` and the HITL operator's links use it.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlencode

DEFAULT_BASE_URL = "http://localhost:8080"


def airflow_base_url() -> str:
    """``[api] base_url`` from Airflow's config, else ``http://localhost:8080``."""
    value = os.environ.get("AIRFLOW__API__BASE_URL")
    if not value:
        try:
            from airflow.configuration import conf

            value = conf.get("api", "base_url", fallback=None)
        except Exception:  # a link is never worth failing a notification
            value = None
    return (value or DEFAULT_BASE_URL).rstrip("/")


def dag_run_url(dag_id: str, run_id: str, base_url: str | None = None) -> str:
    """The DAG run's page in the Airflow UI."""
    return f"{base_url or airflow_base_url()}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


def task_log_url(dag_id: str, run_id: str, task_id: str, try_number: int | None = None, base_url: str | None = None) -> str:
    """The task instance's log in the Airflow UI (the same address as Airflow's ``ti.log_url``)."""
    url = f"{dag_run_url(dag_id, run_id, base_url)}/tasks/{task_id}"
    return f"{url}?try_number={try_number}" if try_number else url


def approval_url(dag_id: str, run_id: str, task_id: str = "approve", base_url: str | None = None) -> str:
    """The HITL "Required actions" page of the approval task (as ``HITLOperator.generate_link_to_ui``)."""
    return f"{dag_run_url(dag_id, run_id, base_url)}/tasks/{task_id}/required_actions?{urlencode({'map_index': -1})}"


def _console(region: str) -> str:
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}"


def sagemaker_model_group_url(region: str | None, group: str) -> str | None:
    """The model package group in the SageMaker console, when a region is known."""
    return f"{_console(region)}#/model-registry/{quote(group)}" if region else None


def sagemaker_endpoint_url(region: str | None, endpoint: str) -> str | None:
    """The endpoint in the SageMaker console, when a region is known."""
    return f"{_console(region)}#/endpoints/{quote(endpoint)}" if region else None


def region_of(arn: str | None) -> str | None:
    """The region field of an ARN (``arn:aws:sagemaker:eu-west-1:...`` → ``eu-west-1``)."""
    parts = (arn or "").split(":")
    return parts[3] if len(parts) > 4 and parts[3] else None
