"""
Read ``mlops.yaml`` files, layer their defaults, validate them, and explain every error.

Layered defaults: every folder from the search root down to the config's own folder may hold
an ``mlops-defaults.yaml``. They merge root first, so the nearest one wins, and the model's own
``mlops.yaml`` wins over all of them. Mappings merge key by key; lists and scalars replace.

Errors name the file and line that hold the bad value (a defaults file, when the value came
from one), the dotted field, the bad value, what is allowed, and the fix.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from airflow_provider_mlops.config.isolation import ResourceClaims, claim_resources, resource_names
from airflow_provider_mlops.config.models import MlopsConfig
from airflow_provider_mlops.exceptions import ConfigError, ConfigErrors
from airflow_provider_mlops.naming import NAME_RULE

CONFIG_FILENAME = "mlops.yaml"
DEFAULTS_FILENAME = "mlops-defaults.yaml"
CONFIG_PATH_ENV = "MLOPS_CONFIG_PATH"
#: The top-level key only the organisation-level defaults file may set.
ORGANISATION_KEY = "organisation"
#: A real mlops.yaml is a few KB and a few levels deep; anything far past these is not one, and
#: unbounded nesting would overflow a recursive YAML composer (RecursionError, or a SIGSEGV in
#: libyaml's) and take every model's DAGs down with it.
MAX_CONFIG_BYTES = 256 * 1024
MAX_NESTING = 32

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe YAML loading that rejects duplicate keys and keeps ``version`` as written (1.10 != 1.1)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in mapping:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}: each key may appear once", key_node.start_mark
                )
            if key == "version" and isinstance(value_node, yaml.ScalarNode):
                mapping[key] = value_node.value
            else:
                mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config, with where it came from."""

    path: Path
    config: MlopsConfig
    digest: str
    layers: tuple[Path, ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, location: str) -> str:
        """Resolve a path from the config (relative to its folder); URIs are returned unchanged."""
        if "://" in location:
            return location
        return str((self.base_dir / location).resolve())


@dataclass
class _Source:
    path: Path
    text: str
    data: Any


@dataclass
class DefaultsCache:
    """Parsed defaults files, read once per load, however many configs share them."""

    sources: dict[Path, _Source | None] = field(default_factory=dict)

    def get(self, path: Path) -> _Source | None:
        if path not in self.sources:
            self.sources[path] = _read(path) if path.is_file() else None
        return self.sources[path]


def _check_size(size: int, path: Path) -> None:
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"the file is {size} bytes; a config is at most {MAX_CONFIG_BYTES} bytes",
            path=str(path), fix="keep data and code out of mlops.yaml: reference files (channels, entrypoints) instead",
        )


def check_bounds(text: str, path: Path) -> None:
    """
    Refuse a file over :data:`MAX_CONFIG_BYTES` or nested deeper than :data:`MAX_NESTING`, before
    anything builds a tree from it: YAML's event stream is read by a state machine, not by
    recursion, so any depth is counted safely. Syntax errors are left to the real load, which
    reports them with their line.
    """
    _check_size(len(text.encode("utf-8")), path)
    depth = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_NESTING:
                    raise ConfigError(
                        f"the YAML is nested more than {MAX_NESTING} levels deep here; mlops.yaml needs a handful",
                        path=str(path), line=event.start_mark.line + 1 if event.start_mark else None,
                        fix="flatten the structure at that line (a mapping or list inside another is a level)",
                    )
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return


