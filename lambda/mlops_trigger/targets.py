"""
Where a DAG run is created: a self-hosted Airflow 3 (REST API v2) or MWAA (``InvokeRestApi``).

Both targets speak the same request, ``POST .../dags/{dag_id}/dagRuns`` with
``{"dag_run_id", "logical_date": null, "conf"}``, and read Airflow's answer the same way:
a 409 means the run already exists, which is success for a retried invocation.

boto3 and urllib are imported inside the methods that use them, so the handler's cold-start
import stays small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mlops_trigger.errors import ConfigurationError, EventError, TargetError, shown


@dataclass(frozen=True)
class TriggerResult:
    created: bool
    state: str | None = None


class Target(Protocol):
    name: str

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, str]) -> TriggerResult: ...


def dag_run_body(run_id: str, conf: dict[str, str]) -> dict[str, Any]:
    return {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf)}


def error_for_status(status: int, payload: Any, dag_id: str) -> TargetError:
    """Turn Airflow's refusal of ``POST /dags/{dag_id}/dagRuns`` into the answer the caller gets."""
    detail = payload.get("detail") if isinstance(payload, dict) else payload
    if status == 404:
        return TargetError(
            f"Airflow has no DAG {dag_id}: publish the model's mlops.yaml (the publish job) and wait "
            "for the DAG processor to parse it",
            status=404,
            code="dag_not_found",
        )
    if status in (400, 422):
        return TargetError(
            f"Airflow refused the run of {dag_id}: {shown(detail, 300)}",
            status=422,
            code="rejected_by_airflow",
        )
    if status in (401, 403):
        return TargetError(
            f"Airflow refused the trigger's credentials ({status}); check the secret in "
            "MLOPS_AIRFLOW_SECRET_ID or the MWAA execution role",
            status=502,
            code="airflow_auth_failed",
        )
    return TargetError(
        f"Airflow answered {status} for {dag_id}: {shown(detail, 300)}", status=502, code="airflow_error"
    )


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    token: str | None = None

    def __repr__(self) -> str:  # never show secrets, even in a traceback
        return f"Credentials(username={self.username!r}, password=***, token=***)"


class AirflowRestTarget:
    """
    A self-hosted Airflow 3 api-server, through its public REST API v2 with a JWT.

    :param base_url: the api-server's address, without ``/api/v2``.
    :param credentials: returns the username/password or token; called again after a 401, so a
        rotated secret is picked up without a cold start.
    :param timeout: seconds per HTTP request.
    """

    name = "airflow"

    def __init__(
        self, base_url: str, credentials: Callable[[bool], Credentials], timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self.timeout = timeout
        self._token: str | None = None

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, str]) -> TriggerResult:
        runs = f"/api/v2/dags/{_quote(dag_id)}/dagRuns"
        status, payload = self._call("POST", runs, dag_run_body(run_id, conf))
        if status in (200, 201):
            return TriggerResult(created=True, state=_get(payload, "state"))
        if status == 409:
            status, existing = self._call("GET", f"{runs}/{_quote(run_id)}")
            if status == 200:
                if _get(existing, "conf") != conf:
                    raise TargetError(
                        f"a run {run_id} of {dag_id} exists with a different conf; it was not made by "
                        "this trigger. Delete it or change the event",
                        status=409,
                        code="run_id_conflict",
                    )
                return TriggerResult(created=False, state=_get(existing, "state"))
        raise error_for_status(status, payload, dag_id)

    def _call(self, method: str, path: str, body: Any = None, *, retry_auth: bool = True) -> tuple[int, Any]:
        status, payload = self._http(method, path, body, token=self._get_token())
        if status == 401 and retry_auth:
            self._token = None  # expired JWT or rotated secret: log in again, once
            self._get_token(refresh=True)
            return self._call(method, path, body, retry_auth=False)
        return status, payload

    def _get_token(self, refresh: bool = False) -> str:
        if self._token is None:
            creds = self._credentials(refresh)
            if creds.token:
                self._token = creds.token
            else:
                login = {"username": creds.username, "password": creds.password}
                status, payload = self._http("POST", "/auth/token", login, token=None)
                token = _get(payload, "access_token")
                if status not in (200, 201) or not isinstance(token, str):
                    raise error_for_status(401 if status in (401, 403) else status, None, "(login)")
                self._token = token
        return self._token

    def _http(self, method: str, path: str, body: Any, *, token: str | None) -> tuple[int, Any]:
        import json
        import urllib.error
        import urllib.request

        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, text = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TargetError(
                f"Airflow at {self.base_url} did not answer: {reason}", status=504, code="airflow_unreachable"
            ) from None
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text[:300]


class MwaaTarget:
    """
    An Amazon MWAA environment, through ``mwaa:InvokeRestApi`` (the environment stays private).

    :param environment: the MWAA environment name.
    :param client: a boto3 ``mwaa`` client; made on first use when not given.
    """

    name = "mwaa"
    #: InvokeRestApi's ``Path`` is at most 64 characters (botocore's service model).
    MAX_PATH = 64

    def __init__(self, environment: str, client: Any = None) -> None:
        self.environment = environment
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("mwaa")
        return self._client

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, str]) -> TriggerResult:
        path = f"/dags/{dag_id}/dagRuns"
        if len(path) > self.MAX_PATH:
            raise EventError(
                f"the DAG id {dag_id} makes the MWAA InvokeRestApi path {len(path)} characters long; "
                f"MWAA allows {self.MAX_PATH}. Shorten the project and model names (together at most "
                f"{self.MAX_PATH - len('/dags/mlops______/dagRuns') - len(dag_id.rsplit('__', 1)[1])} characters)",
                code="dag_id_too_long_for_mwaa",
                field="model",
            )
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.invoke_rest_api(
                Name=self.environment, Path=path, Method="POST", Body=dag_run_body(run_id, conf)
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("RestApiClientException", "RestApiServerException"):
                status = int(exc.response.get("RestApiStatusCode") or 502)
                if status == 409:
                    return TriggerResult(created=False)
                raise error_for_status(status, exc.response.get("RestApiResponse"), dag_id) from None
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
        return TriggerResult(created=True, state=_get(response.get("RestApiResponse"), "state"))


def _quote(part: str) -> str:
    import urllib.parse

    return urllib.parse.quote(part, safe="")


def _get(payload: Any, key: str) -> Any:
    return payload.get(key) if isinstance(payload, dict) else None
