"""The mlops CLI: validate, render, schema, versions, approve/reject in the registry, version next."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from airflow_provider_mlops.cli import main
from airflow_provider_mlops.registry.local import LocalModelRegistry

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "breast-cancer" / "mlops.yaml"


def test_validate_exit_codes_and_every_error_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "examples")]) == 0
    for case in ("bad-backend", "missing-model"):
        shutil.copytree(REPO / "tests/fixtures/bad_configs" / case, tmp_path / case)
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad-backend/mlops.yaml:13: field 'backend'" in err and "missing-model/mlops.yaml:1: field 'model'" in err
    assert main(["validate", str(tmp_path / "nothing-here")]) == 1


def test_render_lists_the_three_dags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(CONFIG), "--json"]) == 0
    dags = json.loads(capsys.readouterr().out)
    assert [d["dag_id"] for d in dags] == [f"mlops__demo__breast-cancer__{k}" for k in ("train", "deploy", "retrain")]
    assert dags[2]["schedule"] == "0 3 * * *"


def test_schema_writes_json(tmp_path: Path) -> None:
    assert main(["schema", "-o", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["title"] == "MlopsConfig"


def test_approve_and_reject_record_in_the_registry(mlops_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = LocalModelRegistry(mlops_home)
    for key in ("a", "b"):
        registry.register("demo-breast-cancer", "1.0", idempotency_key=key, artifact_uri="/m", metrics={"f1": 0.95}, gate={"passed": True}, lineage={})
    assert main(["approve", "demo/breast-cancer", "1.0.0", "--config", str(CONFIG), "--by", "carol"]) == 0
    assert main(["reject", "demo/breast-cancer", "1.0.1", "--config", str(CONFIG), "--by", "dan", "--reason", "bias"]) == 0
    assert registry.get("demo-breast-cancer", "1.0.0").approval["by"] == "carol"
    rejected = registry.get("demo-breast-cancer", "1.0.1")
    assert rejected.status == "Rejected" and rejected.approval["reason"] == "bias"
    capsys.readouterr()
    assert main(["versions", "demo/breast-cancer", "--config", str(CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "1.0.0      Approved" in out and "carol" in out and "1.0.1      Rejected" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["approve", "Demo/Breast", "1.0.0"],
        ["approve", "demo/breast-cancer", "1.0"],
        ["approve", "demo/breast-cancer", "../../etc"],
        ["versions", "demo"],
        ["version", "next", "--config", str(CONFIG), "--build-number", "-1", "--commit", "abcdef1"],
        ["version", "next", "--config", str(CONFIG), "--build-number", "3", "--commit", "not-a-sha"],
    ],
)
def test_bad_arguments_are_refused_with_a_message(argv: list[str], mlops_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, *(["--config", str(CONFIG)] if argv[0] in ("approve", "versions") else [])]) == 1
    assert capsys.readouterr().err.startswith("error:")


def test_version_next_prints_dotenv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "next", "--config", str(CONFIG), "--build-number", "42", "--commit", "0123456789abcdef"]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    assert lines["MLOPS_VERSION"] == "1.0.42" and lines["MLOPS_COMMIT_TAG"] == "0123456789ab"
    assert lines["MLOPS_ECR_REPOSITORY"] == "demo/breast-cancer"
