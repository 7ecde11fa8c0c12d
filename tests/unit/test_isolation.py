"""
Isolation between models (issue 12): names map to resources one-to-one, a config names only its
own resources and reads only files in its own folder, and jobs get only their declared
environment, never the worker's secrets.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_mlops import runtime
from airflow_provider_mlops.backends.base import JobSpec
from airflow_provider_mlops.backends.local import LocalComputeBackend
from airflow_provider_mlops.cli import main
from airflow_provider_mlops.config.loader import DEFAULTS_FILENAME, load_all, load_config
from airflow_provider_mlops.exceptions import ConfigError
from airflow_provider_mlops.factory.loader import plan_all
from airflow_provider_mlops.registry.local import LocalModelRegistry
from airflow_provider_mlops.serving.local import LocalServing

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "breast-cancer"


def _model(root: Path, project: str, model: str, **changes: Any) -> Path:
    """A copy of the breast-cancer example as ``project/model`` under ``root``, with top-level ``changes``."""
    folder = root / project / model
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    data = yaml.safe_load((EXAMPLE / "mlops.yaml").read_text())
    data.update(project=project, model=model)
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[key] = value
    (folder / "mlops.yaml").write_text(yaml.safe_dump(data))
    return folder / "mlops.yaml"


def _refused(config: Path, root: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as refused:
        load_config(config, root=root)
    return refused.value


# --- names map to resources one-to-one ----------------------------------------------------------


def test_models_whose_names_joined_the_same_way_get_their_own_group_and_endpoint(
    tmp_path: Path, mlops_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = _model(tmp_path, "a-b", "c"), _model(tmp_path, "a", "b-c")
    loaded, errors = load_all([tmp_path])
    assert errors == [] and len(loaded) == 2
    a_b_c, a_bc = (runtime.config_at(str(c)) for c in (first, second))
    assert (runtime.group_of(a_b_c), a_b_c.config.endpoint_name) == ("a-b--c", "a-b--c")
    assert (runtime.group_of(a_bc), a_bc.config.endpoint_name) == ("a--b-c", "a--b-c")
    registry = runtime.registry_for(a_b_c)
    registry.register("a-b--c", "1.0", idempotency_key="k", artifact_uri="/m", metrics={}, gate={"passed": True}, lineage={})
    registry.set_approval("a-b--c", "1.0.0", "Approved", by="alice")
    registry.promote("a-b--c", "1.0.0", deployment={"endpoint": "a-b--c"})
    assert main(["versions", "a/b-c", "--config", str(second)]) == 0
    assert "(no versions of a/b-c yet)" in capsys.readouterr().out
    assert runtime.registry_for(a_bc).production("a--b-c") is None  # its gate compares against nothing of a-b/c's


def test_a_name_may_not_contain_the_join(tmp_path: Path) -> None:
    error = _refused(_model(tmp_path, "a--b", "c"))
    assert error.field == "project" and "may not contain '--'" in str(error)
    assert main(["versions", "a--b/c"]) == 1


def test_two_configs_that_claim_one_endpoint_are_an_import_error_naming_both(tmp_path: Path) -> None:
    (tmp_path / DEFAULTS_FILENAME).write_text("organisation:\n  allow_resource_overrides: true\n")
    first = _model(tmp_path, "team-a", "churn", **{"deployment.endpoint_name": "shared-endpoint"})
    second = _model(tmp_path, "team-b", "churn", **{"deployment.endpoint_name": "shared-endpoint"})
    for errors in (plan_all([tmp_path])[1], load_all([tmp_path])[1]):
        [error] = errors
        assert error.path == str(second) and error.field == "deployment.endpoint_name"
        assert f"already the endpoint of team-a/churn ({first})" in str(error)
    assert len(plan_all([tmp_path])[0]) == 1  # the first keeps its DAGs


# --- a config names only its own resources --------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("registry.model_package_group", "demo--breast-cancer", "outside this model's namespace"),
        ("deployment.endpoint_name", "demo--breast-cancer", "outside this model's namespace"),
        ("registry.home", "../../x", "is outside the model's folder"),
        ("registry.home", "/var/lib/mlops-other", "is outside the model's folder"),
    ],
)
def test_a_config_cannot_name_another_models_resources(tmp_path: Path, key: str, value: str, message: str) -> None:
    error = _refused(_model(tmp_path, "team-b", "evil", **{key: value}), root=tmp_path)
    assert error.field == key and message in str(error) and "organisation.allow_resource_overrides" in str(error)


def test_own_namespace_names_are_allowed_and_the_organisation_may_allow_more(tmp_path: Path) -> None:
    own = _model(tmp_path, "team-b", "churn", **{"deployment.endpoint_name": "team-b--churn--shadow",
                                                  "registry.home": ".mlops"})
    assert load_config(own, root=tmp_path).config.endpoint_name == "team-b--churn--shadow"
    other = _model(tmp_path, "team-c", "churn", **{"registry.model_package_group": "legacy-churn-group"})
    assert "outside this model's namespace" in str(_refused(other, root=tmp_path))
    (tmp_path / DEFAULTS_FILENAME).write_text("organisation:\n  allow_resource_overrides: true\n")
    assert load_config(other, root=tmp_path).config.registry_group == "legacy-churn-group"


def test_only_the_organisation_defaults_may_set_organisation(tmp_path: Path) -> None:
    config = _model(tmp_path, "team-b", "evil", organisation={"allow_resource_overrides": True})
    error = _refused(config, root=tmp_path)
    assert error.path == str(config) and error.field == "organisation"
    assert f"at the root of the config folders ({tmp_path / DEFAULTS_FILENAME})" in str(error)
    config.write_text(config.read_text().replace("organisation:\n  allow_resource_overrides: true\n", ""))
    team = tmp_path / "team-b" / DEFAULTS_FILENAME
    team.write_text("organisation:\n  allow_resource_overrides: true\n")
    assert _refused(config, root=tmp_path).path == str(team)


# --- paths stay inside the model's folder -----------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("training.source_dir", "/etc"),
        ("training.channels", {"train": "../../other-team/data"}),
        ("evaluation.data", "/srv/other/test"),
        ("deployment.inference_entrypoint", "../../other/inference.py"),
        ("deployment.smoke_test", {"payload_file": "/etc/shadow"}),
    ],
)
def test_paths_the_worker_reads_stay_in_the_models_folder(tmp_path: Path, key: str, value: Any) -> None:
    error = _refused(_model(tmp_path, "team-b", "evil", **{key: value}), root=tmp_path)
    assert error.field.startswith(key) and ("is outside the model's folder" in str(error) or "is an absolute path" in str(error))


def test_a_link_out_of_the_folder_is_refused_when_a_task_reads_it(tmp_path: Path, mlops_home: Path) -> None:
    from airflow_provider_mlops.operators.train import training_job_spec

    config = _model(tmp_path, "team-b", "evil")
    data = config.parent / "data" / "train"
    shutil.rmtree(data)
    (tmp_path / "elsewhere").mkdir()
    data.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    loaded = runtime.config_at(str(config))  # as written, data/train is inside: it loads
    with pytest.raises(ConfigError, match="outside the model's folder") as refused:
        training_job_spec(loaded, "job-1")
    assert refused.value.field == "training.channels.train"


# --- jobs get only what they declare -----------------------------------------------------------------

SECRETS = {
    "AIRFLOW_CONN_SLACK_DEFAULT": "slack://:xoxb-secret@",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:hunter2@db/airflow",
}


def test_a_local_job_gets_its_declared_environment_and_no_worker_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("import os, json\nprint(json.dumps(dict(os.environ)))\n")
    (tmp_path / "data").mkdir()
    backend = LocalComputeBackend(tmp_path / "home")
    spec = JobSpec(name="env-job", kind="training", entrypoint="train.py", source_dir=str(code),
                   channels={"train": str(tmp_path / "data")}, environment={"LOG_LEVEL": "debug"})
    backend.submit(spec)
    deadline = time.monotonic() + 60
    while not backend.poll("env-job").terminal:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert backend.poll("env-job").status == "Completed"
    log = backend.run_dir("env-job") / "stdout.log"
    env = json.loads(log.read_text().strip().splitlines()[-1])
    for key, value in SECRETS.items():
        assert key not in env and value not in log.read_text()
    assert env["LOG_LEVEL"] == "debug" and env["SM_CHANNEL_TRAIN"].endswith("input/data/train")
    assert env["PATH"] == os.environ["PATH"] and "PYTHONPATH" not in env and "MLOPS_RUNNER_PYTHONPATH" not in env
    assert stat.S_IMODE(backend.run_dir("env-job").stat().st_mode) == 0o700
    assert stat.S_IMODE(backend.jobs_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_kubernetes_and_sagemaker_jobs_get_only_their_declared_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_mlops.backends.kubernetes_pod import container_env
    from airflow_provider_mlops.backends.sagemaker import training_environment

    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    spec = JobSpec(name="j", kind="training", entrypoint="train.py", image="img:1", channels={"train": "s3://b/t"},
                   environment={"LOG_LEVEL": "debug"})
    for env in (container_env(spec, {"artifacts_uri": "s3://b/artifacts"}), training_environment(spec)):
        assert env["LOG_LEVEL"] == "debug"
        assert all(k.startswith(("SM_", "MLOPS_")) for k in env if k != "LOG_LEVEL"), sorted(env)
        assert not set(SECRETS.values()) & set(env.values())


# --- names before the '--' join are not orphaned -------------------------------------------------


def test_a_local_registry_keyed_by_the_old_group_name_moves_this_models_versions_only(mlops_home: Path,
                                                                                   caplog: pytest.LogCaptureFixture) -> None:
    registry = LocalModelRegistry(mlops_home)
    kwargs: dict[str, Any] = {"artifact_uri": "/m", "metrics": {}, "gate": {"passed": True}}
    for key, dag in (("1", "mlops__demo__breast-cancer__train"), ("2", "mlops__demo-breast__cancer__train"),
                     ("3", "mlops__demo__breast-cancer__train")):
        registry.register("demo-breast-cancer", "1.0", idempotency_key=key, lineage={"dag_id": dag}, **kwargs)
    registry.set_approval("demo-breast-cancer", "1.0.0", "Approved", by="alice", reason="ok")
    registry.promote("demo-breast-cancer", "1.0.0", deployment={"endpoint": "demo-breast-cancer"})
    moved = runtime.registry_for(runtime.config_at(str(EXAMPLE / "mlops.yaml")))
    assert [v.semver for v in moved.list_versions("demo--breast-cancer")] == ["1.0.0", "1.0.2"]
    assert moved.production("demo--breast-cancer").approval["by"] == "alice"  # type: ignore[union-attr]
    assert [v.semver for v in moved.list_versions("demo-breast-cancer")] == ["1.0.1"]  # demo-breast/cancer's
    kinds = [e["kind"] for e in moved.audit_log("demo--breast-cancer")]
    assert kinds[-1] == "migrated" and "approved" in kinds and "promoted" in kinds
    assert "Moved 2 version(s) of demo--breast-cancer from the registry group demo-breast-cancer" in caplog.text
    again = runtime.registry_for(runtime.config_at(str(EXAMPLE / "mlops.yaml")))
    assert len(again.list_versions("demo--breast-cancer")) == 2  # once only


def test_a_local_endpoint_under_the_old_name_is_renamed_and_keeps_answering_at_the_old_path(tmp_path: Path) -> None:
    serving = LocalServing(tmp_path)
    old = serving.state_dir("demo-breast-cancer")
    old.mkdir(parents=True)
    (old / "router.json").write_text(json.dumps({"pid": None, "port": 8123}))
    assert serving.adopt_endpoint("demo-breast-cancer", "demo--breast-cancer") is True
    assert json.loads((serving.state_dir("demo--breast-cancer") / "router.json").read_text())["port"] == 8123
    assert (old / "router.json").exists() and old.is_symlink()  # a running router still reads its old path
    assert serving.adopt_endpoint("demo-breast-cancer", "demo--breast-cancer") is False
