"""
Messages rendered over the example model's real evaluation (``mlops demo`` on breast-cancer).

``fixtures/breast_cancer_versions.json`` holds the two versions the demo registered: 1.0.0 (the
first model, gate passed, then approved and deployed) and 1.0.1 (trained with C=0.05, gated
against 1.0.0 and rejected by the gate). The snapshot test and docs/notifications.md use these.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_provider_mlops.notifications import links, messages
from airflow_provider_mlops.registry.base import PENDING, REJECTED

HERE = Path(__file__).parent
BASE = "http://localhost:8080"
# The error a real train run raised with hyperparameter C="not-a-number" (test_pipeline.py); only
# the MLOps home in the log path is shortened to ~/.mlops.
TRAIN_FAILURE = ("BackendError: training job demo-breast-cancer-train-1ea9358692 failed: the entrypoint exited with "
                 "code 2; log: ~/.mlops/jobs/demo-breast-cancer-train-1ea9358692/stdout.log")
TRAIN_DAG, DEPLOY_DAG = "mlops__demo__breast-cancer__train", "mlops__demo__breast-cancer__deploy"


def versions() -> dict[str, dict[str, Any]]:
    records = json.loads((HERE / "fixtures" / "breast_cancer_versions.json").read_text())
    return {r["semver"]: r for r in records}


def as_registered(record: dict[str, Any]) -> dict[str, Any]:
    """The record as the register task returned it, before approval and deployment changed it."""
    status = PENDING if record["gate"]["passed"] else REJECTED
    return {**record, "status": status, "stage": None, "deployment": {},
            "approval": {} if status == PENDING else record["approval"]}


def example_messages() -> dict[str, messages.Message]:
    v = versions()
    first, second = as_registered(v["1.0.0"]), as_registered(v["1.0.1"])
    run = first["lineage"]["run_id"]
    deploy_run = v["1.0.0"]["deployment"]["run_id"]
    return {
        "training_finished_passed": messages.training_finished(
            "demo", "breast-cancer", first, links={"Airflow run": links.dag_run_url(TRAIN_DAG, run, BASE)}),
        "training_finished_failed": messages.training_finished(
            "demo", "breast-cancer", second,
            links={"Airflow run": links.dag_run_url(TRAIN_DAG, second["lineage"]["run_id"], BASE)}),
        "awaiting_approval": messages.awaiting_approval(
            "demo", "breast-cancer", first, endpoint="demo--breast-cancer",
            links={"Approve or reject": links.approval_url(DEPLOY_DAG, deploy_run, "approve", BASE),
                   "Airflow run": links.dag_run_url(DEPLOY_DAG, deploy_run, BASE)}),
        "deployed": messages.deployed(
            "demo", "breast-cancer",
            {"endpoint": "demo--breast-cancer", "version": "1.0.0", "previous_version": None,
             "url": v["1.0.0"]["deployment"]["url"]},
            strategy="all_at_once", backend="local",
            links={"Airflow run": links.dag_run_url(DEPLOY_DAG, deploy_run, BASE)}),
        "failure": messages.task_failure(
            "demo", "breast-cancer", dag_id=TRAIN_DAG, task_id="train", try_number=2, max_tries=1,
            error=TRAIN_FAILURE,
            links={"Log": links.task_log_url(TRAIN_DAG, run, "train", 2, BASE),
                   "Airflow run": links.dag_run_url(TRAIN_DAG, run, BASE)}),
    }
