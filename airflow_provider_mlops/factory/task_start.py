"""
Task start: build only the DAG the task belongs to, from that one model's config.

A worker starting a task parses the file that defines the task's DAG, with Airflow's parsing
context set to the DAG it wants (``airflow.sdk.get_parsing_context().dag_id``; the Task SDK
puts it in ``$_AIRFLOW_PARSING_CONTEXT_DAG_ID`` around the parse). Without this module, a task
of one of 5,000 models would validate, plan and render 15,000 DAGs to run.

The model's config is found without listing the config folders:

1. the **model index** (``index-<digest>.json`` in the parse-cache folder, one per loader file):
   project/model → config file and root, written by every full parse (the dag-processor's);
2. the layout CI publishes: ``<root>/<project>/<model>/mlops.yaml``.

A found file counts only once it validates as that very project/model, in a folder the full
parse walks, and it yields a DAG only in the loader file of its shard (a shard file never
defines another shard's DAGs). When neither finds it (no index on this machine, a config outside
the layout, a config moved since the last full parse), :func:`plan_task_dag` returns ``None``
and the loader plans every config (with the parse cache) and renders only the named DAG:
correct, slower, and logged with the reason.

Only the one config and its defaults layers are read, and validated (about 5 ms in a fresh
process): the loader's plans cache holds every model (about 20 MB at 5,000 models), and reading
it would cost more than it saves here. Checks across models (a project/model pair or an
endpoint defined twice) are the full parse's: it keeps a DAG it refuses out of Airflow, so no
task of it starts.
"""

from __future__ import annotations

import enum
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from airflow_provider_mlops.config.loader import CONFIG_FILENAME, load_config
from airflow_provider_mlops.exceptions import ConfigError
from airflow_provider_mlops.factory.cache import cache_dir, cache_file_name, write_atomically
from airflow_provider_mlops.factory.plan import DagSpec, plan_model
from airflow_provider_mlops.factory.shards import check_shard, shard_of
from airflow_provider_mlops.naming import DAG_ID_RE

log = logging.getLogger(__name__)

INDEX_FORMAT = 1

Plans = list[tuple[Path, list[DagSpec]]]


class ParsingContext(enum.Enum):
    """The default of ``load_dags(dag_id=...)``: the DAG Airflow's parsing context names, if any."""

    FROM_AIRFLOW = "the DAG named by Airflow's parsing context"


PARSING_CONTEXT = ParsingContext.FROM_AIRFLOW


def context_dag_id() -> str | None:
    """The DAG Airflow is parsing this file for (a task start), or ``None`` (a full parse)."""
    try:
        from airflow.sdk import get_parsing_context
    except ImportError:  # outside Airflow (the CLI, the Lambda): always a full parse
        return None
    return get_parsing_context().dag_id


def index_path(roots: Sequence[Path], shard: tuple[int, int] | None) -> Path | None:
    """The model index of the loader with these (resolved) roots and shard; ``None`` when the cache is off."""
    folder = cache_dir()
    return folder / cache_file_name("index", roots, shard) if folder is not None else None


def _root_of(config_path: Path, roots: Sequence[Path]) -> int | None:
    """The position in ``roots`` of the root the full parse found ``config_path`` under (the first)."""
    text = str(config_path)
    for position, root in enumerate(roots):
        if text == str(root) or text.startswith(str(root) + os.sep):
            return position
    return None


def write_index(roots: Sequence[Path], shard: tuple[int, int] | None, plans: Plans) -> None:
    """
    Record where each planned model's config is, after a full parse; rewritten only when it changed.

    :param roots: the loader's config roots, resolved.
    :param shard: the loader's shard.
    :param plans: what the full parse planned: ``(config path, specs)`` per model that builds DAGs.
    """
    path = index_path(roots, shard)
    if path is None:
        return
    models: dict[str, list[object]] = {}
    for config_path, specs in plans:
        match = DAG_ID_RE.fullmatch(specs[0].dag_id) if specs else None
        position = _root_of(config_path, roots)
        if match is not None and position is not None:
            models[f"{match['project']}/{match['model']}"] = [position, str(config_path)]
    payload = json.dumps(
        {"format": INDEX_FORMAT, "roots": [str(r) for r in roots], "models": models},
        sort_keys=True,
        separators=(",", ":"),
    )
    try:
        if path.read_text(encoding="utf-8") == payload:
            return
    except (OSError, UnicodeDecodeError):
        pass
    write_atomically(path, payload)


