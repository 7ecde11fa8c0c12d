"""
The floor: a hand-written loop that builds the same DAGs as the factory, from the same YAML.

What a careful engineer writes by hand: libyaml's C loader, layered defaults read once each,
the same operator classes imported up front, no validation, no cache. The parse benchmark
copies this file into a dags folder; tests/performance checks that it builds DAGs identical to
the factory's, so the comparison stays fair when the factory's DAGs change.
"""

import os
from datetime import datetime, timedelta

# Named so that Airflow's dag processor pre-imports them once, like the factory's loader file.
import airflow.providers.standard.operators.empty
import airflow.providers.standard.operators.hitl
import airflow.providers.standard.operators.trigger_dagrun
import airflow.sdk  # noqa: F401
import yaml
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

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

START_DATE = datetime(2024, 1, 1)


def _merge(base, override):
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=yaml.CSafeLoader) or {}


def _chain(dag, specs):
    previous = None
    for operator, task_id, kwargs in specs:
        task = operator(task_id=task_id, dag=dag, **kwargs)
        if previous is not None:
            previous >> task
        previous = task


def build(globals_dict, roots):
    defaults_of = {}
    for root in roots:
        root = os.path.realpath(root)
        for folder, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
            if "mlops-defaults.yaml" in filenames:
                defaults_of[folder] = _read(os.path.join(folder, "mlops-defaults.yaml"))
            if "mlops.yaml" not in filenames:
                continue
            chain, here = [], folder
            while True:
                chain.append(here)
                if here == root:
                    break
                here = os.path.dirname(here)
            cfg = {}
            for layer in reversed(chain):
                cfg = _merge(cfg, defaults_of.get(layer, {}))
            path = os.path.join(folder, "mlops.yaml")
            cfg = _merge(cfg, _read(path))
            for dag in build_model(cfg, path, root):
                globals_dict[dag.dag_id] = dag


def build_model(cfg, path, root):
    """The train, deploy and retrain DAGs of one merged config."""
    project, model, version = cfg["project"], cfg["model"], str(cfg["version"])
    backend = cfg.get("backend", "local")
    deployment = cfg.get("deployment", {})
    remote = "sagemaker" if backend == "sagemaker" else "local"
    approval = deployment.get("approval", "manual")
    owner = cfg.get("owner", "mlops")
    common = {"config_path": path, "config_root": root}
    training_backend = cfg.get("training", {}).get("backend") or backend
    tags = {"mlops", f"project:{project}", f"model:{model}", f"backend:{training_backend}", *cfg.get("tags", [])}
    doc = (
        f"**{project}/{model}** {version}: {cfg.get('description') or 'no description'}\n\n"
        f"Owner: {owner} · config: `{path}` · backend: {training_backend} · "
        f"registry: {cfg.get('registry', {}).get('backend') or remote} (`{project}--{model}`) · "
        f"serving: {deployment.get('backend') or remote} · approval: {approval}\n\n"
        f"[Models](/mlops/models) · [this model's versions](/mlops/dag/mlops__{project}__{model}__train)"
    )

    def dag(kind, description, schedule=None, max_active_runs=16):
        return DAG(
            dag_id=f"mlops__{project}__{model}__{kind}", dag_display_name=f"{project}/{model} · {kind}",
            description=description, schedule=schedule,
            start_date=START_DATE, catchup=False, tags=tags | {kind}, doc_md=doc,
            max_active_runs=max_active_runs, auto_register=False, is_paused_upon_creation=False,
            default_args={
                "retries": 1, "retry_delay": timedelta(seconds=30), "owner": owner,
                "on_failure_callback": MlopsFailureNotifier(config_path=path, config_root=root),
            },
        )

    train = dag("train", f"Train, evaluate, gate and register {project}/{model} {version}.x", max_active_runs=1)
    _chain(train, [
        (MlopsTrainOperator, "train", common),
        (MlopsEvaluateOperator, "evaluate", common),
        (MlopsGateOperator, "gate", common),
        (MlopsRegisterOperator, "register", common),
        (MlopsNotifyOperator, "notify", {**common, "event": "training_finished", "source_task_id": "register"}),
    ])
    train.get_task("register") >> MlopsGatePassedOperator(task_id="gate_passed", dag=train, **common)
    endpoint = deployment.get("endpoint_name") or f"{project}--{model}"
    deploy = dag("deploy", f"Approve and deploy {project}/{model} to endpoint {endpoint}", max_active_runs=1)
    _chain(deploy, [
        (MlopsResolveVersionOperator, "resolve_version", common),
        (MlopsApprovalOperator if approval == "manual" else MlopsAutoApproveOperator, "approve", common),
        (MlopsDeployOperator, "deploy", common),
        (MlopsSmokeTestOperator, "smoke_test", common),
        (MlopsPromoteOperator, "promote", common),
        (MlopsNotifyOperator, "notify", {**common, "event": "deployed", "source_task_id": "deploy"}),
    ])
    retrain = dag(
        "retrain", f"Decide on schedule whether {project}/{model} needs retraining",
        schedule=cfg.get("schedule", {}).get("retrain_cron"), max_active_runs=1,
    )
    decide = MlopsRetrainDecisionOperator(task_id="decide", dag=retrain, **common)
    decide >> MlopsTriggerTrainOperator(task_id="trigger_train", dag=retrain, trigger_dag_id=train.dag_id)
    decide >> EmptyOperator(task_id="skip_retrain", dag=retrain)
    return train, deploy, retrain


build(globals(), [p for p in os.environ.get("MLOPS_CONFIG_PATH", "").split(os.pathsep) if p])
