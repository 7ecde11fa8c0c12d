"""
``load_dags(globals())``: the one call the dags folder makes.

Validate, plan, render, each phase timed in the log. One bad config costs only that model's
DAGs: the loader logs it and moves on, and the companion file ``mlops_config_errors.py`` (which
holds no DAGs) raises the errors, so Airflow shows them as an import error naming the file,
line and field, without marking the good models' DAGs stale. Strict mode (``strict=True`` or
``MLOPS_STRICT=1``) fails on the first bad config instead, for CI.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_mlops.config.loader import config_roots, load_all
from airflow_provider_mlops.exceptions import ConfigError, ConfigErrors
from airflow_provider_mlops.factory.plan import plan_model

log = logging.getLogger(__name__)

STRICT_ENV = "MLOPS_STRICT"
DEFAULT_CONFIG_DIR = "mlops"


@dataclass
class LoadReport:
    dag_ids: list[str] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    models: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _roots(globals_dict: MutableMapping[str, Any], config_path: str | os.PathLike[str] | None) -> list[Path]:
    if config_path is not None:
        return [Path(p) for p in str(config_path).split(os.pathsep) if p]
    here = Path(globals_dict.get("__file__", ".")).resolve().parent
    return config_roots(default=here / DEFAULT_CONFIG_DIR)


def load_dags(
    globals_dict: MutableMapping[str, Any],
    *,
    config_path: str | os.PathLike[str] | None = None,
    strict: bool | None = None,
) -> LoadReport:
    """
    Build every model's DAGs into ``globals_dict``.

    :param globals_dict: the DAG file's ``globals()``.
    :param config_path: folders to search for ``mlops.yaml`` (os.pathsep-separated); default
        ``$MLOPS_CONFIG_PATH``, else ``mlops/`` beside the DAG file.
    :param strict: raise on the first bad config (default: ``$MLOPS_STRICT``).
    """
    if strict is None:
        strict = os.environ.get(STRICT_ENV, "").lower() in ("1", "true", "yes")
    report = LoadReport()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # building many small objects: collection passes only cost time here
    try:
        started = time.perf_counter()
        loaded, report.errors = load_all(_roots(globals_dict, config_path))
        if strict and report.errors:
            raise report.errors[0] if len(report.errors) == 1 else ConfigErrors(report.errors)
        report.timings["validate"] = time.perf_counter() - started

        started = time.perf_counter()
        from airflow_provider_mlops.factory.render import render_dag

        plans = []
        for item in loaded:
            root = _root_of(item.path, _roots(globals_dict, config_path))
            plans.append((item, plan_model(item, root)))
        report.timings["plan"] = time.perf_counter() - started

        started = time.perf_counter()
        for item, specs in plans:
            try:
                dags = [render_dag(spec) for spec in specs]
            except Exception as exc:  # one model's render bug must not hide the others
                if strict:
                    raise
                report.errors.append(ConfigError(f"could not build its DAGs: {type(exc).__name__}: {exc}", path=str(item.path)))
                continue
            for dag in dags:
                globals_dict[dag.dag_id] = dag
                report.dag_ids.append(dag.dag_id)
            report.models += 1
        report.timings["render"] = time.perf_counter() - started
    finally:
        if gc_was_enabled:
            gc.enable()
    for error in report.errors:
        log.error("mlops config skipped: %s", error)
    log.info(
        "mlops: %d models, %d DAGs, %d bad configs; validate %.3fs, plan %.3fs, render %.3fs",
        report.models, len(report.dag_ids), len(report.errors),
        report.timings.get("validate", 0), report.timings.get("plan", 0), report.timings.get("render", 0),
    )
    return report


def _root_of(path: Path, roots: list[Path]) -> str | None:
    for root in roots:
        resolved = root.resolve()
        if resolved == path or resolved in path.parents:
            return str(resolved if resolved.is_dir() else resolved.parent)
    return None


def report_config_errors(globals_dict: MutableMapping[str, Any], *, config_path: str | os.PathLike[str] | None = None) -> None:
    """
    Raise every config error as one exception: Airflow records it as this file's import error.

    Call it from a DAG file that defines no DAGs (``dags/mlops_config_errors.py``), beside the
    loader file: Airflow marks the DAGs of a file with an import error stale, so the errors must
    not live in the file that holds the good models' DAGs.
    """
    _, errors = load_all(_roots(globals_dict, config_path))
    if errors:
        raise ConfigErrors(errors)
