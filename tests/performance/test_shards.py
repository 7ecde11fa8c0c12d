"""Sharding splits the models over loader files: each model in exactly one shard, no DAG lost."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from configs import write_mlops_configs  # noqa: E402

from airflow_provider_mlops.factory import load_dags  # noqa: E402
from airflow_provider_mlops.factory.cache import CACHE_DIR_ENV  # noqa: E402
from airflow_provider_mlops.factory.shards import check_shard, write_shard_files  # noqa: E402

MODELS = 25


@pytest.fixture
def configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "parse-cache"))
    root = tmp_path / "configs"
    write_mlops_configs(root, MODELS)
    return root


def dag_ids(configs: Path, shard: tuple[int, int] | None) -> list[str]:
    report = load_dags({"__file__": str(configs / "x.py")}, config_path=str(configs), shard=shard)
    assert not report.errors
    return report.dag_ids


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_every_model_lands_in_exactly_one_shard(configs: Path, count: int) -> None:
    everything = dag_ids(configs, None)
    assert len(everything) == 3 * MODELS
    seen: list[str] = []
    for index in range(count):
        first = dag_ids(configs, (index, count))
        assert dag_ids(configs, (index, count)) == first, "a shard's second (cached) parse builds the same DAGs"
        seen.extend(first)
    assert sorted(seen) == sorted(everything), "a model is missing from every shard, or in two"
    assert len(seen) == len(set(seen))


def test_shards_are_balanced_enough(configs: Path) -> None:
    sizes = [len(dag_ids(configs, (i, 3))) // 3 for i in range(3)]
    assert sum(sizes) == MODELS and min(sizes) > 0


@pytest.mark.parametrize("shard", [(0, 0), (2, 2), (-1, 3), (1.0, 2)])
def test_bad_shard_is_refused(shard: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="0 <= index < count"):
        check_shard(shard)


def test_write_shard_files(tmp_path: Path, configs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(configs))
    dags = tmp_path / "dags"
    written = write_shard_files(dags, 4)
    assert [p.name for p in written] == [f"mlops_dags_{i}.py" for i in range(4)]
    (dags / "mlops_dags_keep.py").write_text("# someone else's file\n")
    assert len(write_shard_files(dags, 2)) == 2
    assert sorted(p.name for p in dags.glob("*.py")) == ["mlops_dags_0.py", "mlops_dags_1.py", "mlops_dags_keep.py"]
    total = []
    for path in sorted(dags.glob("mlops_dags_[0-9].py")):
        text = path.read_text()
        assert "import airflow.providers.standard.operators.hitl" in text  # pre-imported by the dag processor
        namespace = {"__file__": str(path)}
        exec(compile(text, str(path), "exec"), namespace)
        total.extend(k for k in namespace if k.startswith("mlops__"))
    assert len(total) == len(set(total)) == 3 * MODELS


def test_error_shards_report_every_bad_config_once(tmp_path: Path, configs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_mlops.exceptions import ConfigError, ConfigErrors

    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(configs))
    bad = [configs / "proj-0000" / f"model-0000{i}" / "mlops.yaml" for i in (1, 4, 7)] + [
        configs / "proj-0002" / "model-00023" / "mlops.yaml"
    ]
    for path in bad:
        path.write_text(path.read_text().replace("approval: manual", "approval: never").replace("approval: auto", "approval: never"))
    dags = tmp_path / "dags"
    written = write_shard_files(dags, 2, error_files=3)
    assert sorted(p.name for p in written) == sorted(
        ["mlops_dags_0.py", "mlops_dags_1.py", "mlops_config_errors_0.py", "mlops_config_errors_1.py", "mlops_config_errors_2.py"]
    )
    reported: list[str] = []
    for path in sorted(dags.glob("mlops_config_errors_*.py")):
        for _ in range(2):  # the second parse is served by the valid-config cache
            try:
                exec(compile(path.read_text(), str(path), "exec"), {"__file__": str(path)})
            except ConfigError as exc:
                errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
                found = sorted(str(e.path) for e in errors)
            else:
                found = []
        reported.extend(found)
    assert sorted(reported) == sorted(str(p) for p in bad)
    assert len(write_shard_files(dags, 2)) == 2, "back to one error file: the error shards are removed"
    assert not list(dags.glob("mlops_config_errors_*.py"))
