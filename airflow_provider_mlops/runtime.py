"""
What an operator needs at run time from a config: the MLOps home, the backends, the registry,
lineage, and validated DAG run conf. No Airflow import: the CLI uses it too.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_provider_mlops.backends import ComputeBackend, get_compute_backend
from airflow_provider_mlops.config.loader import LoadedConfig, load_config
from airflow_provider_mlops.exceptions import ConfigError, InputError, MissingFileError
from airflow_provider_mlops.naming import DAG_PREFIX, legacy_model_group, model_group
from airflow_provider_mlops.registry import ModelRegistry, get_registry
from airflow_provider_mlops.registry.releases import RELEASE_FILE
from airflow_provider_mlops.versioning import SEMVER_RE, SemVer

HOME_ENV = "MLOPS_HOME"


@lru_cache(maxsize=256)
def _cached_config(path: str, root: str | None, mtime_ns: int) -> LoadedConfig:
    return load_config(path, root=root)


def config_at(path: str, root: str | None = None) -> LoadedConfig:
    """Load a config at run time; cached until the file changes."""
    try:
        mtime_ns = Path(path).stat().st_mtime_ns
    except FileNotFoundError:
        raise MissingFileError(
            f"the model config {path} does not exist: was it unpublished or moved? The DAG was parsed from it; "
            "publish it again, or wait for the DAG to disappear"
        ) from None
    return _cached_config(path, root, mtime_ns)


def inside_model_folder(loaded: LoadedConfig, location: str, field: str) -> str:
    """
    ``location`` resolved from the config's folder, links followed; refused when it leaves that folder.

    Validation already refuses absolute paths and ``..``; this catches a link that points out
    (``data -> /etc``) when a task is about to read it. URIs are returned unchanged.

    :param field: the config field that names it, for the message.
    :raises ConfigError: the resolved path is outside the folder of mlops.yaml.
    """
    resolved = loaded.resolve(location)
    if "://" in resolved:
        return resolved
    folder = loaded.base_dir.resolve()
    if not Path(resolved).resolve().is_relative_to(folder):
        raise ConfigError(
            f"'{location}' resolves to {Path(resolved).resolve()}, outside the model's folder ({folder}); a task reads "
            "only files inside it", path=str(loaded.path), field=field, value=location,
            fix="replace the link with the file or folder itself, inside the folder of mlops.yaml",
        )
    return resolved


def mlops_home(loaded: LoadedConfig) -> Path:
    """``registry.home`` (relative to the config), else ``$MLOPS_HOME``, else ``~/.mlops``."""
    if loaded.config.registry.home:
        return Path(loaded.resolve(loaded.config.registry.home))
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".mlops")


def compute_backend(loaded: LoadedConfig, step: str = "training") -> ComputeBackend:
    cfg = loaded.config
    name = cfg.evaluation_backend if step == "evaluation" else cfg.training_backend
    kwargs = backend_kwargs(name, loaded, step)
    if name == "local" and cfg.local.runtime != "process":
        kwargs["runtime"] = cfg.local.runtime  # the container mode; the process mode keeps its plain kwargs
    return get_compute_backend(name, **kwargs)


def backend_kwargs(name: str, loaded: LoadedConfig, step: str = "training") -> dict[str, Any]:
    if name == "local":
        return {"home": str(mlops_home(loaded))}
    if name == "kubernetes":
        from airflow_provider_mlops.config.kubernetes import step_settings

        return {"settings": step_settings(loaded.config, step)}
    if name == "sagemaker":
        aws = loaded.config.aws
        return {"aws_conn_id": aws.conn_id, "region_name": aws.region, "role_arn": aws.role_arn,
                "artifacts_uri": aws.artifacts_uri, "poll_interval": aws.poll_interval_seconds}
    return {}


def registry_for(loaded: LoadedConfig) -> ModelRegistry:
    """
    The config's registry. A model still registered under the group name older releases gave
    it (``<project>-<model>``, see :func:`legacy_group`) is moved (local) or kept from being
    orphaned (SageMaker refuses to start a second group).
    """
    cfg = loaded.config
    name = cfg.registry_backend
    kwargs = backend_kwargs(name, loaded)
    legacy = legacy_group(loaded)
    if name == "sagemaker":
        deployment = cfg.deployment
        kwargs.update(content_types=list(deployment.content_types), response_types=list(deployment.response_types),
                      inference_instance_types=[deployment.instance_type],
                      tag_model_packages=cfg.aws.tag_model_packages,
                      legacy_group=legacy, owner_dag_prefix=owner_dag_prefix(loaded))
    registry = get_registry(name, **kwargs)
    adopt = getattr(registry, "adopt_legacy_group", None)
    if legacy and adopt is not None:
        adopt(group_of(loaded), legacy, owner_dag_prefix(loaded))
    return registry


def legacy_group(loaded: LoadedConfig) -> str | None:
    """``<project>-<model>``, the group name before the ``--`` join, when the config uses the derived name."""
    cfg = loaded.config
    if cfg.registry.model_package_group:
        return None
    return legacy_model_group(cfg.project, cfg.model)


def owner_dag_prefix(loaded: LoadedConfig) -> str:
    """The prefix of this model's DAG ids, which its registered versions' lineage records."""
    return f"{DAG_PREFIX}__{loaded.config.project}__{loaded.config.model}__"


def release_file(loaded: LoadedConfig) -> Path:
    """Where CI's publish job puts the model's last release: ``release.json`` beside mlops.yaml."""
    return loaded.path.parent / RELEASE_FILE


def group_of(loaded: LoadedConfig) -> str:
    """The model's registry group: ``registry.model_package_group``, else ``<project>--<model>``."""
    return loaded.config.registry.model_package_group or model_group(loaded.config.project, loaded.config.model)


