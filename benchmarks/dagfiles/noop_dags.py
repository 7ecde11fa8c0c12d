"""Airflow's floor for the end-to-end benchmark: the factory's DAG shapes with EmptyOperator tasks."""

import os

import airflow.sdk  # noqa: F401  (the dag processor only parses files that mention airflow and dag)
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, get_parsing_context

from airflow_provider_mlops.factory import load_dags


def noop_copy(dag):
    """The same DAG shape (task ids, edges) with EmptyOperator tasks, as ``noop__<dag_id>``."""
    copy = DAG(dag_id=f"noop__{dag.dag_id}", schedule=None, start_date=dag.start_date, catchup=False,
               max_active_runs=dag.max_active_runs, auto_register=False, is_paused_upon_creation=False)
    tasks = {task_id: EmptyOperator(task_id=task_id, dag=copy) for task_id in dag.task_ids}
    for task in dag.tasks:
        for upstream in task.upstream_task_ids:
            tasks[upstream] >> tasks[task.task_id]
    return copy


def _build() -> None:
    real: dict = {}  # not this module's globals: the real DAGs belong to mlops_dags.py
    wanted = get_parsing_context().dag_id  # a task of noop__<dag id> needs only that DAG's copy
    load_dags(real, config_path=os.environ["MLOPS_CONFIG_PATH"], dag_id=wanted.removeprefix("noop__") if wanted else None)
    for dag in real.values():
        globals()[f"noop__{dag.dag_id}"] = noop_copy(dag)


_build()
