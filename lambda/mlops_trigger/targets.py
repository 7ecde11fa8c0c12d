"""
Where a DAG run is created and read back: a self-hosted Airflow 3 (REST API v2) or MWAA
(``InvokeRestApi``).

Both targets speak the same request, ``POST .../dags/{dag_id}/dagRuns`` with
``{"dag_run_id", "logical_date": null, "conf"}``, and read Airflow's answer the same way:
a 409 means the run already exists, which is success for a retried invocation.

The status query (``status.py``) reads a run, its task instances and a failed task's log:

==============  ==============================================  =============================================
read            self-hosted (REST API v2)                        MWAA
==============  ==============================================  =============================================
run state       ``GET /dags/{dag}/dagRuns/{run}``                ``GET /dags/{dag}/dagRuns?run_id_pattern=...``
task instances  ``GET /dags/{dag}/dagRuns/{run}/taskInstances``  ``POST /dags/~/dagRuns/~/taskInstances/list``
task log        ``GET .../taskInstances/{task}/logs/{try}``      CloudWatch Logs ``airflow-<env>-Task``
==============  ==============================================  =============================================

MWAA differs because ``InvokeRestApi``'s ``Path`` holds at most 64 characters, and
``/dags/<dag id>/dagRuns/<run id>`` is at least 69: the run is found by a query on its DAG's
runs, task instances through the batch endpoint, and logs where MWAA ships them.

:class:`AirflowRestTarget` is here; ``MwaaTarget`` is in ``mwaa.py``. urllib is imported inside
the methods that use it, so the handler's cold-start import stays small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mlops_trigger.errors import TargetError, shown


@dataclass(frozen=True)
class TriggerResult:
    created: bool
    state: str | None = None


@dataclass(frozen=True)
class TaskInstance:
    task_id: str
    state: str | None
    try_number: int = 0
    map_index: int = -1

    @property
    def key(self) -> str:
        """``task_id``, or ``task_id[map_index]`` for one instance of a mapped task."""
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"

    @classmethod
    def from_api(cls, item: Any) -> TaskInstance:
        """One entry of Airflow's ``task_instances`` list."""
        item = item if isinstance(item, dict) else {}
        try_number, map_index = item.get("try_number"), item.get("map_index")
        return cls(
            task_id=str(item.get("task_id")),
            state=item.get("state"),
            try_number=try_number if isinstance(try_number, int) else 0,
            map_index=map_index if isinstance(map_index, int) else -1,
        )


class Target(Protocol):
    name: str

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, str]) -> TriggerResult: ...

    def dag_run_state(self, dag_id: str, run_id: str) -> str | None:
        """The run's state; :class:`TargetError` 404 ``run_not_found`` when there is no such run."""
        ...

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstance]: ...

    def task_log(self, dag_id: str, run_id: str, task: TaskInstance) -> list[Any]:
        """The entries of the task's log for its ``try_number``, oldest first."""
        ...


#: Task instances read per run at most; an MLOps DAG has about ten.
MAX_TASK_INSTANCES = 500
PAGE_SIZE = 100


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


def error_for_read(status: int, payload: Any, dag_id: str, run_id: str, what: str = "run") -> TargetError:
    """Turn Airflow's refusal of a read (run, task instances, log) into the answer the caller gets."""
    if status == 404:
        if what == "run":
            return TargetError(
                f"Airflow has no run {run_id} of {dag_id}: use the MLOPS_DAG_RUN_ID that the trigger "
                "answered for this model and kind",
                status=404,
                code="run_not_found",
            )
        return TargetError(
            f"Airflow has no {what} for run {run_id} of {dag_id}", status=404, code="not_found"
        )
    if status in (401, 403):
        return error_for_status(status, payload, dag_id)
    detail = payload.get("detail") if isinstance(payload, dict) else payload
    return TargetError(
        f"Airflow answered {status} reading the {what} of {dag_id} run {run_id}: {shown(detail, 300)}",
        status=502,
        code="airflow_error",
    )


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    token: str | None = None

    def __repr__(self) -> str:  # never show secrets, even in a traceback
        return f"Credentials(username={self.username!r}, password=***, token=***)"


def collect_task_instances(
    fetch_page: Callable[[int], tuple[int, Any]], dag_id: str, run_id: str
) -> list[TaskInstance]:
    """
    Every task instance of a run, page by page, up to :data:`MAX_TASK_INSTANCES`.

    :param fetch_page: ``offset -> (status, payload)``: one page of Airflow's task-instance list,
        whichever way a target asks for it (REST GET, MWAA's batch endpoint).
    """
    items: list[Any] = []
    while len(items) < MAX_TASK_INSTANCES:
        status, payload = fetch_page(len(items))
        if status != 200:
            raise error_for_read(status, payload, dag_id, run_id, "task instances")
        page = _get(payload, "task_instances") or []
        items.extend(page)
        if not page or len(items) >= (_get(payload, "total_entries") or 0):
            break
    return [TaskInstance.from_api(item) for item in items]


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

    def dag_run_state(self, dag_id: str, run_id: str) -> str | None:
        status, payload = self._call("GET", f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}")
        if status != 200:
            raise error_for_read(status, payload, dag_id, run_id)
        return _get(payload, "state")

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstance]:
        path = f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances"
        return collect_task_instances(
            lambda offset: self._call("GET", f"{path}?limit={PAGE_SIZE}&offset={offset}"), dag_id, run_id
        )

    def task_log(self, dag_id: str, run_id: str, task: TaskInstance) -> list[Any]:
        query = "full_content=true" + (f"&map_index={task.map_index}" if task.map_index >= 0 else "")
        path = (
            f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances/"
            f"{_quote(task.task_id)}/logs/{int(task.try_number)}"
        )
        status, payload = self._call("GET", f"{path}?{query}")
        if status != 200:
            raise error_for_read(status, payload, dag_id, run_id, f"log of {task.key} try {task.try_number}")
        content = _get(payload, "content")
        return content if isinstance(content, list) else []

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


def _quote(part: str) -> str:
    import urllib.parse

    return urllib.parse.quote(part, safe="")


def _get(payload: Any, key: str) -> Any:
    return payload.get(key) if isinstance(payload, dict) else None
