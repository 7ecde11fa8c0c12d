"""
The status query: how is a run that this trigger started doing?

::

    {"action": "status", "project": "demo", "model": "breast-cancer", "kind": "train" | "deploy" | "retrain",
     "dag_run_id": "trigger__1.0.7__<20 hex>"}

    answer = {"statusCode": 200, "ok": true, "dag_id", "dag_run_id", "target",
              "state": "queued" | "running" | "success" | "failed",
              "tasks": {task_id: state}, "waiting_for_approval": bool,
              "failed": [{"task_id", "try_number", "log_tail", "map_index"?}], "url": str | null}
           | {"statusCode": 4xx | 5xx, "ok": false, "error", "message", "field"?}   (404: run_not_found)

It is checked as strictly as the trigger event: exactly these fields, names by the mlops.yaml
rule, and a run id only of the shape the trigger makes (``trigger__<semver>__<20 hex>``), so
the Lambda reads back only runs it could have started, and never a DAG outside ``mlops__``.
A mapped task's states are keyed ``task_id[map_index]``. ``waiting_for_approval`` is true while
a task is ``awaiting_input`` (an approval: docs/approval.md). ``url`` is the run's page in the
Airflow UI (``MLOPS_AIRFLOW_UI_URL``), null when it is not known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_trigger.errors import EventError, TriggerError, shown
from mlops_trigger.event import (
    ACTIONS,
    NAME_RE,
    NAME_RULE,
    RUN_ID_RE,
    SEMVER_RULE,
    check_string_fields,
    make_dag_id,
)
from mlops_trigger.targets import Target, TaskInstance
from mlops_trigger.tasklog import log_tail

STATUS_ACTION = "status"
STATUS_FIELDS = ("action", "project", "model", "kind", "dag_run_id")
AWAITING_INPUT = "awaiting_input"
FAILED = "failed"
#: Logs read per answer: each is a request, and the caller needs the first failures, not all.
MAX_FAILED_LOGS = 3


@dataclass(frozen=True)
class StatusQuery:
    project: str
    model: str
    kind: str
    dag_run_id: str

    @property
    def dag_id(self) -> str:
        return make_dag_id(self.project, self.model, self.kind)

    def log_fields(self) -> dict[str, str]:
        return {"action": STATUS_ACTION, "project": self.project, "model": self.model, "kind": self.kind}


def is_status_query(payload: Any) -> bool:
    """A decoded event that asks for a status, not for a run (the trigger event has no ``status`` action)."""
    return isinstance(payload, dict) and payload.get("action") == STATUS_ACTION


def parse_status_query(payload: Any) -> StatusQuery:
    """
    Validate a decoded status query.

    :raises EventError: with a 4xx status that says which field is wrong and how.
    """
    payload = check_string_fields(payload, STATUS_FIELDS, "a status query")
    if payload["kind"] not in ACTIONS:
        raise EventError(f"kind {shown(payload['kind'])} is not one of {', '.join(ACTIONS)}", field="kind")
    for name in ("project", "model"):
        if not NAME_RE.fullmatch(payload[name]):
            raise EventError(f"{name} {shown(payload[name])} is not a valid name: {NAME_RULE}", field=name)
    if not RUN_ID_RE.fullmatch(payload["dag_run_id"]):
        raise EventError(
            f"dag_run_id {shown(payload['dag_run_id'])} is not a run this trigger starts: "
            f"trigger__<version>__<20 lowercase hex>, the version {SEMVER_RULE} (use the MLOPS_DAG_RUN_ID "
            "the trigger answered)",
            field="dag_run_id",
        )
    return StatusQuery(payload["project"], payload["model"], payload["kind"], payload["dag_run_id"])


def read_status(target: Target, query: StatusQuery, *, ui_url: str | None) -> dict[str, Any]:
    """Ask ``target`` for the run, its task instances and the logs of failed tasks; build the answer."""
    dag_id, run_id = query.dag_id, query.dag_run_id
    state = target.dag_run_state(dag_id, run_id)
    instances = target.task_instances(dag_id, run_id)
    failed = [ti for ti in instances if ti.state == FAILED]
    return {
        "statusCode": 200,
        "ok": True,
        "dag_id": dag_id,
        "dag_run_id": run_id,
        "target": target.name,
        "state": state,
        "tasks": {ti.key: ti.state for ti in instances},
        "waiting_for_approval": any(ti.state == AWAITING_INPUT for ti in instances),
        "failed": [
            _failure(target, dag_id, run_id, ti, fetch_log=index < MAX_FAILED_LOGS)
            for index, ti in enumerate(failed)
        ],
        "url": run_url(ui_url, dag_id, run_id),
    }


def run_url(ui_url: str | None, dag_id: str, run_id: str) -> str | None:
    """The run's page in the Airflow 3 UI."""
    if not ui_url:
        return None
    from urllib.parse import quote

    return f"{ui_url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _failure(
    target: Target, dag_id: str, run_id: str, ti: TaskInstance, *, fetch_log: bool
) -> dict[str, Any]:
    if not fetch_log:
        tail = f"(log not read: only the first {MAX_FAILED_LOGS} failed tasks' logs are; see the run's page)"
    else:
        try:
            tail = log_tail(target.task_log(dag_id, run_id, ti)) or "(the log is empty)"
        except TriggerError as exc:  # the run's state is still worth answering
            tail = f"(log not available: {exc.message})"
    failure: dict[str, Any] = {"task_id": ti.task_id, "try_number": ti.try_number, "log_tail": tail}
    if ti.map_index >= 0:
        failure["map_index"] = ti.map_index
    return failure
