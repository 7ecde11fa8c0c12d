"""
The CLI's rough edges (issue 16, part 4): --version, help with examples, validate --json,
did-you-mean for gate metrics, registry refs that split right, and the endpoint commands
addressed by PROJECT/MODEL on real endpoint processes (router and model server, stopped by pid).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_mlops import __version__, cli
from airflow_provider_mlops._proc import pid_alive
from airflow_provider_mlops.cli_help import undocumented
from airflow_provider_mlops.registry.local import LocalModelRegistry
from airflow_provider_mlops.serving.local import LocalServing

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "breast-cancer"
GROUP = "demo--breast-cancer"


def _endpoint_models() -> Any:
    """The stand-in model the endpoint tests share (tests/integration/endpoint_models.py)."""
    spec = importlib.util.spec_from_file_location("endpoint_models", REPO / "tests" / "integration" / "endpoint_models.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model_copy(tmp_path: Path, change: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None) -> Path:
    root = tmp_path / "models"
    folder = root / "breast-cancer"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((folder / "mlops.yaml").read_text())
    for dotted, value in (change or {}).items():
        *parents, key = dotted.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[key] = value
    (folder / "mlops.yaml").write_text(yaml.safe_dump(config))
    if defaults is not None:
        (root / "mlops-defaults.yaml").write_text(yaml.safe_dump(defaults))
    return folder / "mlops.yaml"


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mlops (airflow-provider-mlops) {__version__}"


def test_every_command_and_argument_has_help_and_every_command_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert undocumented(cli.build_parser()) == []
    for argv in (["rollback", "--help"], ["endpoint", "invoke", "--help"], ["validate", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        out = capsys.readouterr().out
        assert "Example" in out and f"mlops {argv[0]}" in out.split("Example")[1], out


def test_validate_json_lists_each_error_with_file_line_field_value_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _model_copy(tmp_path, {"backend": "lokal", "evaluation.gate": {"f1": {"min": 0.9}, "recal": {"min": 0.9}}})
    assert cli.main(["validate", "--json", str(config.parent)]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] == []
    by_field = {e["field"]: e for e in result["errors"]}
    backend = by_field["backend"]
    assert backend["file"] == str(config) and backend["value"] == "lokal" and isinstance(backend["line"], int)
    assert backend["message"] and backend["fix"]
    assert set(backend) == {"file", "line", "field", "value", "message", "fix"}
    assert cli.main(["validate", "--json", str(EXAMPLE)]) == 0
    ok = json.loads(capsys.readouterr().out)
    assert ok["errors"] == [] and ok["valid"][0]["model"] == "breast-cancer"


def test_a_gate_metric_typo_gets_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _model_copy(tmp_path, {"evaluation.gate": {"f1": {"min": 0.9}, "recal": {"min": 0.9}}})
    assert cli.main(["validate", str(config)]) == 1
    err = capsys.readouterr().err
    assert "field 'evaluation.gate.recal'" in err and "did you mean 'recall'?" in err, err
    assert "matches the rule above" not in err


def test_a_missing_version_names_project_model_as_given_not_split_from_the_group(
    tmp_path: Path, mlops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A group kept from before the '--' join (cb-ml-wine-rf) splits two ways; the CLI must not guess.
    config = _model_copy(tmp_path, {"project": "cb-ml", "model": "wine-rf",
                                    "registry.model_package_group": "cb-ml-wine-rf",
                                    "deployment.endpoint_name": "cb-ml-wine-rf"},
                         defaults={"organisation": {"allow_resource_overrides": True}})
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(config.parent.parent))
    LocalModelRegistry(mlops_home).register("cb-ml-wine-rf", "1.0", idempotency_key="a", artifact_uri="/m",
                                            metrics={"f1": 0.95}, gate={"passed": True}, lineage={})
    assert cli.main(["approve", "cb-ml/wine-rf", "9.9.9", "--by", "carol"]) == 1
    err = capsys.readouterr().err
    assert "mlops versions cb-ml/wine-rf" in err and "cb/ml-wine-rf" not in err and "versions: 1.0.0" in err, err


# -- endpoints, on real router and model-server processes --------------------------------


@pytest.fixture
def endpoint(tmp_path: Path, mlops_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, LocalServing, Any]]:
    """demo/breast-cancer's config (under MLOPS_CONFIG_PATH) and its endpoint serving 1.0.0 then 1.0.1."""
    models = _endpoint_models()
    config = _model_copy(tmp_path)
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(config.parent.parent))
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(models.INFERENCE)
    serving = LocalServing(mlops_home, drain_seconds=0.1)
    try:
        for version in ("1.0.0", "1.0.1"):
            serving.deploy_model(GROUP, version=version, model_dir=models.model_folder(tmp_path, version),
                                 code_dir=str(code))
        yield config, serving, models
    finally:
        serving.stop(GROUP)  # by the pids it recorded and the command lines naming its state folder


