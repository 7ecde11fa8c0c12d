"""
Moving a run of the test stack (trigger_testenv.py) to the states a status query reports.

The stack has no scheduler, so its runs stay queued. To see a failed, approved-for or finished
run, the tests put it there the way Airflow itself would leave it: the REST API where it can
(``PATCH`` a run's state), the metadata DB where it cannot (a task's try number and the
``awaiting_input`` state, which only a running task reaches), and a task log file written where
the api-server reads it, in the JSON lines Airflow 3's task runner writes. Also: valid and
hostile status queries, for tests/lambda and tests/ci.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from trigger_testenv import FOREIGN_DAG, MODEL, PROJECT

#: A failed task's log as Airflow 3.3's task runner writes it (shortened from a real runtime run).
FAILED_TASK_LOG: list[dict[str, Any]] = [
    {
        "timestamp": "2026-12-03T08:43:13.227931Z",
        "level": "info",
        "event": "::group::Pre Execute",
        "logger": "task",
    },
    {
        "timestamp": "2026-12-03T08:43:13.284419Z",
        "level": "info",
        "event": "DAG bundles loaded: dags-folder",
        "logger": "airflow.dag_processing.bundles.manager.DagBundlesManager",
    },
    {"timestamp": "2026-12-03T08:43:13.873080Z", "level": "info", "event": "::endgroup::", "logger": "task"},
    {"timestamp": "2026-12-03T08:43:13.900000Z", "level": "debug", "event": "a debug line nobody needs"},
    {
        "timestamp": "2026-12-03T08:43:14.223703Z",
        "level": "warning",
        "event": "Unable to find AWS Connection ID 'aws_default', switching to empty.",
        "logger": "airflow.task.hooks.airflow_provider_mlops.hooks.sagemaker.MlopsSageMakerHook",
    },
    {
        "timestamp": "2026-12-03T08:43:14.300000Z",
        "level": "info",
        "event": "training job demo-breast-cancer-train-1 \x1b[31mstarted\x1b[0m",
        "logger": "airflow.task.operators.airflow_provider_mlops.operators.train.MlopsTrainOperator",
    },
    {
        "timestamp": "2026-12-03T08:43:14.601444Z",
        "level": "error",
        "event": "Task failed with exception",
        "logger": "task",
        "error_detail": [
            {
                "exc_type": "TrainingFailedError",
                "exc_value": "training job demo-breast-cancer-train-1 failed: ValueError: boom",
                "exc_notes": [],
                "syntax_error": None,
                "is_cause": False,
                "frames": [
                    {"filename": "/opt/airflow/task_runner.py", "lineno": 920, "name": "run"},
                    {"filename": "/opt/mlops/operators/train.py", "lineno": 88, "name": "execute_complete"},
                ],
                "is_group": False,
                "exceptions": [],
            }
        ],
    },
    {
        "timestamp": "2026-12-03T08:43:14.603480Z",
        "level": "info",
        "event": "::group::Post Execute",
        "logger": "task",
    },
    {
        "timestamp": "2026-12-03T08:43:14.622002Z",
        "level": "info",
        "event": "No notifications.slack or notifications.sns in mlops.yaml; failure not sent",
    },
    {"timestamp": "2026-12-03T08:43:14.623211Z", "level": "info", "event": "::endgroup::", "logger": "task"},
]


def _db(stack: Any) -> sqlite3.Connection:
    return sqlite3.connect(Path(stack.env["AIRFLOW_HOME"]) / "airflow.db", timeout=30)


def first_task(stack: Any, dag_id: str, run_id: str) -> str:
    payload = stack.client().request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    return str(payload["task_instances"][0]["task_id"])


def set_task(stack: Any, dag_id: str, run_id: str, task_id: str, state: str, try_number: int = 1) -> None:
    with _db(stack) as db:
        changed = db.execute(
            "UPDATE task_instance SET state = ?, try_number = ? WHERE dag_id = ? AND run_id = ? AND task_id = ?",
            (state, try_number, dag_id, run_id, task_id),
        ).rowcount
    assert changed == 1, f"no task instance {task_id} in {dag_id} {run_id}"


def set_run_running(stack: Any, dag_id: str, run_id: str) -> None:
    with _db(stack) as db:
        db.execute("UPDATE dag_run SET state = 'running' WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))


def write_task_log(
    stack: Any, dag_id: str, run_id: str, task_id: str, try_number: int, entries: list[dict[str, Any]]
) -> Path:
    """The file the api-server reads for that try (Airflow's default ``log_filename_template``)."""
    path = (
        Path(stack.env["AIRFLOW_HOME"])
        / "logs"
        / f"dag_id={dag_id}"
        / f"run_id={run_id}"
        / f"task_id={task_id}"
        / f"attempt={try_number}.log"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    return path


def fail_run(stack: Any, dag_id: str, run_id: str, entries: list[dict[str, Any]] = FAILED_TASK_LOG) -> str:
    """Fail the run's first task in its first try, with ``entries`` as its log; then the run. Returns the task."""
    task_id = first_task(stack, dag_id, run_id)
    set_task(stack, dag_id, run_id, task_id, "failed", try_number=1)
    write_task_log(stack, dag_id, run_id, task_id, 1, entries)
    stack.client().request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", {"state": "failed"})
    return task_id


def succeed_run(stack: Any, dag_id: str, run_id: str) -> None:
    stack.client().request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", {"state": "success"})


def await_approval(stack: Any, dag_id: str, run_id: str) -> str:
    """A running run whose first task waits for a person, as an ApprovalOperator leaves it."""
    task_id = first_task(stack, dag_id, run_id)
    set_run_running(stack, dag_id, run_id)
    set_task(stack, dag_id, run_id, task_id, "awaiting_input", try_number=1)
    return task_id


# --- status queries ---------------------------------------------------------------------------

RUN_ID = "trigger__1.0.7__0123456789abcdef0123"


def status_query(**overrides: Any) -> dict[str, Any]:
    """A valid status query, with ``overrides``."""
    query = {"action": "status", "project": PROJECT, "model": MODEL, "kind": "train", "dag_run_id": RUN_ID}
    query.update(overrides)
    return query


def _without(name: str) -> dict[str, Any]:
    query = status_query()
    del query[name]
    return query


#: Malformed and hostile status queries: (id, query, status, error code, field or None).
HOSTILE_QUERIES: list[tuple[str, Any, int, str, str | None]] = [
    (
        "foreign-run-id",
        status_query(dag_run_id="manual__2026-12-03T08:42:41+00:00"),
        400,
        "invalid_event",
        "dag_run_id",
    ),
    (
        "scheduled-run-id",
        status_query(dag_run_id="scheduled__2026-11-30T04:00:00+00:00"),
        400,
        "invalid_event",
        "dag_run_id",
    ),
    (
        "run-id-traversal",
        status_query(dag_run_id=f"{RUN_ID}/../../{FOREIGN_DAG}"),
        400,
        "invalid_event",
        "dag_run_id",
    ),
    (
        "run-id-url-encoded",
        status_query(dag_run_id=RUN_ID.replace("__", "%5F%5F")),
        400,
        "invalid_event",
        "dag_run_id",
    ),
    (
        "run-id-like-wildcard",
        status_query(dag_run_id="trigger__1.0.7__%"),
        400,
        "invalid_event",
        "dag_run_id",
    ),
    (
        "run-id-underscore-wildcard",
        status_query(dag_run_id="trigger__1.0.7__" + "_" * 20),
        400,
        "invalid_event",
        "dag_run_id",
    ),
    ("run-id-pipe-or", status_query(dag_run_id=f"{RUN_ID}|manual"), 400, "invalid_event", "dag_run_id"),
    ("run-id-tilde-all-runs", status_query(dag_run_id="~"), 400, "invalid_event", "dag_run_id"),
    ("run-id-uppercase-hash", status_query(dag_run_id=RUN_ID.upper()), 400, "invalid_event", "dag_run_id"),
    ("run-id-short-hash", status_query(dag_run_id=RUN_ID[:-1]), 400, "invalid_event", "dag_run_id"),
    ("run-id-long-hash", status_query(dag_run_id=RUN_ID + "0"), 400, "invalid_event", "dag_run_id"),
    ("run-id-trailing-newline", status_query(dag_run_id=RUN_ID + "\n"), 400, "invalid_event", "dag_run_id"),
    (
        "run-id-bad-version",
        status_query(dag_run_id="trigger__01.0.7__0123456789abcdef0123"),
        400,
        "invalid_event",
        "dag_run_id",
    ),
    (
        "run-id-non-ascii-digit",
        status_query(dag_run_id="trigger__1.0.\u0667__0123456789abcdef0123"),
        400,
        "invalid_event",
        "dag_run_id",
    ),
    ("run-id-as-list", status_query(dag_run_id=[RUN_ID]), 400, "wrong_type", "dag_run_id"),
    ("run-id-as-null", status_query(dag_run_id=None), 400, "wrong_type", "dag_run_id"),
    ("missing-run-id", _without("dag_run_id"), 400, "missing_field", "dag_run_id"),
    ("missing-kind", _without("kind"), 400, "missing_field", "kind"),
    ("foreign-dag-as-kind", status_query(kind=FOREIGN_DAG), 400, "invalid_event", "kind"),
    ("status-as-kind", status_query(kind="status"), 400, "invalid_event", "kind"),
    ("traversal-in-project", status_query(project="../../etc"), 400, "invalid_event", "project"),
    ("dunder-injection", status_query(model="x__deploy"), 400, "invalid_event", "model"),
    ("uppercase-name", status_query(project="Demo"), 400, "invalid_event", "project"),
    ("foreign-dag-id-field", {**status_query(), "dag_id": FOREIGN_DAG}, 400, "unknown_field", "dag_id"),
    ("trigger-fields-too", {**status_query(), "version": "1.0.7"}, 400, "unknown_field", "version"),
    ("oversized", status_query(dag_run_id="a" * 10_000), 413, "payload_too_large", None),
    ("oversized-text", json.dumps(status_query(model="b" * 10_000)), 413, "payload_too_large", None),
]
