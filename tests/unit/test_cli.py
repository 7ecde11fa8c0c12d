"""The mlops CLI: validate, render, schema, versions, approve/reject in the registry, version next, errors."""

from __future__ import annotations

import errno
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from airflow_provider_mlops import cli
from airflow_provider_mlops.cli import main
from airflow_provider_mlops.cli_errors import one_line
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
        registry.register("demo--breast-cancer", "1.0", idempotency_key=key, artifact_uri="/m", metrics={"f1": 0.95}, gate={"passed": True}, lineage={})
    assert main(["approve", "demo/breast-cancer", "1.0.0", "--config", str(CONFIG), "--by", "carol"]) == 0
    assert main(["reject", "demo/breast-cancer", "1.0.1", "--config", str(CONFIG), "--by", "dan", "--reason", "bias"]) == 0
    assert registry.get("demo--breast-cancer", "1.0.0").approval["by"] == "carol"
    rejected = registry.get("demo--breast-cancer", "1.0.1")
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
    err = capsys.readouterr().err
    assert err.startswith("mlops: error: ") and len(err.splitlines()) == 1, err


def test_version_next_prints_dotenv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "next", "--config", str(CONFIG), "--build-number", "42", "--commit", "0123456789abcdef"]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    assert lines["MLOPS_VERSION"] == "1.0.42" and lines["MLOPS_COMMIT_TAG"] == "0123456789ab"
    assert lines["MLOPS_ECR_REPOSITORY"] == "demo/breast-cancer"


def test_validate_fails_on_a_file_the_config_names_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "breast-cancer"
    shutil.copytree(REPO / "examples" / "breast-cancer", model, ignore=shutil.ignore_patterns("__pycache__"))
    assert main(["validate", str(model)]) == 0
    config = model / "mlops.yaml"
    config.write_text(config.read_text().replace("entrypoint: train.py", "entrypoint: trian.py"))
    capsys.readouterr()
    assert main(["validate", str(model)]) == 1
    captured = capsys.readouterr()
    line = next(i + 1 for i, text in enumerate(config.read_text().splitlines()) if "trian.py" in text)
    assert f"{config}:{line}: field 'training.entrypoint'" in captured.err
    assert "(got 'trian.py')" in captured.err and "did you mean 'train.py'?" in captured.err
    assert "ok:" not in captured.out and "0 valid, 1 error(s)" in captured.out


def test_validate_refuses_paths_outside_the_config_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--publish", str(REPO / "examples" / "breast-cancer")]) == 0
    model = tmp_path / "breast-cancer"
    shutil.copytree(REPO / "examples" / "breast-cancer", model, ignore=shutil.ignore_patterns("__pycache__"))
    config = model / "mlops.yaml"
    config.write_text(config.read_text().replace("payload_file: smoke_payload.json", "payload_file: ../shared/smoke_payload.json"))
    (tmp_path / "shared").mkdir()
    shutil.copy(REPO / "examples" / "breast-cancer" / "smoke_payload.json", tmp_path / "shared")
    for argv in (["validate", str(model)], ["validate", "--publish", str(model)]):  # the worker reads it: never
        capsys.readouterr()
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "field 'deployment.smoke_test.payload_file': '../shared/smoke_payload.json' is outside the model's folder" in err


def test_publish_files_lists_and_copies_what_the_airflow_side_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # As CI does: the config staged under the org defaults, its paths read from the model repository.
    staged = tmp_path / "stage" / "demo" / "breast-cancer"
    staged.mkdir(parents=True)
    shutil.copy(CONFIG, staged / "mlops.yaml")
    argv = ["publish-files", str(staged / "mlops.yaml"), "--source", str(CONFIG.parent), "--copy-to", str(staged)]
    assert main(argv) == 0
    listed = capsys.readouterr().out.split()
    assert {"train.py", "evaluate.py", "inference.py", "data/train/train.csv", "smoke_payload.json"} <= set(listed)
    assert all((staged / name).is_file() for name in listed)
    assert main(["validate", "--publish", str(tmp_path / "stage")]) == 0
    assert main([*argv, "--max-mb", "0.001"]) == 1
    assert "limit" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--pipeline-url": "javascript:alert(1)"}, "--pipeline-url"),
        ({"--job-url": "not a url"}, "--job-url"),
        ({"--job": " "}, "--job"),
        ({"--stage": "a\nb"}, "--stage"),
        ({"--commit": "HEAD~1"}, "--commit"),
        ({"--config": "/no/such/mlops.yaml"}, "cannot read the file"),
    ],
)
def test_notify_ci_failure_refuses_bad_arguments(change: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    options = {"--config": str(CONFIG), "--pipeline-url": "https://gitlab.example.com/p/-/pipelines/1",
               "--job": "package", "--stage": "package", **change}
    assert main(["notify", "ci-failure", *[part for pair in options.items() for part in pair]]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlops: error: ") and message in err


def test_notify_ci_failure_without_a_channel_says_so_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "ci-failure", "--config", str(CONFIG), "--pipeline-url", "https://gitlab.example.com/p/-/pipelines/1",
                 "--job", "lint", "--stage", "lint"]) == 0
    assert "no notification sent for demo/breast-cancer" in capsys.readouterr().out


# --- errors: one line, --debug adds the traceback (issue 13) ---------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command_adds_the_traceback(where: str, mlops_home: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["versions", "demo", "--config", str(CONFIG)]
    assert main(argv) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", *argv] if where == "before" else [*argv, "--debug"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "InputError" in err
    assert err.splitlines()[-1].startswith("mlops: error: model 'demo' must be PROJECT/MODEL")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (OSError(errno.EROFS, "Read-only file system", "/srv/home/x"), "cannot use a file (/srv/home/x): "
         "Read-only file system; remount /srv/home read-write, or use a writable folder (for the MLOps home: "
         "set MLOPS_HOME or registry.home in mlops.yaml)"),
        (OSError(errno.ENOSPC, "No space left on device", "/d/f"), "(/d/f): No space left on device; free space "
         "on the disk that holds /d, then retry"),
        (OSError(errno.ENOSPC, "No space left on device"), "(path not known: rerun with --debug)"),
        (PermissionError(errno.EACCES, "Permission denied", "/etc/x"), "(/etc/x): Permission denied; make /etc "
         "readable and writable by this user"),
        (json.JSONDecodeError("Expecting value", "{\n x", 3), "a JSON file is damaged (rerun with --debug to see "
         "which file): Expecting value at line 2 column 2; restore that file"),
        (sqlite3.OperationalError("database is locked"), "a SQLite database failed (rerun with --debug to see "
         "which file): database is locked;"),
    ],
)
def test_machine_faults_become_one_line_with_the_path_and_the_fix(fault: Exception, expected: str) -> None:
    line = one_line(fault)
    assert expected in line and "\n" not in line, line


def test_the_cli_modules_stay_under_400_lines() -> None:
    package = Path(cli.__file__).parent
    sizes = {path.name: len(path.read_text().splitlines()) for path in package.glob("cli*.py")}
    assert set(sizes) >= {"cli.py", "cli_errors.py", "cli_registry.py", "cli_endpoint.py"}
    assert max(sizes.values()) < 400, sizes
