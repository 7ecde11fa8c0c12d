"""What the system tests share: putting an ad-hoc DAG where Airflow's API and HITL look for it."""

from __future__ import annotations

from typing import Any


def serialize_dag(dag: Any) -> None:
    """Write an ad-hoc DAG to the metadata DB, as the dag processor would."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db("dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(),
                                         session=session)
