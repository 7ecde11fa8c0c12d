"""
Config → plan: the DAGs and tasks a model gets, as plain data.

Nothing here imports Airflow; :mod:`.render` turns the plan into DAG objects in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_mlops.config.loader import LoadedConfig
from airflow_provider_mlops.naming import dag_id, model_group


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    operator: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    upstream: tuple[str, ...] = ()


@dataclass(frozen=True)
class DagSpec:
    dag_id: str
    kind: str
    description: str
    schedule: str | None
    tags: tuple[str, ...]
    owner: str
    doc_md: str
    tasks: tuple[TaskSpec, ...]
    max_active_runs: int = 16
    #: What the UI shows instead of the id: ``<project>/<model> · <kind>``.
    display_name: str = ""


def _chain(*specs: tuple[str, str, dict[str, Any]]) -> tuple[TaskSpec, ...]:
    tasks: list[TaskSpec] = []
    for task_id, operator, kwargs in specs:
        tasks.append(TaskSpec(task_id, operator, kwargs, (tasks[-1].task_id,) if tasks else ()))
    return tuple(tasks)


def plan_model(loaded: LoadedConfig, root: str | None = None) -> list[DagSpec]:
    """The three DAGs of one model: train, deploy and retrain."""
    cfg = loaded.config
    common = {"config_path": str(loaded.path), "config_root": root}
    tags = ("mlops", f"project:{cfg.project}", f"model:{cfg.model}", f"backend:{cfg.training_backend}", *cfg.tags)
    doc = (
        f"**{cfg.project}/{cfg.model}** {cfg.version}: {cfg.description or 'no description'}\n\n"
        f"Owner: {cfg.owner} · config: `{loaded.path}` · backend: {cfg.training_backend} · "
        f"registry: {cfg.registry_backend} (`{model_group(cfg.project, cfg.model)}`) · "
        f"serving: {cfg.serving_backend} · approval: {cfg.deployment.approval}\n\n"
        f"[Models](/mlops/models) · [this model's versions](/mlops/dag/{dag_id(cfg.project, cfg.model, 'train')})"
    )
    train_id = dag_id(cfg.project, cfg.model, "train")
    train = DagSpec(
        dag_id=train_id,
        kind="train",
        display_name=f"{cfg.project}/{cfg.model} · train",
        description=f"Train, evaluate, gate and register {cfg.project}/{cfg.model} {cfg.version}.x",
        schedule=None,
        tags=(*tags, "train"),
        owner=cfg.owner,
        doc_md=doc,
        tasks=(
            *_chain(
                ("train", "train", common),
                ("evaluate", "evaluate", common),
                ("gate", "gate", common),
                ("register", "register", common),
                ("notify", "notify", {**common, "event": "training_finished", "source_task_id": "register"}),
            ),
            # A leaf that is skipped when the gate failed: visible in the Grid, the run still succeeds.
            TaskSpec("gate_passed", "gate_passed", common, ("register",)),
        ),
        # One training per model at a time: CI, a person and the retrain schedule never overlap.
        max_active_runs=1,
    )
    deployment = cfg.deployment
    if deployment.approval == "manual":
        # Who may answer, and for how long (the task re-reads both from the config when it runs).
        approvers = [{"id": a, "name": a} if isinstance(a, str) else {"id": a.id, "name": a.name} for a in deployment.approvers]
        approve: tuple[str, str, dict[str, Any]] = ("approve", "approve_manual", {
            **common,
            **({"assigned_users": approvers} if approvers else {}),
            **({"response_timeout_seconds": deployment.approval_timeout_seconds} if deployment.approval_timeout else {}),
        })
    else:
        approve = ("approve", "approve_auto", common)
    deploy = DagSpec(
        dag_id=dag_id(cfg.project, cfg.model, "deploy"),
        kind="deploy",
        display_name=f"{cfg.project}/{cfg.model} · deploy",
        description=f"Approve and deploy {cfg.project}/{cfg.model} to endpoint {cfg.endpoint_name}",
        schedule=None,
        tags=(*tags, "deploy"),
        owner=cfg.owner,
        doc_md=doc,
        tasks=_chain(
            ("resolve_version", "resolve_version", common),
            approve,
            ("deploy", "deploy", common),
            ("smoke_test", "smoke_test", common),
            ("promote", "promote", common),
            ("notify", "notify", {**common, "event": "deployed", "source_task_id": "deploy"}),
        ),
        max_active_runs=1,
    )
    decide = TaskSpec("decide", "retrain_decision", common)
    retrain = DagSpec(
        dag_id=dag_id(cfg.project, cfg.model, "retrain"),
        kind="retrain",
        display_name=f"{cfg.project}/{cfg.model} · retrain",
        description=f"Decide on schedule whether {cfg.project}/{cfg.model} needs retraining",
        schedule=cfg.schedule.retrain_cron,
        tags=(*tags, "retrain"),
        owner=cfg.owner,
        doc_md=doc,
        tasks=(
            decide,
            TaskSpec("trigger_train", "trigger_train", {"trigger_dag_id": train_id}, ("decide",)),
            TaskSpec("skip_retrain", "empty", {}, ("decide",)),
        ),
        max_active_runs=1,
    )
    return [train, deploy, retrain]
