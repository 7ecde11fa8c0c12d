"""Every example config loads into a real Airflow DagBag; bad configs surface as import errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_mlops.config.loader import load_all
from airflow_provider_mlops.naming import DAG_KINDS, dag_id

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
BAD = REPO / "tests" / "fixtures" / "bad_configs"


def _bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS))


def test_every_example_config_loads_with_zero_import_errors(airflow_db: Path) -> None:
    bag = _bag()
    assert bag.import_errors == {}
    configs, errors = load_all([REPO / "examples"])
    assert errors == [] and configs
    expected = {dag_id(c.config.project, c.config.model, k) for c in configs for k in DAG_KINDS}
    assert expected <= set(bag.dag_ids)
    train = bag.get_dag(dag_id("demo", "breast-cancer", "train"))
    assert [t.task_id for t in train.topological_sort()][:4] == ["train", "evaluate", "gate", "register"]
    assert train.get_task("register").downstream_task_ids == {"notify", "gate_passed"}
    assert train.max_active_runs == 1  # one training per model at a time
    deploy = bag.get_dag(dag_id("demo", "breast-cancer", "deploy"))
    assert type(deploy.get_task("approve")).__name__ == "MlopsApprovalOperator"
    assert type(bag.get_dag(dag_id("demo", "diabetes", "deploy")).get_task("approve")).__name__ == "MlopsAutoApproveOperator"
    retrain = bag.get_dag(dag_id("demo", "breast-cancer", "retrain"))
    assert retrain.timetable.expression == "0 3 * * *"
    assert type(retrain.get_task("trigger_train")).__name__ == "MlopsTriggerTrainOperator"
    # The DAGs read well in the UI: a display name, the owner, the config and links in the docs, tags.
    assert (train.dag_display_name, deploy.dag_display_name) == ("demo/breast-cancer · train", "demo/breast-cancer · deploy")
    assert {"mlops", "project:demo", "model:breast-cancer", "backend:local", "train"} <= set(train.tags)
    assert "Owner: " in train.doc_md and "examples/breast-cancer/mlops.yaml" in train.doc_md
    assert "(/mlops/models)" in train.doc_md and "(/mlops/dag/mlops__demo__breast-cancer__train)" in train.doc_md


def test_a_bad_config_costs_only_its_own_model(airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("data"))
    for case in ("unknown-nested-key", "yaml-syntax"):
        shutil.copytree(BAD / case, tmp_path / "bad" / case)
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(tmp_path))
    bag = _bag()
    good, _ = load_all([tmp_path / "examples"])
    assert {dag_id(c.config.project, c.config.model, k) for c in good for k in DAG_KINDS} <= set(bag.dag_ids)
    # The errors are the DAG-less companion file's import error, so no good DAG is marked stale.
    assert [Path(p).name for p in bag.import_errors] == ["mlops_config_errors.py"], bag.import_errors
    message = next(iter(bag.import_errors.values()))
    assert f"{tmp_path}/bad/unknown-nested-key/mlops.yaml:6: field 'training.entrypiont'" in message
    assert "did you mean 'entrypoint'?" in message
    assert f"{tmp_path}/bad/yaml-syntax/mlops.yaml:6: invalid YAML" in message


def test_strict_mode_fails_the_loader_on_a_bad_config(airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(BAD / "bad-backend", tmp_path / "bad-backend")
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(tmp_path))
    monkeypatch.setenv("MLOPS_STRICT", "1")
    bag = _bag()
    errors = {Path(p).name: text for p, text in bag.import_errors.items()}
    assert "field 'backend'" in errors["mlops_dags.py"]
    assert not [d for d in bag.dag_ids if d.startswith("mlops__")]


def test_parsing_imports_no_heavy_sdk() -> None:
    # Importing Airflow itself registers the providers' metadata modules: count only what parsing adds.
    code = (
        "import sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "before = set(sys.modules)\n"
        f"bag = DagBag({str(DAGS)!r})\n"
        "assert bag.dag_ids and not bag.import_errors, bag.import_errors\n"
        "heavy = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in"
        " ('boto3', 'botocore', 'kubernetes', 'sagemaker', 'sklearn', 'slack_sdk')"
        " or m.startswith(('airflow.providers.cncf', 'airflow.providers.amazon', 'airflow.providers.slack')))\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def test_airflow_lists_the_provider(airflow_db: Path) -> None:
    airflow = str(Path(sys.executable).with_name("airflow"))
    result = subprocess.run([airflow, "providers", "list", "-o", "plain"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "airflow-provider-mlops" in result.stdout