def code_digest(source_dir: str | Path) -> str:
    """A content digest of the model's code (``*.py``, Dockerfile, requirements), for lineage."""
    digest = hashlib.sha256()
    root = Path(source_dir)
    for path in sorted(root.rglob("*")):
        if path.is_file() and (path.suffix in (".py", ".txt", ".toml", ".cfg") or path.name == "Dockerfile"):
            if any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts):
                continue
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return f"sha256:{digest.hexdigest()}"


def git_commit(source_dir: str | Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source_dir, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class _Conf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ReleaseConf(_Conf):
    """What every run conf may carry: the release (the trigger Lambda's event fields, docs/versions.md)."""

    version: Annotated[str, Field(pattern=SEMVER_RE.pattern)] | None = None
    image: Annotated[str, Field(max_length=512)] | None = None
    commit: Annotated[str, Field(pattern=r"^[0-9a-f]{7,40}$")] | None = None
    requested_by: Annotated[str, Field(max_length=128)] | None = None
    action: str | None = None
    project: str | None = None
    model: str | None = None


class TrainRunConf(_ReleaseConf):
    """The DAG run conf a train (or retrain-triggered) run accepts; the Lambda event's fields."""

    hyperparameters: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")], str | int | float | bool] | None = None


class DeployRunConf(_ReleaseConf):
    """
    The DAG run conf a deploy run accepts (docs/versions.md).

    ``model_version`` names a model version (``MAJOR.MINOR.<registry patch>``); ``version``,
    ``image`` and ``commit`` name a release (what CI tags, ``MAJOR.MINOR.<build number>``), and
    the run deploys the newest model version trained from it that passed its gate.
    """

    model_version: Annotated[str, Field(pattern=SEMVER_RE.pattern)] | None = None


class RetrainRunConf(_ReleaseConf):
    """The DAG run conf a retrain run accepts: CI's retrain job sends the last release."""


def parse_conf(model: type[_Conf], conf: dict[str, Any] | None, dag_id: str, loaded: LoadedConfig) -> Any:
    """Validate a DAG run conf; errors name the DAG, the field, the value and what is allowed."""
    try:
        parsed = model.model_validate(conf or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"'{'.'.join(map(str, e['loc']))}' = {e.get('input')!r}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(
            f"DAG run conf of {dag_id} is invalid: {problems}. Allowed keys: {', '.join(model.model_fields)}"
        ) from None
    cfg = loaded.config
    for key in ("project", "model"):
        given = getattr(parsed, key, None)
        if given is not None and given != getattr(cfg, key):
            raise InputError(f"DAG run conf of {dag_id}: {key} {given!r} does not match this DAG's {getattr(cfg, key)!r}")
    version = getattr(parsed, "version", None)
    if model is TrainRunConf and version is not None and SemVer.parse(version).series != cfg.version:
        raise InputError(
            f"DAG run conf of {dag_id}: version {version} is not in series {cfg.version} from {loaded.path}; "
            f"bump 'version:' in mlops.yaml or send a {cfg.version}.N version"
        )
    return parsed
