"""
Plan → Airflow DAGs, in exactly one place.

The operator classes sit in an explicit dict, so ``grep`` finds what a plan's operator key
means. Everything here is imported up front by the loader: the DAG file then names the
``airflow.*`` modules the dag processor should pre-import (see DESIGN.md §6).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG

from airflow_provider_mlops.factory.plan import DagSpec
from airflow_provider_mlops.operators import (
    MlopsApprovalOperator,
    MlopsAutoApproveOperator,
    MlopsDeployOperator,
    MlopsEvaluateOperator,
    MlopsGateOperator,
    MlopsNotifyOperator,
    MlopsPromoteOperator,
    MlopsRegisterOperator,
    MlopsResolveVersionOperator,
    MlopsRetrainDecisionOperator,
    MlopsSmokeTestOperator,
    MlopsTrainOperator,
)

OPERATORS: dict[str, type[Any]] = {
    "train": MlopsTrainOperator,
    "evaluate": MlopsEvaluateOperator,
    "gate": MlopsGateOperator,
    "register": MlopsRegisterOperator,
    "notify": MlopsNotifyOperator,
    "resolve_version": MlopsResolveVersionOperator,
    "approve_manual": MlopsApprovalOperator,
    "approve_auto": MlopsAutoApproveOperator,
    "deploy": MlopsDeployOperator,
    "smoke_test": MlopsSmokeTestOperator,
    "promote": MlopsPromoteOperator,
    "retrain_decision": MlopsRetrainDecisionOperator,
    "trigger_dag_run": TriggerDagRunOperator,
    "empty": EmptyOperator,
}

START_DATE = datetime(2024, 1, 1)
DEFAULT_ARGS: dict[str, Any] = {"retries": 1, "retry_delay": timedelta(seconds=30)}


def render_dag(spec: DagSpec) -> DAG:
    dag = DAG(
        dag_id=spec.dag_id,
        description=spec.description,
        schedule=spec.schedule,
        start_date=START_DATE,
        catchup=False,
        tags=set(spec.tags),
        doc_md=spec.doc_md,
        max_active_runs=spec.max_active_runs,
        default_args={**DEFAULT_ARGS, "owner": spec.owner},
        auto_register=False,
    )
    tasks: dict[str, Any] = {}
    for task in spec.tasks:
        tasks[task.task_id] = OPERATORS[task.operator](task_id=task.task_id, dag=dag, **task.kwargs)
    for task in spec.tasks:
        for upstream in task.upstream:
            tasks[upstream] >> tasks[task.task_id]
    return dag
