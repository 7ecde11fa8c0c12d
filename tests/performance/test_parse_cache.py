"""
The parse-speed work must not change a single DAG: the cached path builds exactly what the
uncached path builds, edits invalidate, bad configs are never cached, and the benchmark's floor
builds the same DAGs as the factory (else the benchmark compares different work).
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from configs import write_mlops_configs  # noqa: E402

from airflow_provider_mlops.exceptions import ConfigError, ConfigErrors  # noqa: E402
from airflow_provider_mlops.factory import load_dags, report_config_errors  # noqa: E402
from airflow_provider_mlops.factory.cache import CACHE_DIR_ENV, entry_key  # noqa: E402

MODELS = 12


def serialized(globals_dict: dict[str, Any]) -> dict[str, Any]:
    """Every DAG in ``globals_dict`` as the dag processor serializes it (what the scheduler sees)."""
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    return {
        name: json.loads(json.dumps(DagSerialization.to_dict(dag), sort_keys=True, default=str))
        for name, dag in globals_dict.items()
        if isinstance(dag, DAG)
    }


def build(configs: Path, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    namespace: dict[str, Any] = {"__file__": str(configs.parent / "mlops_dags.py")}
    report = load_dags(namespace, config_path=str(configs), **kwargs)
    return namespace, report


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    root = tmp_path / "configs"
    write_mlops_configs(root, MODELS)
    return root


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "parse-cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(folder))
    return folder


def test_cached_path_builds_identical_dags(configs: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, "off")
    uncached, report = build(configs)
    assert report.cached == 0 and not list(cache_dir.parent.glob("parse-cache/*"))

    monkeypatch.setenv(CACHE_DIR_ENV, str(cache_dir))
    cold, cold_report = build(configs)
    warm, warm_report = build(configs)
    assert cold_report.cached == 0
    assert warm_report.cached == MODELS, "the second parse must be served from the cache"
    assert len(warm_report.dag_ids) == 3 * MODELS and not warm_report.errors

    expected = serialized(uncached)
    assert len(expected) == 3 * MODELS
    assert serialized(cold) == expected
    assert serialized(warm) == expected


def test_example_configs_identical_through_the_cache(cache_dir: Path) -> None:
    examples = REPO / "examples"
    first, _ = build(examples)
    second, report = build(examples)
    assert report.cached == report.models > 0
    assert serialized(second) == serialized(first)


def test_edits_invalidate(configs: Path, cache_dir: Path) -> None:
    build(configs)
    defaults = configs / "proj-0000" / "mlops-defaults.yaml"
    defaults.write_text(defaults.read_text().replace("owner: team-proj-0000", "owner: someone-else"))
    config = configs / "proj-0001" / "model-00010" / "mlops.yaml"
    config.write_text(config.read_text().replace("approval: manual", "approval: auto"))

    namespace, report = build(configs)
    # proj-0000 holds 10 models (their defaults changed) and model-00010 changed itself.
    assert report.cached == MODELS - 11
    assert namespace["mlops__proj-0000__model-00003__train"].default_args["owner"] == "someone-else"
    assert type(namespace["mlops__proj-0001__model-00010__deploy"].get_task("approve")).__name__ == "MlopsAutoApproveOperator"


def test_key_covers_path_root_texts_and_layers(tmp_path: Path) -> None:
    base = entry_key(tmp_path / "a" / "mlops.yaml", tmp_path, "x: 1", [(tmp_path / "d.yaml", "y: 2")])
    assert base != entry_key(tmp_path / "b" / "mlops.yaml", tmp_path, "x: 1", [(tmp_path / "d.yaml", "y: 2")])
    assert base != entry_key(tmp_path / "a" / "mlops.yaml", tmp_path / "a", "x: 1", [(tmp_path / "d.yaml", "y: 2")])
    assert base != entry_key(tmp_path / "a" / "mlops.yaml", tmp_path, "x: 2", [(tmp_path / "d.yaml", "y: 2")])
    assert base != entry_key(tmp_path / "a" / "mlops.yaml", tmp_path, "x: 1", [(tmp_path / "d.yaml", "y: 3")])
    assert base != entry_key(tmp_path / "a" / "mlops.yaml", tmp_path, "x: 1", [])


def test_bad_config_is_never_cached(configs: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = configs / "proj-0000" / "model-00002" / "mlops.yaml"
    bad.write_text(bad.read_text().replace("approval: manual", "approval: sometimes"))
    for _ in range(2):
        namespace, report = build(configs)
        assert report.models == MODELS - 1 and report.cached in (0, MODELS - 1)
        assert [e.field for e in report.errors] == ["deployment.approval"]
        assert "mlops__proj-0000__model-00002__train" not in namespace
        with pytest.raises(ConfigError) as raised:
            report_config_errors({"__file__": str(configs / "x.py")}, config_path=str(configs))
        errors = raised.value.errors if isinstance(raised.value, ConfigErrors) else [raised.value]
        assert [e.field for e in errors] == ["deployment.approval"]
    with pytest.raises(ConfigError):
        build(configs, strict=True)


def test_duplicate_model_found_on_cache_hits(configs: Path, cache_dir: Path) -> None:
    build(configs)
    copy = configs / "proj-0000" / "zz-copy"
    copy.mkdir()
    (copy / "mlops.yaml").write_text((configs / "proj-0000" / "model-00001" / "mlops.yaml").read_text())
    _, report = build(configs)
    assert report.models == MODELS and [e.field for e in report.errors] == ["model"]


def test_unreadable_cache_is_ignored(configs: Path, cache_dir: Path) -> None:
    expected = serialized(build(configs)[0])
    for path in cache_dir.glob("*.json"):
        path.write_text("{not json")
    namespace, report = build(configs)
    assert report.cached == 0 and serialized(namespace) == expected
    assert build(configs)[1].cached == MODELS, "the cache is rewritten after a bad read"


def test_malformed_cache_entries_are_misses(configs: Path, cache_dir: Path) -> None:
    expected = serialized(build(configs)[0])
    for path in cache_dir.glob("plans-*.json"):
        data = json.loads(path.read_text())
        for number, key in enumerate(data["entries"]):
            data["entries"][key] = [{"dags": None}, {"model": "x"}, {"model": ["p", "m"], "dags": [{"bad": 1}]}][number % 3]
        path.write_text(json.dumps(data))
    namespace, report = build(configs)
    assert report.cached == 0 and not report.errors
    assert serialized(namespace) == expected


def test_floor_builds_the_same_dags(configs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark is only fair while its hand-written floor builds exactly the factory's DAGs."""
    monkeypatch.setenv(CACHE_DIR_ENV, "off")
    ours = serialized(build(configs)[0])
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(configs))
    floor = serialized(runpy.run_path(str(REPO / "benchmarks" / "dagfiles" / "floor_dags.py")))
    assert sorted(floor) == sorted(ours)
    for dag_id, data in ours.items():
        differs = _diff(floor[dag_id], data)
        assert not differs, f"{dag_id} differs at {differs[:5]}: update benchmarks/dagfiles/floor_dags.py to match the factory"


#: Where a DAG was defined: the floor's file, not the factory's loader; everything else must match.
_WHERE = {"fileloc", "relative_fileloc"}


def _diff(left: Any, right: Any, path: str = "") -> list[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        found = []
        for key in sorted(set(left) | set(right)):
            if key not in _WHERE:
                found += _diff(left.get(key), right.get(key), f"{path}.{key}")
        return found
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [d for i, (a, b) in enumerate(zip(left, right, strict=True)) for d in _diff(a, b, f"{path}[{i}]")]
    return [] if left == right else [f"{path}: {left!r} != {right!r}"[:300]]
