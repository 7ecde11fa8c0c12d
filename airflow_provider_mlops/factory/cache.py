"""
A cache of validated plans, so a config that has not changed costs no YAML parse and no pydantic.

Airflow re-parses the dags folder every few seconds, and most configs never change between two
parses. Each entry is keyed by a SHA-256 of everything its plan depends on:

- the text of the ``mlops.yaml`` and of every ``mlops-defaults.yaml`` layered under it, and
  their paths (the plan names the config's path and root);
- the source of the code that validates and plans (``config/``, ``factory/plan.py``,
  ``naming.py``, ``versioning.py``), the package, pydantic and Python versions.

So an edit to a config, to a defaults file or to the provider's code is a miss, never a stale
hit. Only valid configs are cached: a bad config is validated (and reported) on every parse.

One JSON file per loader (its config roots and shard), written atomically (temp file and
``os.replace``), so concurrent dag-processor children never read a torn file; the last writer
wins and a lost entry is only a miss next time. An unreadable cache is ignored, and a cache
that cannot be written is skipped: the cache can make a parse faster, never make it fail.

``$MLOPS_PARSE_CACHE_DIR`` sets the folder (default ``$AIRFLOW_HOME/.mlops-parse-cache``);
``off`` turns the cache off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from airflow_provider_mlops.factory.plan import DagSpec, TaskSpec

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "MLOPS_PARSE_CACHE_DIR"
CACHE_OFF = ("off", "0", "false", "no", "none")
FORMAT = 1

_PACKAGE = Path(__file__).resolve().parents[1]
#: The code a plan depends on; a change to any of it invalidates every entry.
_PLAN_SOURCES = ("config", "factory/plan.py", "naming.py", "versioning.py", "exceptions.py")


def cache_dir(env: Mapping[str, str] = os.environ) -> Path | None:
    """The cache folder, or ``None`` when the cache is off."""
    value = env.get(CACHE_DIR_ENV, "").strip()
    if value.lower() in CACHE_OFF:
        return None
    if value:
        return Path(value)
    home = env.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return Path(home) / ".mlops-parse-cache"


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A digest of the code and versions that turn a config into a plan."""
    from pydantic import VERSION as pydantic_version

    from airflow_provider_mlops import __version__

    digest = hashlib.sha256(f"{FORMAT}|{__version__}|{pydantic_version}|{sys.version_info[:2]}".encode())
    for name in _PLAN_SOURCES:
        target = _PACKAGE / name
        files = sorted(target.glob("*.py")) if target.is_dir() else [target]
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def entry_key(config_path: Path, root: Path, own_text: str, layers: Iterable[tuple[Path, str]]) -> str:
    """The cache key of one config: its path, root, text, its defaults' paths and texts, the code."""
    digest = hashlib.sha256(code_fingerprint().encode())
    for part in (str(config_path), str(root), own_text):
        digest.update(b"\x00")
        digest.update(part.encode())
    for path, text in layers:
        digest.update(b"\x01")
        digest.update(str(path).encode())
        digest.update(b"\x00")
        digest.update(text.encode())
    return digest.hexdigest()


def cache_file_name(kind: str, roots: Sequence[Path], shard: tuple[int, int] | None) -> str:
    """One file per loader: ``<kind>-<digest of roots and shard>.json``."""
    ident = "\x00".join(str(r) for r in roots) + f"\x00{shard}"
    return f"{kind}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.json"


# --- plans as JSON -----------------------------------------------------------------------------


def _is_tuple_field(field: dataclasses.Field[Any]) -> bool:
    return str(field.type).startswith(("tuple", "Tuple"))


@lru_cache(maxsize=64)
def _tuple_fields(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if _is_tuple_field(f))


def specs_to_json(specs: Sequence[DagSpec]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(spec) for spec in specs]


def _task_from_json(data: dict[str, Any]) -> TaskSpec:
    tuples = _tuple_fields(TaskSpec)
    fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
    return TaskSpec(**fields)


def specs_from_json(data: list[dict[str, Any]]) -> list[DagSpec]:
    tuples = _tuple_fields(DagSpec)
    specs = []
    for item in data:
        fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in item.items() if k != "tasks"}
        specs.append(DagSpec(**fields, tasks=tuple(_task_from_json(t) for t in item["tasks"])))
    return specs


def round_trips(specs: Sequence[DagSpec]) -> list[dict[str, Any]] | None:
    """The JSON form of ``specs`` if it decodes back to equal specs, else ``None`` (not cacheable)."""
    try:
        encoded = json.loads(json.dumps(specs_to_json(specs)))
        if specs_from_json(encoded) == list(specs):
            return encoded
    except (TypeError, ValueError):
        pass
    return None


# --- the cache file ----------------------------------------------------------------------------


class ParseCache:
    """
    Entries of one loader, read once per parse and written back only when they changed.

    :param path: the cache file, or ``None`` for no cache (every lookup misses, nothing is written).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, Any] = {}
        self._used: dict[str, Any] = {}
        self._dirty = False
        self.hits = 0  #: entries the caller could use, counted by the caller
        if path is not None:
            self._entries = self._read(path)

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("mlops: ignoring unreadable parse cache %s (%s)", path, exc)
            return {}
        if not isinstance(data, dict) or data.get("fingerprint") != code_fingerprint():
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> Any:
        """The entry stored under ``key``, or ``None``."""
        value = self._entries.get(key)
        if value is not None:
            self._used[key] = value
        return value

    def put(self, key: str, value: Any) -> None:
        self._used[key] = value
        self._dirty = True

    def save(self) -> None:
        """Write the entries used in this parse (so deleted configs drop out), if anything changed."""
        if self.path is None or not (self._dirty or len(self._used) != len(self._entries)):
            return
        payload = json.dumps({"fingerprint": code_fingerprint(), "entries": self._used}, separators=(",", ":"))
        if write_atomically(self.path, payload):
            self._entries, self._dirty = dict(self._used), False


def write_atomically(path: Path, payload: str) -> bool:
    """
    Write ``payload`` to ``path`` through a temp file and ``os.replace``, so no reader sees a
    torn file; log and return False when it cannot be written (parsing stays correct, only slower).
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        log.warning("mlops: could not write the parse cache %s (%s); parsing stays correct, only slower", path, exc)
        return False
    return True
