"""
A config snapshot: the one config a DAG run is pinned to.

The first task of a run that loads ``mlops.yaml`` takes a snapshot of it: the merged, validated
config (its defaults layers included, every default written out), where it was read from, the
content digest of the files it came from, and who pinned it when. The run's later tasks rebuild
the :class:`LoadedConfig` from the snapshot without reading any file, so a config published while
the run is in flight changes nothing in it. The snapshot is plain JSON (it travels as an XCom,
see ``operators/base.py``), and it carries a digest of its own content, so a damaged one is an
error, never a different config.

Pure: no Airflow import, like the rest of ``config/``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from airflow_provider_mlops.config.loader import LoadedConfig
from airflow_provider_mlops.config.models import MlopsConfig
from airflow_provider_mlops.exceptions import ConfigError

#: The layout of a snapshot; a snapshot of another layout (a provider up- or downgraded mid-run) is refused.
SNAPSHOT_FORMAT = 1
_KEYS = ("format", "path", "layers", "digest", "config", "config_sha256", "pinned_by", "pinned_at")


@dataclass(frozen=True)
class PinnedConfig:
    """
    A run's config, and who pinned it when.

    :param loaded: the config, as :func:`~airflow_provider_mlops.config.loader.load_config` returned it.
    :param pinned_by: the task of the run that read the file.
    :param pinned_at: when, ISO 8601 in UTC.
    """

    loaded: LoadedConfig
    pinned_by: str
    pinned_at: str

    def describe(self) -> str:
        """The one log line a task writes about its config: ``config <path> sha256:<12 hex> (pinned by ... at ...)``."""
        return f"config {self.loaded.path} {short_digest(self.loaded.digest)} (pinned by {self.pinned_by} at {self.pinned_at})"


def short_digest(digest: str) -> str:
    """``sha256:`` and the first 12 hex digits of a config's content digest, as logs show it."""
    return f"sha256:{digest.removeprefix('sha256:')[:12]}"


def _content_sha256(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def take_snapshot(pinned: PinnedConfig) -> dict[str, Any]:
    """
    The JSON-able snapshot of ``pinned``: enough to rebuild it without reading a file.

    :return: ``{"format", "path", "layers", "digest", "config", "config_sha256", "pinned_by", "pinned_at"}``.
    """
    loaded = pinned.loaded
    config = loaded.config.model_dump(mode="json")
    return {
        "format": SNAPSHOT_FORMAT,
        "path": str(loaded.path),
        "layers": [str(layer) for layer in loaded.layers],
        "digest": loaded.digest,
        "config": config,
        "config_sha256": _content_sha256(config),
        "pinned_by": pinned.pinned_by,
        "pinned_at": pinned.pinned_at,
    }


def restore_snapshot(snapshot: Any, *, source: str, fix: str) -> PinnedConfig:
    """
    Rebuild the pinned config from a snapshot :func:`take_snapshot` made; no file is read.

    :param snapshot: the snapshot, as it came back from storage.
    :param source: where it came from, for messages (``XCom 'mlops_config' of task train in run ...``).
    :param fix: what to do when it is unusable, for messages.
    :raises ConfigError: it is not a snapshot of this format, it was changed since it was taken, or
        its config no longer validates (the schema changed under a run in flight).
    """
    path = str(snapshot.get("path")) if isinstance(snapshot, Mapping) else None
    if not isinstance(snapshot, Mapping) or sorted(snapshot) != sorted(_KEYS):
        got = sorted(snapshot) if isinstance(snapshot, Mapping) else type(snapshot).__name__
        raise ConfigError(f"the config snapshot in {source} is not one; it must have the keys {list(_KEYS)}",
                          path=path, value=got, fix=fix)
    if snapshot["format"] != SNAPSHOT_FORMAT:
        raise ConfigError(f"the config snapshot in {source} has format {snapshot['format']!r}; this provider reads "
                          f"format {SNAPSHOT_FORMAT} (was the provider changed while the run was in flight?)",
                          path=path, fix=fix)
    config = snapshot["config"]
    if not isinstance(config, Mapping) or _content_sha256(config) != snapshot["config_sha256"]:
        raise ConfigError(f"the config snapshot in {source} was changed after it was taken (its content no longer "
                          "matches its config_sha256)", path=path, fix=fix)
    try:
        validated = MlopsConfig.model_validate(config)
    except ValidationError as exc:
        problems = "; ".join(f"'{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors())
        raise ConfigError(f"the config snapshot in {source} no longer validates ({problems}); was the provider "
                          "changed while the run was in flight?", path=path, fix=fix) from None
    loaded = LoadedConfig(Path(snapshot["path"]), validated, str(snapshot["digest"]),
                          tuple(Path(layer) for layer in snapshot["layers"]))
    return PinnedConfig(loaded, str(snapshot["pinned_by"]), str(snapshot["pinned_at"]))
