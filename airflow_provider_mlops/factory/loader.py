"""
``load_dags(globals())``: the one call the dags folder makes.

Validate, plan, render, each phase timed in the log. A config unchanged since the last parse
skips validation and planning (:mod:`.cache`), and ``shard=(i, n)`` splits the models over
several loader files (:mod:`.shards`). When a task starts, Airflow's parsing context names its
DAG, and only that model's config is read and only that DAG built (:mod:`.task_start`). One bad
config costs only that model's
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

from airflow_provider_mlops.config.isolation import ResourceClaims, claim_resources, resource_names
from airflow_provider_mlops.config.loader import (
    DEFAULTS_FILENAME,
    DefaultsCache,
    config_roots,
    discover_configs,
    duplicate_model_error,
    load_or_collect,
)
from airflow_provider_mlops.exceptions import ConfigError, ConfigErrors
from airflow_provider_mlops.factory.cache import (
    ParseCache,
    cache_dir,
    cache_file_name,
    entry_key,
    round_trips,
    specs_from_json,
)
from airflow_provider_mlops.factory.plan import DagSpec, plan_model
from airflow_provider_mlops.factory.shards import check_shard, shard_of
from airflow_provider_mlops.factory.task_start import (
    PARSING_CONTEXT,
    ParsingContext,
    context_dag_id,
    only_dag,
    plan_task_dag,
    write_index,
)

log = logging.getLogger(__name__)

STRICT_ENV = "MLOPS_STRICT"
DEFAULT_CONFIG_DIR = "mlops"


@dataclass
class LoadReport:
    dag_ids: list[str] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    models: int = 0
    cached: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    #: The one DAG built, when Airflow's parsing context named it (a task start).
    for_dag_id: str | None = None


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
    shard: tuple[int, int] | None = None,
    dag_id: str | ParsingContext | None = PARSING_CONTEXT,
) -> LoadReport:
    """
    Build every model's DAGs into ``globals_dict``, or only the one DAG a task start needs.

    :param globals_dict: the DAG file's ``globals()``.
    :param config_path: folders to search for ``mlops.yaml`` (os.pathsep-separated); default
        ``$MLOPS_CONFIG_PATH``, else ``mlops/`` beside the DAG file.
    :param strict: raise on the first bad config (default: ``$MLOPS_STRICT``).
    :param shard: ``(index, count)``: build only the models of that shard (see :mod:`.shards`).
    :param dag_id: build only this DAG, from its model's config alone (see :mod:`.task_start`);
        ``None`` builds every DAG. Default: the DAG named by Airflow's parsing context, which is
        set while a task starts and unset in the dag-processor.
    """
    if strict is None:
        strict = os.environ.get(STRICT_ENV, "").lower() in ("1", "true", "yes")
    report = LoadReport()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # building many small objects: collection passes only cost time here
    try:
        started = time.perf_counter()
        roots = _roots(globals_dict, config_path)
        report.for_dag_id = context_dag_id() if isinstance(dag_id, ParsingContext) else dag_id
        resolved = [r.resolve() for r in roots]
        found = plan_task_dag(report.for_dag_id, resolved, shard) if report.for_dag_id is not None else None
        if found is not None:
            plans, report.errors = found
        else:  # the dag-processor's full parse, or a task start that could not find its config alone
            cache = _open_cache("plans", roots, shard)
            plans, report.errors = plan_all(roots, shard=shard, cache=cache)
            report.cached = cache.hits
            write_index(resolved, shard, plans)
        if report.for_dag_id is not None:
            plans = only_dag(plans, report.for_dag_id)
        if strict and report.errors:
            raise report.errors[0] if len(report.errors) == 1 else ConfigErrors(report.errors)
        report.timings["plan"] = time.perf_counter() - started

        started = time.perf_counter()
        from airflow_provider_mlops.factory.render import airflow_dag_defaults, render_dag

        dag_defaults = airflow_dag_defaults()
        for path, specs in plans:
            try:
                dags = [render_dag(spec, dag_defaults) for spec in specs]
            except Exception as exc:  # one model's render bug must not hide the others
                if strict:
                    raise
                report.errors.append(ConfigError(f"could not build its DAGs: {type(exc).__name__}: {exc}", path=str(path)))
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
        "mlops: %d models, %d DAGs, %d bad configs; validate+plan %.3fs (%d cached), render %.3fs",
        report.models, len(report.dag_ids), len(report.errors),
        report.timings.get("plan", 0), report.cached, report.timings.get("render", 0),
    )
    return report


def _open_cache(kind: str, roots: list[Path], shard: tuple[int, int] | None) -> ParseCache:
    folder = cache_dir()
    resolved = [r.resolve() for r in roots]
    return ParseCache(folder / cache_file_name(kind, resolved, shard) if folder is not None else None)


def _layers(folder: str, root: str, defaults: DefaultsCache, memo: dict[str, tuple[Any, ...]]) -> tuple[Any, ...]:
    """
    The defaults files layered under ``folder``, root first: what ``defaults_layers`` finds for
    an already-resolved path, memoised per folder so sibling models share their parents' work.
    """
    found = memo.get(folder)
    if found is None:
        parent = os.path.dirname(folder)
        above = () if folder == root or parent == folder else _layers(parent, root, defaults, memo)
        own = defaults.get(Path(folder, DEFAULTS_FILENAME))
        found = memo[folder] = (*above, own) if own is not None else above
    return found


def _entry_key(config_path: Path, root: Path, defaults: DefaultsCache, memo: dict[str, tuple[Any, ...]]) -> str | None:
    """The cache key of a config, or ``None`` when its files cannot be read (the miss path reports why)."""
    try:
        with open(config_path, encoding="utf-8") as handle:
            own_text = handle.read()
        layers = _layers(os.path.dirname(config_path), str(root), defaults, memo)
    except (ConfigError, OSError, UnicodeDecodeError):
        return None
    return entry_key(config_path, root, own_text, ((src.path, src.text) for src in layers))


def _decode(entry: Any, plans: bool) -> tuple[tuple[str, str], list[list[str]], list[DagSpec]] | None:
    """A cache entry as ``((project, model), resource names, specs)``; ``None`` (a miss) when absent or malformed."""
    if entry is None:
        return None
    try:
        model = (str(entry["model"][0]), str(entry["model"][1]))
        resources = [[str(part) for part in item] for item in entry["resources"]]
        return model, resources, specs_from_json(entry["dags"]) if plans else []
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def plan_all(
    roots: list[Path], *, shard: tuple[int, int] | None = None, cache: ParseCache | None = None, plans: bool = True
) -> tuple[list[tuple[Path, list[DagSpec]]], list[ConfigError]]:
    """
    Validate and plan every config under ``roots`` (of one shard); a bad config costs only itself.

    A config whose cache key is in ``cache`` skips YAML parsing, pydantic and planning. With
    ``plans=False`` only validity is checked and cached, and no plans are returned.
    """
    index, count = check_shard(shard) if shard is not None else (0, 1)
    cache = cache if cache is not None else ParseCache(None)
    defaults = DefaultsCache()
    memo: dict[str, tuple[Any, ...]] = {}
    planned: list[tuple[Path, list[DagSpec]]] = []
    errors: list[ConfigError] = []
    seen: dict[tuple[str, str], Path] = {}
    claims: ResourceClaims = {}
    for config_path, root in discover_configs(roots):
        if count > 1 and shard_of(config_path, root, count) != index:
            continue
        key = _entry_key(config_path, root, defaults, memo)
        hit = _decode(cache.get(key), plans) if key is not None else None
        specs: list[DagSpec] = []
        if hit is not None:
            model, resources, specs = hit
            cache.hits += 1
        else:
            loaded = load_or_collect(config_path, root, defaults, errors)
            if loaded is None:
                continue
            model = (loaded.config.project, loaded.config.model)
            resources = [list(r) for r in resource_names(loaded.config)]
            if plans:
                specs = plan_model(loaded, str(root))
                encoded = round_trips(specs)
                if key is not None and encoded is not None:
                    cache.put(key, {"model": model, "resources": resources, "dags": encoded})
            elif key is not None:
                cache.put(key, {"model": model, "resources": resources})
        if model in seen:
            errors.append(duplicate_model_error(config_path, model, seen[model]))
            continue
        # Two models never share a registry group or endpoint (within one shard; `mlops validate` checks all).
        if collision := claim_resources(claims, config_path, model, resources):
            errors.append(collision)
            continue
        seen[model] = config_path
        if plans:
            planned.append((config_path, specs))
    cache.save()
    return planned, errors


def report_config_errors(
    globals_dict: MutableMapping[str, Any],
    *,
    config_path: str | os.PathLike[str] | None = None,
    shard: tuple[int, int] | None = None,
) -> None:
    """
    Raise every config error as one exception: Airflow records it as this file's import error.

    Call it from a DAG file that defines no DAGs (``dags/mlops_config_errors.py``), beside the
    loader file: Airflow marks the DAGs of a file with an import error stale, so the errors must
    not live in the file that holds the good models' DAGs. Configs known valid (by content hash)
    are not validated again.

    While Airflow's parsing context names a DAG (a task start, or ``airflow dags test`` parsing the
    whole folder) it does nothing: this file defines no DAG a task could need, and the loader
    logs the errors of the config it reads.
    """
    if (wanted := context_dag_id()) is not None:
        log.debug("mlops: not validating every config while Airflow parses for %s only", wanted)
        return
    roots = _roots(globals_dict, config_path)
    _, errors = plan_all(roots, shard=shard, cache=_open_cache("valid", roots, shard), plans=False)
    if errors:
        raise ConfigErrors(errors)
