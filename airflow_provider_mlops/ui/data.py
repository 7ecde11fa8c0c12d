"""
What the MLOps views show, as JSON-ready dicts: the models found the way the DAG loader finds
them, each model's versions, the series of each metric across versions, and a comparison of
two versions. Pure functions of the registry's records; no Airflow import.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from airflow_provider_mlops.config.loader import LoadedConfig, config_roots, load_all
from airflow_provider_mlops.exceptions import ConfigError, InputError
from airflow_provider_mlops.factory.loader import DEFAULT_CONFIG_DIR
from airflow_provider_mlops.naming import DAG_KINDS, dag_id
from airflow_provider_mlops.registry.base import PENDING, ModelVersion

#: The DAGs every model has; a user must be able to read all of them to see the model.
MODEL_DAG_KINDS = ("train", "deploy")
#: Recorded beside the metrics, but not a number to chart.
NON_SCALAR_METRICS = ("confusion_matrix",)


def model_roots(dags_folder: str | os.PathLike[str] | None) -> list[Path]:
    """Where the DAG loader looks: ``$MLOPS_CONFIG_PATH``, else ``mlops/`` in the dags folder."""
    return config_roots(default=Path(dags_folder) / DEFAULT_CONFIG_DIR if dags_folder else None)


def find_models(roots: Iterable[str | os.PathLike[str]]) -> tuple[list[LoadedConfig], list[ConfigError]]:
    """Every valid model config under ``roots`` (sorted by project/model); bad ones come back as errors."""
    loaded, errors = load_all(roots)
    return sorted(loaded, key=lambda item: (item.config.project, item.config.model)), errors


def model_ref(loaded: LoadedConfig) -> str:
    return f"{loaded.config.project}/{loaded.config.model}"


def model_dag_ids(loaded: LoadedConfig) -> list[str]:
    """The DAG ids whose read access shows the model (see :data:`MODEL_DAG_KINDS`)."""
    return [dag_id(loaded.config.project, loaded.config.model, kind) for kind in MODEL_DAG_KINDS]


def model_of_dag(models: Sequence[LoadedConfig], the_dag_id: str) -> LoadedConfig | None:
    """The model whose DAG ``the_dag_id`` is (train, deploy or retrain), or None."""
    for loaded in models:
        if the_dag_id in {dag_id(loaded.config.project, loaded.config.model, kind) for kind in DAG_KINDS}:
            return loaded
    return None


def model_by_ref(models: Sequence[LoadedConfig], project: str, model: str) -> LoadedConfig:
    for loaded in models:
        if (loaded.config.project, loaded.config.model) == (project, model):
            return loaded
    known = ", ".join(model_ref(m) for m in models) or "none"
    raise InputError(f"no model {project}/{model} in the configured registries (known: {known}); "
                     "publish its mlops.yaml under MLOPS_CONFIG_PATH")


def primary_metric(loaded: LoadedConfig) -> str:
    evaluation = loaded.config.evaluation
    return evaluation.primary_metric or (evaluation.metrics[0] if evaluation.metrics else "")


def ordered(versions: Iterable[ModelVersion]) -> list[ModelVersion]:
    """Oldest first, in the registry's own order (its package version), not by string."""
    return sorted(versions, key=lambda v: v.package_version)


def find_version(versions: Sequence[ModelVersion], semver: str, ref: str) -> ModelVersion:
    for version in versions:
        if version.semver == semver:
            return version
    known = ", ".join(v.semver for v in versions) or "none"
    raise InputError(f"model {ref} has no version {semver!r} (registered: {known}); pick one of those")


def gate_word(version: ModelVersion) -> str:
    """``pass``, ``FAIL``, or ``-`` when no gate was recorded."""
    if not version.gate:
        return "-"
    return "pass" if version.gate.get("passed") else "FAIL"


def scalar_metrics(version: ModelVersion) -> dict[str, float]:
    """The version's numeric metrics (the confusion matrix and other structures left out)."""
    return {
        name: float(value) for name, value in version.metrics.items()
        if name not in NON_SCALAR_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(float(value))
    }


def lineage_summary(version: ModelVersion) -> dict[str, Any]:
    lineage = version.lineage
    return {key: lineage.get(key) for key in ("image", "image_version", "commit", "run_id", "training_job", "data")
            if lineage.get(key) not in (None, "", {}, [])}