def _pids(serving: LocalServing) -> list[int]:
    state = serving.state_dir(GROUP)
    return [json.loads((state / name).read_text())["pid"] for name in ("router.json", "current.json")]


def test_endpoint_commands_take_project_model_and_the_raw_name(endpoint: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _config, _serving, _ = endpoint
    assert cli.main(["endpoint", "status", "demo/breast-cancer"]) == 0
    by_model = json.loads(capsys.readouterr().out)
    assert by_model["endpoint"] == GROUP and by_model["version"] == "1.0.1" and by_model["model"] == "demo/breast-cancer"
    assert cli.main(["endpoint", "status", GROUP]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "1.0.1"


@pytest.mark.parametrize("ref", ["nope", "demo/no-such-model"])
def test_an_unknown_endpoint_or_model_exits_1_with_one_line(
    ref: str, endpoint: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for action in ("status", "stop"):
        assert cli.main(["endpoint", action, ref]) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.splitlines()) == 1, captured
        assert captured.err.startswith("mlops: error: ") and (f"no endpoint {ref}" in captured.err
                                                              or "no mlops.yaml for demo/no-such-model" in captured.err)
    if ref == "nope":
        assert f"endpoints there: {GROUP}" in captured.err


def test_invoke_refuses_an_empty_body_and_reads_a_piped_one(
    endpoint: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # stdin a terminal (a real pty), no --payload: refused, nothing sent.
    leader, follower = os.openpty()
    try:
        with open(follower, "rb", buffering=0, closefd=False) as tty:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(tty))  # type: ignore[arg-type]
            assert cli.main(["endpoint", "invoke", "demo/breast-cancer"]) == 1
    finally:
        os.close(leader)
        os.close(follower)
    err = capsys.readouterr().err
    assert "needs a request body and stdin is a terminal" in err and "--payload" in err, err
    for piped in (b"", b"  \n"):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(piped)))
        assert cli.main(["endpoint", "invoke", "demo/breast-cancer"]) == 1
        assert "the request body from stdin is empty" in capsys.readouterr().err
    assert cli.main(["endpoint", "invoke", "demo/breast-cancer", "--payload", ""]) == 1
    assert "from --payload is empty" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"[7]")))
    assert cli.main(["endpoint", "invoke", "demo/breast-cancer"]) == 0
    assert capsys.readouterr().out.strip() == 'HTTP 200 from version 1.0.1: {"version": "1.0.1", "echo": [7]}'


def test_stop_stops_the_processes_and_keeps_the_history(
    endpoint: Any, tmp_path: Path, mlops_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config, serving, models = endpoint
    pids = _pids(serving)
    assert cli.main(["endpoint", "stop", "demo/breast-cancer"]) == 0
    assert "its history (2 deploys) is kept" in capsys.readouterr().out
    assert not any(pid_alive(pid) for pid in pids)
    assert cli.main(["endpoint", "status", "demo/breast-cancer"]) == 0
    stopped = json.loads(capsys.readouterr().out)
    assert stopped["router_running"] is False and stopped["version"] is None and stopped["history"] == ["1.0.0", "1.0.1"]
    events = LocalModelRegistry(mlops_home).audit_log(GROUP)
    assert [(e["kind"], e.get("endpoint"), e.get("version")) for e in events] == [("endpoint_stopped", GROUP, "1.0.1")]
    # A later deploy continues the history.
    serving.deploy_model(GROUP, version="1.0.2", model_dir=models.model_folder(tmp_path, "1.0.2"),
                         code_dir=str(tmp_path / "code"))
    assert cli.main(["endpoint", "status", GROUP]) == 0
    assert json.loads(capsys.readouterr().out)["history"] == ["1.0.0", "1.0.1", "1.0.2"]


def test_every_schema_property_of_the_config_models_has_a_description_and_version_a_pattern() -> None:
    import re

    from airflow_provider_mlops.config import kubernetes, models
    from airflow_provider_mlops.config.schema import json_schema_text

    committed = (REPO / "airflow_provider_mlops" / "schema" / "mlops.schema.json").read_text()
    assert committed == json_schema_text(), "run: mlops schema -o airflow_provider_mlops/schema/mlops.schema.json"
    schema = json.loads(committed)
    owned = {name for module in (models, kubernetes) for name, value in vars(module).items()
             if isinstance(value, type) and issubclass(value, models.BaseModel) and value.__module__ == module.__name__}
    assert {"KubernetesSettings", "Volume", "MlopsConfig"} <= owned
    undescribed = [f"{name}.{key}" for name, node in [("MlopsConfig", schema), *schema["$defs"].items()]
                   if name in owned for key, prop in node.get("properties", {}).items() if not prop.get("description")]
    assert undescribed == []
    version = schema["properties"]["version"]
    assert re.fullmatch(version["pattern"], "1.0") and not re.fullmatch(version["pattern"], "1.0.0")
    assert version["examples"] == ["1.0"]
