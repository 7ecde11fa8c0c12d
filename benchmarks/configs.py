"""
Generate N model configs, and the same DAGs as dag-factory YAML, for the parse benchmark.

Layout (as CI publishes configs): ``<root>/<project>/<model>/mlops.yaml`` with an org-level
``mlops-defaults.yaml`` at the root and a project-level one in each project folder. About ten
models per project. The dag-factory tree holds one ``dags.yml`` per model with that model's
three DAGs, written from this project's own plan so that both build exactly the same DAGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_Dumper: type = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

MODELS_PER_PROJECT = 10

ORG_DEFAULTS = """\
# Organisation-level defaults for every generated model.
owner: ml-platform
evaluation:
  resources: {instance_type: ml.m5.large}
notifications:
  events: [training_finished, awaiting_approval, deployed, rejected, rolled_back, failure]
"""

PROJECT_DEFAULTS = """\
# Project-level defaults: the nearest file wins.
owner: team-{project}
tags: [{project}]
"""

MODEL_CONFIG = """\
project: {project}
model: {model}
version: "1.{minor}"
description: Generated model {index} for the parse benchmark.
backend: local

training:
  entrypoint: train.py
  hyperparameters:
    C: 1.0
    max_iter: {max_iter}
  channels:
    train: data/train
  metric_definitions:
    - name: train_accuracy
      regex: "train_accuracy=([0-9.]+)"

evaluation:
  entrypoint: evaluate.py
  task: classification
  channel: test
  metrics: [f1, precision, recall, accuracy]
  primary_metric: f1
  gate:
    f1: {{min: 0.90, min_delta: -0.01}}
    recall: {{min: 0.90}}

deployment:
  approval: {approval}
  strategy: all_at_once
  smoke_test:
    payload_file: smoke_payload.json

schedule:
  retrain_cron: "{minute} 3 * * *"
  max_model_age_days: 30
"""


def model_names(count: int) -> list[tuple[str, str]]:
    """``(project, model)`` for ``count`` models, about ten per project."""
    return [(f"proj-{i // MODELS_PER_PROJECT:04d}", f"model-{i:05d}") for i in range(count)]


def write_mlops_configs(root: Path, count: int) -> list[Path]:
    """Write ``count`` mlops.yaml files (and their layered defaults) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "mlops-defaults.yaml").write_text(ORG_DEFAULTS)
    paths: list[Path] = []
    for index, (project, model) in enumerate(model_names(count)):
        folder = root / project / model
        folder.mkdir(parents=True, exist_ok=True)
        defaults = root / project / "mlops-defaults.yaml"
        if not defaults.exists():
            defaults.write_text(PROJECT_DEFAULTS.format(project=project))
        path = folder / "mlops.yaml"
        path.write_text(
            MODEL_CONFIG.format(
                project=project, model=model, index=index, minor=index % 7, max_iter=100 + index,
                approval="manual" if index % 2 == 0 else "auto", minute=index % 60,
            )
        )
        paths.append(path)
    return paths


def write_dagfactory_configs(mlops_root: Path, out: Path) -> int:
    """Write dag-factory YAML for the DAGs this project plans from the configs under ``mlops_root``."""
    from airflow_provider_mlops.config.loader import load_all
    from airflow_provider_mlops.factory.plan import plan_model
    from airflow_provider_mlops.factory.render import DEFAULT_ARGS, OPERATORS, START_DATE, render_dag

    loaded, errors = load_all([mlops_root])
    if errors:
        raise SystemExit(f"generated configs are invalid: {errors[0]}")
    out.mkdir(parents=True, exist_ok=True)
    retry_seconds = int(DEFAULT_ARGS["retry_delay"].total_seconds())
    (out / "defaults.yml").write_text(
        "default_args:\n"
        f"  start_date: {START_DATE.date().isoformat()}\n"
        f"  retries: {DEFAULT_ARGS['retries']}\n"
        f"  retry_delay_sec: {retry_seconds}\n"
        "catchup: false\n"
    )
    dags = 0
    for item in loaded:
        cfg = item.config
        document: dict[str, Any] = {}
        for spec in plan_model(item, str(mlops_root.resolve())):
            tasks = []
            for task in spec.tasks:
                operator = OPERATORS[task.operator]
                entry: dict[str, Any] = {"task_id": task.task_id, "operator": f"{operator.__module__}.{operator.__qualname__}"}
                entry.update(task.kwargs)
                if task.upstream:
                    entry["dependencies"] = list(task.upstream)
                tasks.append(entry)
            default_args: dict[str, Any] = {"owner": spec.owner}
            rendered = render_dag(spec)
            notifier = rendered.default_args.get("on_failure_callback")
            if notifier is not None:  # dag-factory builds a notifier from its class path and kwargs
                default_args["on_failure_callback"] = {
                    "callback": f"{type(notifier).__module__}.{type(notifier).__qualname__}",
                    "config_path": notifier.config_path,
                    "config_root": notifier.config_root,
                }
            document[spec.dag_id] = {
                "default_args": default_args,
                "is_paused_upon_creation": rendered.is_paused_upon_creation,
                "description": spec.description,
                "schedule": spec.schedule,
                "tags": list(spec.tags),
                "doc_md": spec.doc_md,
                "max_active_runs": spec.max_active_runs,
                "tasks": tasks,
            }
            dags += 1
        folder = out / cfg.project / cfg.model
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "dags.yml").write_text(yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False))
    return dags