def _from_index(
    project: str, model: str, roots: Sequence[Path], shard: tuple[int, int] | None, reasons: list[str]
) -> tuple[Path, Path] | None:
    path = index_path(roots, shard)
    if path is None:
        reasons.append("the parse cache is off, so there is no model index")
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if data["format"] != INDEX_FORMAT or data["roots"] != [str(r) for r in roots]:
            reasons.append(f"the model index {path} was written for other config roots or by another release")
            return None
        entry = data["models"].get(f"{project}/{model}")
    except FileNotFoundError:
        reasons.append(f"no model index at {path} yet (a full parse writes it)")
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reasons.append(f"the model index {path} is unreadable ({type(exc).__name__}: {exc})")
        return None
    if entry is None:
        reasons.append(f"the model index {path} does not list {project}/{model}")
        return None
    try:
        position, config_path = int(entry[0]), Path(entry[1])
        root = roots[position]
    except (IndexError, TypeError, ValueError):
        reasons.append(f"the model index {path} has a malformed entry for {project}/{model}")
        return None
    return config_path, root.parent if root.is_file() else root


def _by_layout(
    project: str, model: str, roots: Sequence[Path], reasons: list[str]
) -> list[tuple[Path, Path]]:
    """``<root>/<project>/<model>/mlops.yaml`` in each root (a root that is a file is that config)."""
    found = []
    for root in roots:
        if root.is_file():
            found.append((root, root.parent))
        elif (candidate := root / project / model / CONFIG_FILENAME).is_file():
            found.append((candidate, root))
    if not found:
        reasons.append(f"no <root>/{project}/{model}/{CONFIG_FILENAME} under {', '.join(map(str, roots))}")
    return found


def _walked(config_path: Path, root: Path) -> bool:
    """
    Whether the full parse finds ``config_path`` under ``root``: it skips hidden and ``__``
    folders and does not follow a linked folder.
    """
    if _root_of(config_path, [root]) is None:
        return False
    folders = config_path.parent.relative_to(root).parts
    if any(part.startswith((".", "__")) for part in folders):
        return False
    return os.path.realpath(config_path.parent) == str(config_path.parent)


def plan_task_dag(
    dag_id: str, roots: Sequence[Path], shard: tuple[int, int] | None
) -> tuple[Plans, list[ConfigError]] | None:
    """
    Plan only the model that ``dag_id`` belongs to; ``None`` when its config cannot be found this way.

    :param dag_id: the DAG named by Airflow's parsing context.
    :param roots: the loader's config roots, resolved.
    :param shard: the loader's shard.
    :return: ``(plans, errors)``: the model's plan, or nothing when ``dag_id`` is not an mlops DAG
        or the model belongs to another shard; ``None`` when the caller must parse everything.
    """
    match = DAG_ID_RE.fullmatch(dag_id)
    if match is None:
        log.info("mlops: Airflow asked for %s, which is not a DAG this loader builds", dag_id)
        return [], []
    project, model = match["project"], match["model"]
    own_shard, count = check_shard(shard) if shard is not None else (0, 1)
    reasons: list[str] = []
    indexed = _from_index(project, model, roots, shard, reasons)
    candidates = [(*indexed, "the model index")] if indexed is not None else []
    for found in _by_layout(project, model, roots, reasons):
        if found != indexed:
            candidates.append((*found, "the <root>/<project>/<model> layout"))
    for config_path, root, how in candidates:
        if not (config_path.is_file() and _walked(config_path, root)):
            reasons.append(
                f"{how} names {config_path}, which is gone or outside the folders the full parse walks"
            )
            continue
        try:
            loaded = load_config(config_path, root=root)
        except ConfigError as exc:
            reasons.append(f"{how} names {config_path}, which is invalid ({exc})")
            continue
        if (loaded.config.project, loaded.config.model) != (project, model):
            reasons.append(
                f"{how} names {config_path}, which defines {loaded.config.project}/{loaded.config.model}"
            )
            continue
        if count > 1 and shard_of(config_path, root, count) != own_shard:
            log.info("mlops: %s belongs to another shard than %d of %d: no DAG here", dag_id, own_shard, count)
            return [], []
        log.info("mlops: task start for %s: planning only %s, found by %s", dag_id, config_path, how)
        return [(config_path, plan_model(loaded, str(root)))], []
    log.warning(
        "mlops: task start for %s parses every config (slower, still correct), because %s. To avoid it, publish configs "
        "as <root>/<project>/<model>/%s, or let workers read the dag-processor's parse cache ($MLOPS_PARSE_CACHE_DIR)",
        dag_id,
        "; ".join(reasons),
        CONFIG_FILENAME,
    )
    return None


def only_dag(plans: Plans, dag_id: str) -> Plans:
    """``plans`` cut down to the one DAG ``dag_id`` (the task path renders nothing else)."""
    kept = [(path, [spec for spec in specs if spec.dag_id == dag_id]) for path, specs in plans]
    return [(path, specs) for path, specs in kept if specs]