def version_row(version: ModelVersion, primary: str) -> dict[str, Any]:
    """One row of the versions table."""
    approval = version.approval
    return {
        "semver": version.semver,
        "status": version.status,
        "stage": version.stage or "-",
        "primary_metric": scalar_metrics(version).get(primary),
        "gate": gate_word(version),
        "approver": approval.get("by"),
        "reason": approval.get("reason"),
        "created": version.created_at,
        "lineage": lineage_summary(version),
    }


def model_summary(loaded: LoadedConfig, versions: Sequence[ModelVersion]) -> dict[str, Any]:
    """One line of the Models page: production, latest, last gate, last deploy, pending approvals."""
    versions = ordered(versions)
    production = next((v for v in reversed(versions) if v.stage == "production"), None)
    gated = [v for v in versions if v.gate]
    deployed = [v for v in versions if v.deployment]
    last_deploy = max(deployed, key=lambda v: str(v.deployment.get("at") or "")) if deployed else None
    return {
        "ref": model_ref(loaded),
        "project": loaded.config.project,
        "model": loaded.config.model,
        "description": loaded.config.description,
        "owner": loaded.config.owner,
        "registry": loaded.config.registry_backend,
        "dag_ids": {kind: dag_id(loaded.config.project, loaded.config.model, kind) for kind in MODEL_DAG_KINDS},
        "versions": len(versions),
        "production": production.semver if production else None,
        "latest": versions[-1].semver if versions else None,
        "last_gate": {"version": gated[-1].semver, "result": gate_word(gated[-1])} if gated else None,
        "last_deploy": ({"version": last_deploy.semver, "at": last_deploy.deployment.get("at"),
                         "endpoint": last_deploy.deployment.get("endpoint")} if last_deploy else None),
        "pending_approvals": [v.semver for v in versions if v.status == PENDING],
    }


def metric_series(versions: Sequence[ModelVersion]) -> dict[str, list[dict[str, Any]]]:
    """``metric -> [{"semver", "value", "production"}]``, oldest first; a version without the metric is left out."""
    series: dict[str, list[dict[str, Any]]] = {}
    for version in ordered(versions):
        for name, value in scalar_metrics(version).items():
            series.setdefault(name, []).append(
                {"semver": version.semver, "value": value, "production": version.stage == "production"}
            )
    return dict(sorted(series.items()))


def _delta(a: Any, b: Any) -> float | None:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return round(float(b) - float(a), 6)
    return None


def compare_versions(a: ModelVersion, b: ModelVersion) -> dict[str, Any]:
    """
    ``b`` against ``a``: every metric with its delta (b - a), the hyperparameters that differ,
    the data each was trained on (locations and fingerprints where recorded) and the image.
    """
    metrics_a, metrics_b = scalar_metrics(a), scalar_metrics(b)
    metric_rows = [
        {"metric": name, "a": metrics_a.get(name), "b": metrics_b.get(name), "delta": _delta(metrics_a.get(name), metrics_b.get(name))}
        for name in sorted(set(metrics_a) | set(metrics_b))
    ]
    hps_a = a.lineage.get("hyperparameters") or {}
    hps_b = b.lineage.get("hyperparameters") or {}
    hp_rows = [
        {"name": name, "a": hps_a.get(name), "b": hps_b.get(name), "changed": str(hps_a.get(name)) != str(hps_b.get(name))}
        for name in sorted(set(hps_a) | set(hps_b))
    ]
    same = ("image", "image_version", "commit", "data", "config_digest")
    return {
        "a": a.semver,
        "b": b.semver,
        "metrics": metric_rows,
        "hyperparameters": hp_rows,
        "lineage": [{"field": key, "a": a.lineage.get(key), "b": b.lineage.get(key),
                     "changed": a.lineage.get(key) != b.lineage.get(key)} for key in same],
        "status": {"a": a.status, "b": b.status},
    }


def confusion_matrix(version: ModelVersion) -> dict[str, Any] | None:
    """``{"labels", "matrix"}`` when the evaluation recorded one, else None."""
    matrix = version.metrics.get("confusion_matrix")
    if not isinstance(matrix, dict) or not isinstance(matrix.get("matrix"), list) or not matrix["matrix"]:
        return None
    values = [[float(cell) for cell in row] for row in matrix["matrix"]]
    labels = [str(label) for label in (matrix.get("labels") or range(len(values)))]
    return {"labels": labels, "matrix": values}
