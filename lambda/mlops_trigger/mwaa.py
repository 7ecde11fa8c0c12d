"""
The MWAA target: ``mwaa:InvokeRestApi`` for Airflow's REST API, CloudWatch Logs for task logs.

The environment stays private: the Lambda never reaches its web server, only the MWAA API.
boto3 is imported on first use, so a self-hosted target never loads it.
"""

from __future__ import annotations

from typing import Any

from mlops_trigger.errors import ConfigurationError, EventError, TargetError
from mlops_trigger.targets import (
    PAGE_SIZE,
    TaskInstance,
    TriggerResult,
    collect_task_instances,
    dag_run_body,
    error_for_read,
    error_for_status,
)


class MwaaTarget:
    """
    An Amazon MWAA environment, through ``mwaa:InvokeRestApi`` (the environment stays private).

    The status reads go through ``InvokeRestApi`` too, on paths that fit its 64-character
    ``Path`` (see the table in ``targets``), and a failed task's log comes from the environment's
    CloudWatch task log group, ``airflow-<environment>-Task`` (the Lambda's role needs
    ``logs:GetLogEvents`` on it; without it the answer says so instead of a log tail).
    ``tests/lambda/test_lambda_status_mwaa.py`` checks every request against botocore's ``mwaa``
    model with ``Stubber`` and replays it against a real api-server.

    :param environment: the MWAA environment name.
    :param client: a boto3 ``mwaa`` client; made on first use when not given.
    :param logs_client: a boto3 ``logs`` client; made on first use when not given.
    """

    name = "mwaa"
    #: InvokeRestApi's ``Path`` is at most 64 characters (botocore's service model).
    MAX_PATH = 64
    TASK_INSTANCES_PATH = "/dags/~/dagRuns/~/taskInstances/list"
    #: Log events read from the end of a task's stream: more than the tail keeps, for the filtering.
    LOG_EVENTS = 200

    def __init__(self, environment: str, client: Any = None, logs_client: Any = None) -> None:
        self.environment = environment
        self._client = client
        self._logs_client = logs_client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("mwaa")
        return self._client

    @property
    def logs_client(self) -> Any:
        if self._logs_client is None:
            import boto3

            self._logs_client = boto3.client("logs")
        return self._logs_client

    @property
    def task_log_group(self) -> str:
        return f"airflow-{self.environment}-Task"

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, str]) -> TriggerResult:
        path = self._runs_path(dag_id)
        status, payload = self._invoke("POST", path, body=dag_run_body(run_id, conf))
        if status == 409:
            return TriggerResult(created=False)
        if status >= 400:
            raise error_for_status(status, payload, dag_id)
        return TriggerResult(created=True, state=_get(payload, "state"))

    def dag_run_state(self, dag_id: str, run_id: str) -> str | None:
        # run_id_pattern is a substring match (ILIKE, "_" a wildcard): keep only the exact id.
        query = {"run_id_pattern": run_id, "limit": PAGE_SIZE}
        status, payload = self._invoke("GET", self._runs_path(dag_id), query=query)
        if status != 200:
            raise error_for_read(status, payload, dag_id, run_id)
        for run in _get(payload, "dag_runs") or []:
            if _get(run, "dag_run_id") == run_id and _get(run, "dag_id") == dag_id:
                return _get(run, "state")
        raise error_for_read(404, None, dag_id, run_id)

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstance]:
        def fetch_page(offset: int) -> tuple[int, Any]:
            body = {"dag_ids": [dag_id], "dag_run_ids": [run_id], "page_limit": PAGE_SIZE, "page_offset": offset}
            return self._invoke("POST", self.TASK_INSTANCES_PATH, body=body)

        return collect_task_instances(fetch_page, dag_id, run_id)

    def task_log(self, dag_id: str, run_id: str, task: TaskInstance) -> list[Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        # Airflow's log_filename_template, as the amazon provider names CloudWatch streams (":" -> "_").
        mapped = f"map_index={task.map_index}/" if task.map_index >= 0 else ""
        stream = (
            f"dag_id={dag_id}/run_id={run_id}/task_id={task.task_id}/{mapped}attempt={task.try_number}.log"
        )
        stream = stream.replace(":", "_")
        try:
            response = self.logs_client.get_log_events(
                logGroupName=self.task_log_group,
                logStreamName=stream,
                startFromHead=False,
                limit=self.LOG_EVENTS,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise TargetError(
                    f"CloudWatch has no log stream {stream} in {self.task_log_group}",
                    status=404,
                    code="not_found",
                ) from None
            if code == "AccessDeniedException":
                raise TargetError(
                    f"the Lambda's role may not call logs:GetLogEvents on {self.task_log_group}",
                    status=502,
                    code="airflow_auth_failed",
                ) from None
            raise TargetError(f"CloudWatch Logs GetLogEvents failed: {code}", code="airflow_error") from None
        except BotoCoreError as exc:
            raise TargetError(
                f"CloudWatch Logs did not answer: {type(exc).__name__}",
                status=504,
                code="airflow_unreachable",
            ) from None
        return [str(event.get("message", "")) for event in response.get("events", [])]

    def _runs_path(self, dag_id: str) -> str:
        path = f"/dags/{dag_id}/dagRuns"
        if len(path) > self.MAX_PATH:
            raise EventError(
                f"the DAG id {dag_id} makes the MWAA InvokeRestApi path {len(path)} characters long; "
                f"MWAA allows {self.MAX_PATH}. Shorten the project and model names (together at most "
                f"{self.MAX_PATH - len('/dags/mlops______/dagRuns') - len(dag_id.rsplit('__', 1)[1])} characters)",
                code="dag_id_too_long_for_mwaa",
                field="model",
            )
        return path

    def _invoke(self, method: str, path: str, *, body: Any = None, query: Any = None) -> tuple[int, Any]:
        """``InvokeRestApi``: Airflow's status and answer, also for Airflow's 4xx/5xx; MWAA's own errors raise."""
        from botocore.exceptions import BotoCoreError, ClientError

        params: dict[str, Any] = {"Name": self.environment, "Path": path, "Method": method}
        if body is not None:
            params["Body"] = body
        if query is not None:
            params["QueryParameters"] = query
        try:
            response = self.client.invoke_rest_api(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("RestApiClientException", "RestApiServerException"):
                return int(exc.response.get("RestApiStatusCode") or 502), exc.response.get("RestApiResponse")
            if code == "ResourceNotFoundException":
                raise ConfigurationError(
                    f"MWAA environment {self.environment!r} does not exist: check MLOPS_MWAA_ENVIRONMENT"
                ) from None
            if code == "AccessDeniedException":
                raise TargetError(
                    "the Lambda's role may not call airflow:InvokeRestApi on "
                    f"{self.environment!r} (it needs the Admin or User Airflow role)",
                    status=502,
                    code="airflow_auth_failed",
                ) from None
            raise TargetError(
                f"MWAA InvokeRestApi failed: {code}", status=502, code="airflow_error"
            ) from None
        except BotoCoreError as exc:
            raise TargetError(
                f"MWAA did not answer: {type(exc).__name__}", status=504, code="airflow_unreachable"
            ) from None
        return int(response.get("RestApiStatusCode") or 200), response.get("RestApiResponse")


def _get(payload: Any, key: str) -> Any:
    return payload.get(key) if isinstance(payload, dict) else None
