"""
Bounded config parsing: a config too large or nested too deep is one clear error naming its file
and line, in `mlops validate` and in the DAG loader, and every other model's DAGs still load.
Before the bound, a 2 KB `tags:` nested 1,000 deep took every model's DAGs down (RecursionError),
and 100,000 deep crashed the process (SIGSEGV in the C composer).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_mlops.config.loader import MAX_CONFIG_BYTES, MAX_NESTING, load_config
from airflow_provider_mlops.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[2]
HEAD = 'project: demo\nmodel: deep\nversion: "1.0"\n'


def flow_nested(depth: int) -> str:
    return HEAD + "tags: " + "[" * depth + "]" * depth + "\n"


def block_nested(depth: int) -> str:
    lines = [HEAD + "training:", "  hyperparameters:"]
    lines += [f"{'  ' * (level + 2)}k{level}:" for level in range(depth)]
    return "\n".join(lines) + " 1\n"


def test_a_deep_flow_collection_is_one_error_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "mlops.yaml"
    config.write_text(flow_nested(1_000))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert (caught.value.path, caught.value.line) == (str(config), 4)
    assert f"more than {MAX_NESTING} levels" in str(caught.value)


def test_deep_block_nesting_names_the_line_where_it_passes_the_bound(tmp_path: Path) -> None:
    config = tmp_path / "mlops.yaml"
    config.write_text(block_nested(MAX_NESTING + 5))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.line is not None and caught.value.line > 4


def test_an_oversized_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    config = tmp_path / "mlops.yaml"
    config.write_text(HEAD + "description: " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="at most"):
        load_config(config)


def test_mlops_validate_reports_100000_levels_without_a_crash(tmp_path: Path) -> None:
    config = tmp_path / "mlops.yaml"
    config.write_text(flow_nested(100_000))  # 200 KB: under the size bound, far over the depth bound
    result = subprocess.run([sys.executable, "-m", "airflow_provider_mlops.cli", "validate", str(config)],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert f"{config}:4:" in result.stderr and "Traceback" not in result.stderr


def test_the_dag_loader_keeps_every_other_model(tmp_path: Path) -> None:
    from airflow_provider_mlops.factory.loader import load_dags

    root = tmp_path / "configs"
    for name in ("breast-cancer", "diabetes"):
        shutil.copytree(REPO / "examples" / name, root / "demo" / name)
    (root / "evil" / "deep").mkdir(parents=True)
    (root / "evil" / "deep" / "mlops.yaml").write_text(flow_nested(50_000))
    found: dict[str, object] = {}
    report = load_dags(found, config_path=str(root), strict=False)
    assert len(report.dag_ids) == 6, report.dag_ids
    assert [e.path for e in report.errors] == [str(root / "evil" / "deep" / "mlops.yaml")]
