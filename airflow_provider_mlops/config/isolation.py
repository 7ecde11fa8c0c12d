"""
Isolation between models: what a config may name, and which names no two configs may share.

- A model's registry group and default endpoint are ``<project>--<model>``; names never contain
  ``--``, so the map is one-to-one (:mod:`airflow_provider_mlops.naming`).
- A config names only its own resources: ``registry.model_package_group`` and
  ``deployment.endpoint_name`` stay in the model's namespace, ``registry.home`` inside the
  model's folder, unless the organisation's defaults set ``organisation.allow_resource_overrides``.
- Every path the Airflow worker reads is relative to the folder of mlops.yaml and stays in it
  (:mod:`.references` says who reads what).
- No two loaded configs share a registry group or an endpoint (:func:`claim_resources`).

Pure: no Airflow, boto3 or network.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_mlops.exceptions import ConfigError
from airflow_provider_mlops.naming import MAX_RESOURCE_NAME, in_own_namespace, model_group

if TYPE_CHECKING:
    from airflow_provider_mlops.config.models import MlopsConfig

#: Who holds each shared resource name: ``(what, name)`` → the config and its project/model.
ResourceClaims = dict[tuple[str, str], tuple[Path, tuple[str, str]]]


def isolation_problem(config: MlopsConfig) -> str | None:
    """The first way ``config`` reaches past its own resources and folder, as ``field: problem``."""
    # references imports the config loader, which imports this module: imported when first used.
    from airflow_provider_mlops.config.references import config_references, escapes

    own = model_group(config.project, config.model)
    if (not config.registry.model_package_group or not config.deployment.endpoint_name) and len(own) > MAX_RESOURCE_NAME:
        return (f"model: project and model name the registry group and endpoint '{own}', {len(own)} characters; "
                f"at most {MAX_RESOURCE_NAME}: shorten them")
    if not config.organisation.allow_resource_overrides:
        for field, name in (("registry.model_package_group", config.registry.model_package_group),
                            ("deployment.endpoint_name", config.deployment.endpoint_name)):
            if name and not in_own_namespace(config.project, config.model, name):
                return (f"{field}: '{name}' is outside this model's namespace: a config names only its own "
                        f"resources, '{own}' or '{own}--<suffix>'. Remove it, or ask the platform team to set "
                        "organisation.allow_resource_overrides: true in the organisation's mlops-defaults.yaml")
        home = config.registry.home
        if home is not None and ("://" in home or escapes(home)):
            return (f"registry.home: '{home}' is outside the model's folder: the registry home is shared by every "
                    "model under $MLOPS_HOME; a config may only name a folder inside its own (relative to "
                    "mlops.yaml), unless the organisation's mlops-defaults.yaml sets "
                    "organisation.allow_resource_overrides: true")
    for ref in config_references(config):
        if ref.on_worker and not ref.remote and escapes(ref.path):
            what = "is an absolute path" if ref.path.startswith("/") else "is outside the model's folder"
            return (f"{ref.field}: '{ref.value or ref.location}' {what}; the Airflow worker reads it, so it must be "
                    "a path relative to the folder of mlops.yaml that stays inside it (no absolute path, no '..' "
                    "out of it), or a URI (s3://) where the backend reads one")
    return None


def resource_names(config: MlopsConfig) -> list[tuple[str, str, str]]:
    """The shared resources a model's config maps to, as ``(what, the field that can set it, name)``."""
    return [
        ("registry group", "registry.model_package_group", config.registry_group),
        ("endpoint", "deployment.endpoint_name", config.endpoint_name),
    ]


def claim_resources(
    claims: ResourceClaims, config_path: Path, model: tuple[str, str], names: Iterable[Sequence[str]]
) -> ConfigError | None:
    """
    Record that ``model`` (from ``config_path``) uses ``names``; the error when another config already does.

    Two models must never share a registry group or an endpoint: one would read, gate against
    and deploy over the other's versions. Nothing is claimed when any name is taken.
    """
    from airflow_provider_mlops.config.loader import _line_of, _read

    wanted = [tuple(n) for n in names]
    for what, key, name in wanted:
        holder = claims.get((what, name))
        if holder is not None and holder[1] != model:
            first, other = holder
            source = _read(config_path)
            line = _line_of(source, tuple(key.split("."))) or _line_of(source, ("model",))
            return ConfigError(
                f"the {what} '{name}' of {model[0]}/{model[1]} is already the {what} of {other[0]}/{other[1]} "
                f"({first}); two models never share one",
                path=str(config_path), line=line, field=key, value=name,
                fix=f"remove the override so each model gets its own '<project>--<model>', or pick another {key}",
            )
    for what, _, name in wanted:
        claims[(what, name)] = (config_path, model)
    return None
