"""
A stand-in for the task instance a running operator gets in its context.

It keeps XComs by ``(task_id, key)`` and answers the Task SDK's run-time ``get_dr_count`` from
a number the test sets, so operators run without a metadata DB.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

RUN_ID = "manual__2026-01-01T00:00:00+00:00"


class FakeTaskInstance:
    def __init__(self, dag_id: str, task_id: str, *, run_id: str = RUN_ID, active_runs: int = 0) -> None:
        self.dag_id = dag_id
        self.task_id = task_id
        self.run_id = run_id
        self.try_number = 1
        self.active_runs = active_runs
        self.xcoms: dict[tuple[str, str], Any] = {}
        self.counted: list[dict[str, Any]] = []

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms.get((task_ids or self.task_id, key))

    def xcom_push(self, key: str, value: Any, **_: Any) -> None:
        self.xcoms[(self.task_id, key)] = value

    def get_dr_count(self, dag_id: str, states: list[str] | None = None, **kwargs: Any) -> int:
        self.counted.append({"dag_id": dag_id, "states": states, **kwargs})
        return self.active_runs


def context(ti: FakeTaskInstance, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parts of an Airflow context the provider's operators read."""
    return {"ti": ti, "dag_run": SimpleNamespace(conf=conf or {}, run_id=ti.run_id)}
