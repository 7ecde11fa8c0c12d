"""
Plan → Airflow DAGs, in exactly one place.

The operator classes sit in an explicit dict, so ``grep`` finds what a plan's operator key
means. Everything here is imported up front by the loader: the DAG file then names the
``airflow.*`` modules the dag processor should pre-import (the dag processor pre-imports the airflow.* modules a DAG file names).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_provider_mlops.factory.plan import DagSpec
from airflow_provider_mlops.notifications.callbacks import MlopsFailureNotifier
from airflow_provider_mlops.operators import (
    MlopsApprovalOperator,
    MlopsAutoApproveOperator,
    MlopsDeployOperator,
    MlopsEvaluateOperator,
    MlopsGateOperator,
    MlopsGatePassedOperator,
    MlopsNotifyOperator,
    MlopsPromoteOperator,
    MlopsRegisterOperator,
    MlopsResolveVersionOperator,
    MlopsRetrainDecisionOperator,
    MlopsSmokeTestOperator,
    MlopsTrainOperator,
    MlopsTriggerTrainOperator,
)

OPERATORS: dict[str, type[Any]] = {
    "train": MlopsTrainOperator,
    "evaluate": MlopsEvaluateOperator,
    "gate": MlopsGateOperator,
    "register": MlopsRegisterOperator,
    "gate_passed": MlopsGatePassedOperator,
    "notify": MlopsNotifyOperator,
    "resolve_version": MlopsResolveVersionOperator,
    "approve_manual": MlopsApprovalOperator,
    "approve_auto": MlopsAutoApproveOperator,
    "deploy": MlopsDeployOperator,
    "smoke_test": MlopsSmokeTestOperator,
    "promote": MlopsPromoteOperator,
    "retrain_decision": MlopsRetrainDecisionOperator,
    "trigger_train": MlopsTriggerTrainOperator,
    "empty": EmptyOperator,
}

START_DATE = datetime(2024, 1, 1)
DEFAULT_ARGS: dict[str, Any] = {"retries": 1, "retry_delay": timedelta(seconds=30)}


def _failure_callback(spec: DagSpec) -> dict[str, Any]:
    """A task-level failure notifier (a DAG-level one fails under dag.test(), seen with Airflow 3.3)."""
    config = next((t.kwargs for t in spec.tasks if "config_path" in t.kwargs), None)
    if config is None:
        return {}
    notifier = MlopsFailureNotifier(config_path=config["config_path"], config_root=config.get("config_root"))
    return {"on_failure_callback": notifier}


def airflow_dag_defaults() -> dict[str, Any]:
    """
    The DAG arguments whose defaults Airflow reads from its config for every DAG it builds.

    Passing them explicitly builds the same DAG (``tests/performance`` compares it with the
    benchmark's floor, which passes none): the loader reads them once per parse instead of
    three config lookups per DAG (about 10% of building a DAG).
    """
    from airflow.sdk.configuration import conf

    return {
        "max_active_tasks": conf.getint("core", "max_active_tasks_per_dag"),
        "max_consecutive_failed_dag_runs": conf.getint("core", "max_consecutive_failed_dag_runs_per_dag"),
        "disable_bundle_versioning": conf.getboolean("dag_processor", "disable_bundle_versioning"),
    }


def render_dag(spec: DagSpec, dag_defaults: dict[str, Any] | None = None) -> DAG:
    """Build one DAG from its plan; ``dag_defaults`` is :func:`airflow_dag_defaults`, read once per load."""
    dag = DAG(
        **(dag_defaults or {}),
        dag_id=spec.dag_id,
        dag_display_name=spec.display_name or spec.dag_id,
        description=spec.description,
        schedule=spec.schedule,
        start_date=START_DATE,
        catchup=False,
        tags=set(spec.tags),
        doc_md=spec.doc_md,
        max_active_runs=spec.max_active_runs,
        default_args={**DEFAULT_ARGS, "owner": spec.owner, **_failure_callback(spec)},
        auto_register=False,
        # Runs come from the trigger Lambda, CI and the retrain schedule: a paused DAG would
        # leave them queued forever.
        is_paused_upon_creation=False,
    )
    tasks: dict[str, Any] = {}
    for task in spec.tasks:
        tasks[task.task_id] = OPERATORS[task.operator](task_id=task.task_id, dag=dag, **task.kwargs)
    for task in spec.tasks:
        for upstream in task.upstream:
            tasks[upstream] >> tasks[task.task_id]
    return dag