def _read(path: Path) -> _Source:
    try:
        _check_size(path.stat().st_size, path)  # before reading: a huge file is never loaded
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file ({exc})", path=str(path), fix="check the file exists and is UTF-8") from None
    check_bounds(text, path)
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        # An unclosed bracket or quote is detected lines later: point at where it was opened.
        mark = exc.context_mark or exc.problem_mark
        raise ConfigError(
            f"invalid YAML: {exc.problem or exc.context}",
            path=str(path),
            line=mark.line + 1 if mark else None,
            fix="correct the YAML syntax at that line (indentation, quoting, duplicate keys)",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=str(path), fix="correct the YAML syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raise ConfigError(
            f"the top level must be a mapping of keys, not a {type(data).__name__}",
            path=str(path),
            line=node.start_mark.line + 1 if node is not None else 1,
            fix="start the file with keys such as 'project:', 'model:' and 'version:'",
        )
    return _Source(path, text, data)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` onto ``base``: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _search_root(path: Path) -> Path:
    for parent in path.parents:
        if (parent / ".git").exists():
            return parent
    return Path(path.anchor)


def defaults_layers(config_path: Path, root: Path | None) -> list[Path]:
    """The defaults files that apply to ``config_path``, farthest (root) first."""
    root = (root or _search_root(config_path)).resolve()
    folder = config_path.parent.resolve()
    chain: list[Path] = []
    while True:
        chain.append(folder / DEFAULTS_FILENAME)
        if folder == root or folder.parent == folder:
            break
        folder = folder.parent
    return list(reversed(chain))


def load_config(
    path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None, cache: DefaultsCache | None = None
) -> LoadedConfig:
    """Load and validate one ``mlops.yaml`` with its layered defaults; raise :class:`ConfigError`."""
    config_path = Path(path).resolve()
    cache = cache or DefaultsCache()
    own = _read(config_path)
    layers = [src for p in defaults_layers(config_path, Path(root) if root else None) if (src := cache.get(p))]
    _check_organisation_keys(own, layers, (Path(root) if root else _search_root(config_path)).resolve())
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.data)
    merged = deep_merge(merged, own.data)
    try:
        config = MlopsConfig.model_validate(merged)
    except ValidationError as exc:
        errors = [_explain(err, own, layers) for err in _merge_union_errors(exc.errors())]
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors) from None
    digest = hashlib.sha256("\x00".join([own.text, *(s.text for s in layers)]).encode()).hexdigest()
    return LoadedConfig(config_path, config, digest, tuple(s.path for s in layers))


def _check_organisation_keys(own: _Source, layers: list[_Source], root: Path) -> None:
    """``organisation:`` decides for every model, so only the defaults file at the config root may set it."""
    for source in (own, *layers):
        if ORGANISATION_KEY in source.data and (source is own or source.path.parent != root):
            raise ConfigError(
                f"'{ORGANISATION_KEY}' may only be set in the organisation's {DEFAULTS_FILENAME} at the root of the "
                f"config folders ({root / DEFAULTS_FILENAME}), not by a model or a team",
                path=str(source.path), line=_key_line(source, ORGANISATION_KEY), field=ORGANISATION_KEY,
                fix=f"remove it here; ask the platform team to set it in {root / DEFAULTS_FILENAME}",
            )


def _key_line(source: _Source, key: str) -> int | None:
    node = _key_node(_compose(source), (key,))
    return node.start_mark.line + 1 if node is not None else None


def discover_configs(roots: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, Path]]:
    """Yield ``(config_path, root)`` for every ``mlops.yaml`` under ``roots``, sorted, hidden folders skipped."""
    for root in roots:
        root_path = Path(root).resolve()
        if root_path.is_file():
            yield root_path, root_path.parent
            continue
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(root_path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
            if CONFIG_FILENAME in filenames:
                found.append(Path(dirpath) / CONFIG_FILENAME)
        for config_path in sorted(found):
            yield config_path, root_path


def config_roots(env: Mapping[str, str] = os.environ, default: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders to search for configs: ``$MLOPS_CONFIG_PATH`` (os.pathsep-separated), else ``default``."""
    value = env.get(CONFIG_PATH_ENV, "")
    roots = [Path(p) for p in value.split(os.pathsep) if p.strip()]
    if not roots and default is not None:
        roots = [Path(default)]
    return roots


def load_or_collect(
    config_path: Path, root: Path, cache: DefaultsCache, errors: list[ConfigError]
) -> LoadedConfig | None:
    """Load one config; on failure add its errors to ``errors`` and return None."""
    try:
        return load_config(config_path, root=root, cache=cache)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    except ConfigError as exc:
        errors.append(exc)
    return None


def load_all(roots: Iterable[str | os.PathLike[str]]) -> tuple[list[LoadedConfig], list[ConfigError]]:
    """Load every config under ``roots``; a bad config costs only itself."""
    cache = DefaultsCache()
    loaded: list[LoadedConfig] = []
    errors: list[ConfigError] = []
    seen: dict[tuple[str, str], Path] = {}
    claims: ResourceClaims = {}
    for config_path, root in discover_configs(roots):
        item = load_or_collect(config_path, root, cache, errors)
        if item is None:
            continue
        key = (item.config.project, item.config.model)
        if key in seen:
            errors.append(duplicate_model_error(config_path, key, seen[key]))
            continue
        if collision := claim_resources(claims, config_path, key, resource_names(item.config)):
            errors.append(collision)
            continue
        seen[key] = config_path
        loaded.append(item)
    return loaded, errors


def field_location(loaded: LoadedConfig, dotted: str) -> tuple[str, int | None]:
    """
    The file and line that set ``dotted`` (``training.channels.train``) in ``loaded``.

    The model's own file first, then the nearest defaults file; the model's file and no line
    when the field keeps its default.
    """
    loc = tuple(dotted.split("."))
    for path in (loaded.path, *reversed(loaded.layers)):
        try:
            line = _line_of(_read(path), loc)
        except ConfigError:
            continue
        if line is not None:
            return str(path), line
    return str(loaded.path), None


def duplicate_model_error(config_path: Path, key: tuple[str, str], first: Path) -> ConfigError:
    """The error for a config whose project/model pair ``first`` already defines."""
    return ConfigError(
        f"project/model {key[0]}/{key[1]} is already defined by {first}",
        path=str(config_path),
        line=_line_of(_read(config_path), ("model",)),
        field="model",
        value=key[1],
        fix="give each model a unique project/model pair",
    )


# --- explaining validation errors -------------------------------------------------------------


def _node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[yaml.Node | None, int]:
    """Walk ``loc`` into a composed YAML tree; return the deepest node found and how deep it got."""
    depth = 0
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        else:
            child = None
        if child is None:
            break
        node, depth = child, depth + 1
    return node, depth


def _key_node(root: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    parent, depth = _node_at(root, loc[:-1])
    if depth != len(loc) - 1 or not isinstance(parent, yaml.MappingNode):
        return None
    return next((k for k, _ in parent.value if getattr(k, "value", None) == str(loc[-1])), None)


def _compose(source: _Source) -> yaml.Node | None:
    try:
        return yaml.compose(source.text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def _line_of(source: _Source, loc: tuple[Any, ...]) -> int | None:
    node, depth = _node_at(_compose(source), loc)
    if node is None or depth < len(loc):
        return None
    return node.start_mark.line + 1


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema allows in the mapping that holds ``loc[-1]``."""
    model: Any = MlopsConfig
    for part in loc[:-1]:
        if isinstance(model, type) and issubclass(model, BaseModel) and isinstance(part, str):
            info = model.model_fields.get(part)
            if info is None:
                return []
            model = _unwrap(info.annotation)
        else:
            model = _unwrap(model, container=True)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(model.model_fields)
    return []


def _unwrap(annotation: Any, container: bool = False) -> Any:
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    if container and args:
        return _unwrap(args[-1])
    for arg in args or [annotation]:
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        inner = _unwrap(arg) if getattr(arg, "__args__", None) else None
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


_UNION_TAGS = {"str", "int", "float", "bool"}
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_-]+)*): (.*)$", re.S)


def _merge_union_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """One error per field: a value that matches no member of ``str | int | float | bool``."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for error in errors:
        loc = tuple(error["loc"])
        if loc and loc[-1] in _UNION_TAGS:
            key = loc[:-1]
            entry = merged.setdefault(key, {**error, "loc": key, "type": "union", "tags": []})
            entry["tags"].append(loc[-1])
            entry["msg"] = f"must be one of: {', '.join(entry['tags'])}"
        else:
            merged[loc] = dict(error)
    return list(merged.values())


def _explain(error: Mapping[str, Any], own: _Source, layers: list[_Source]) -> ConfigError:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    # Model-level rules name the field they are about as a "field: " prefix.
    if error["type"] == "value_error" and (match := _FIELD_PREFIX.match(message)):
        loc = loc + tuple(match[1].split("."))
        message = match[2]
    dotted = ".".join(str(p) for p in loc) or "<top level>"
    kind = error["type"]
    value = error.get("input")
    # The file that holds the value: the model's own file, else the nearest defaults file that sets it.
    holder, line = own, None
    for candidate in [own, *reversed(layers)]:
        found = _line_of(candidate, loc) if loc else None
        if found is not None:
            holder, line = candidate, found
            break
    if line is None:
        # Point at the nearest parent that exists in the model's own file.
        root = _compose(own)
        node, depth = _node_at(root, loc)
        line = node.start_mark.line + 1 if node is not None and depth > 0 else 1
    if kind == "extra_forbidden":
        key_node = _key_node(_compose(holder), loc)
        if key_node is not None:
            line = key_node.start_mark.line + 1
        allowed = _allowed_keys(loc)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        fix = f"did you mean '{close[0]}'?" if close else "remove the key"
        return ConfigError(
            f"unknown key '{loc[-1]}'; allowed keys here: {', '.join(allowed) or 'none'}",
            path=str(holder.path), line=line, field=dotted, fix=fix,
        )
    if kind == "missing":
        return ConfigError(
            "is required but missing",
            path=str(holder.path), line=line, field=dotted,
            fix=f"add '{loc[-1]}:' to {own.path.name} or to an {DEFAULTS_FILENAME} above it",
        )
    if isinstance(value, (dict, list)):
        value = None if kind == "value_error" else f"<{type(value).__name__}>"
    fix = _metric_fix(message) or "set a value that matches the rule above"
    if kind == "string_pattern_mismatch" and loc and loc[-1] in ("project", "model"):
        message, fix = f"must be {NAME_RULE}", f"rename it, for example {_slug(value)!r}"
    return ConfigError(message, path=str(holder.path), line=line, field=dotted, value=value, fix=fix)


_NOT_A_METRIC = re.compile(r"'(?P<name>[^']*)' is not one of metrics (?P<metrics>\[[^\]]*\])")


def _metric_fix(message: str) -> str | None:
    """``did you mean 'f1'?`` for a gate (or primary) metric that is not one of ``evaluation.metrics``."""
    import ast

    match = _NOT_A_METRIC.search(message)
    if match is None:
        return None
    try:
        metrics = [str(m) for m in ast.literal_eval(match["metrics"])]
    except (ValueError, SyntaxError):
        return None
    close = difflib.get_close_matches(match["name"], metrics, n=1, cutoff=0.5)
    if close:
        return f"did you mean '{close[0]}'? (evaluation.metrics: {', '.join(metrics)})"
    return f"use one of evaluation.metrics ({', '.join(metrics)}), or add '{match['name']}' to evaluation.metrics"


def _slug(value: object) -> str:
    text = "".join(c if c.isalnum() else "-" for c in str(value).lower()).strip("-")
    return "-".join(filter(None, text.split("-")))[:32] or "my-model"
