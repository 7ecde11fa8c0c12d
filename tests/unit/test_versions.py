"""
One version contract between CI and the DAGs (docs/versions.md), tested from both sides.

A train run with CI's release conf (``version`` = the image version ``MAJOR.MINOR.<build>``)
registers a model version ``MAJOR.MINOR.<registry patch>`` whose lineage names the release; a
deploy run with the same release conf resolves that model version, and ``model_version``
names one directly. The operators run for real on the example diabetes config, the fake
compute backend and the local registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from task_fakes import FakeTaskInstance, context

from airflow_provider_mlops import runtime
from airflow_provider_mlops.backends.fake import FakeComputeBackend
from airflow_provider_mlops.exceptions import DeployRefusedError, InputError, VersionNotFoundError
from airflow_provider_mlops.operators import (
    MlopsEvaluateOperator,
    MlopsGateOperator,
    MlopsRegisterOperator,
    MlopsResolveVersionOperator,
    MlopsTrainOperator,
)
from airflow_provider_mlops.registry.base import APPROVED, PENDING, REJECTED, ModelVersion
from airflow_provider_mlops.registry.releases import Release, resolve_release

REPO = Path(__file__).resolve().parents[2]
DIABETES = str(REPO / "examples" / "diabetes" / "mlops.yaml")
TRAIN_DAG, DEPLOY_DAG = "mlops__demo__diabetes__train", "mlops__demo__diabetes__deploy"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
GOOD = {"mse": 2900.0, "mae": 43.0, "r2": 0.45}
BAD = {"mse": 2950.0, "mae": 44.0, "r2": 0.1}  # r2 below its gate's min of 0.3


def _release(build: int) -> dict[str, str]:
    """The conf CI's train and deploy jobs send for pipeline ``build`` (scripts/ci/trigger.sh)."""
    return {"version": f"0.3.{build}", "image": f"123.dkr.ecr.eu-west-1.amazonaws.com/demo/diabetes:0.3.{build}",
            "commit": COMMIT, "requested_by": "gitlab:alice"}


def _run(operator: Any, ti: FakeTaskInstance, conf: dict[str, Any]) -> Any:
    ti.task_id = operator.task_id
    result = operator.execute(context(ti, conf))
    ti.xcoms[(operator.task_id, "return_value")] = result
    return result


def _train(run: str, conf: dict[str, Any], metrics: dict[str, float]) -> dict[str, Any]:
    """One train DAG run, task by task: train → evaluate → gate → register."""
    ti = FakeTaskInstance(TRAIN_DAG, "train", run_id=f"manual__{run}")
    train = MlopsTrainOperator(task_id="train", config_path=DIABETES)
    evaluate = MlopsEvaluateOperator(task_id="evaluate", config_path=DIABETES)
    train.backend = evaluate.backend = FakeComputeBackend()
    FakeComputeBackend.next_state = {"status": "Completed", "metrics": {"train_r2": 0.5}}
    _run(train, ti, conf)
    FakeComputeBackend.next_state = {"status": "Completed", "metrics": metrics}
    _run(evaluate, ti, conf)
    _run(MlopsGateOperator(task_id="gate", config_path=DIABETES), ti, conf)
    return _run(MlopsRegisterOperator(task_id="register", config_path=DIABETES), ti, conf)


def _resolve(conf: dict[str, Any]) -> dict[str, Any]:
    ti = FakeTaskInstance(DEPLOY_DAG, "resolve_version")
    return MlopsResolveVersionOperator(task_id="resolve_version", config_path=DIABETES).execute(context(ti, conf))


@pytest.fixture(autouse=True)
def _fresh(mlops_home: Path) -> None:
    FakeComputeBackend.reset()


def test_a_release_trains_a_model_version_and_deploying_the_release_resolves_it() -> None:
    # CI → train: release 0.3.7 registers model version 0.3.0 that remembers the release.
    registered = _train("1", _release(7), GOOD)
    assert registered["semver"] == "0.3.0" and registered["status"] == PENDING
    lineage = registered["lineage"]
    assert (lineage["image_version"], lineage["image"], lineage["commit"]) == (
        "0.3.7", _release(7)["image"], COMMIT)
    # CI → deploy: the same conf deploys model version 0.3.0, and so does the explicit model version.
    resolved = _resolve(_release(7))
    assert resolved["semver"] == "0.3.0" and "release (image version): `0.3.7`" in resolved["approval_body"]
    assert _resolve({"version": "0.3.7"})["semver"] == "0.3.0"
    assert _resolve({"image": _release(7)["image"]})["semver"] == "0.3.0"
    assert _resolve({"model_version": "0.3.0"})["semver"] == "0.3.0"
    assert _resolve({})["semver"] == "0.3.0"  # nothing named: the newest awaiting deployment


def test_a_model_version_passed_as_a_release_says_which_key_was_meant() -> None:
    _train("1", _release(7), GOOD)
    with pytest.raises(AirflowFailException) as failed:
        _resolve({"version": "0.3.0"})
    message = str(failed.value)
    assert isinstance(failed.value.__cause__, VersionNotFoundError)
    assert "release version 0.3.0" in message and "releases the registry knows: 0.3.7" in message
    assert 'did you mean {"model_version": "0.3.0"}' in message
    with pytest.raises(AirflowFailException, match=r'did you mean \{"version": "0.3.7"\}'):
        _resolve({"model_version": "0.3.7"})


def test_an_unknown_release_names_what_was_asked_and_what_is_known() -> None:
    _train("1", _release(7), GOOD)
    with pytest.raises(AirflowFailException) as failed:
        _resolve(_release(99))
    assert "0.3.99" in str(failed.value) and "releases the registry knows: 0.3.7" in str(failed.value)
    assert "model_version" in str(failed.value)  # the way to name a model version instead


def test_a_release_whose_trainings_all_failed_the_gate_is_refused_with_each_result() -> None:
    _train("1", _release(7), GOOD)
    rejected = _train("2", _release(8), BAD)
    assert rejected["semver"] == "0.3.1" and rejected["status"] == REJECTED
    with pytest.raises(AirflowFailException) as failed:
        _resolve(_release(8))
    assert isinstance(failed.value.__cause__, DeployRefusedError)
    assert "0.3.1 (gate failed: r2; Rejected)" in str(failed.value) and "0.3.8" in str(failed.value)


def test_several_trainings_of_a_release_deploy_the_newest_passing_one(mlops_home: Path) -> None:
    _train("1", _release(9), GOOD)
    _train("2", _release(9), GOOD)
    _train("3", _release(9), BAD)
    assert _resolve(_release(9))["semver"] == "0.3.1"
    registry = runtime.registry_for(runtime.config_at(DIABETES))
    registry.set_approval("demo--diabetes", "0.3.1", REJECTED, by="bob", reason="drift")
    assert _resolve(_release(9))["semver"] == "0.3.0"


def test_a_model_version_beside_another_release_is_refused() -> None:
    _train("1", _release(7), GOOD)
    with pytest.raises(AirflowFailException) as failed:
        _resolve({"model_version": "0.3.0", "version": "0.3.8"})
    assert isinstance(failed.value.__cause__, InputError)
    assert "trained from the release version 0.3.7" in str(failed.value)


def _version(semver: str, *, passed: bool = True, status: str = APPROVED, **lineage: Any) -> ModelVersion:
    return ModelVersion(group="g", semver=semver, package_version=1, status=status, created_at="2026-01-01",
                        artifact_uri="x", gate={"passed": passed, "rows": []}, lineage=lineage)


def test_resolution_matches_the_commit_when_both_sides_know_it() -> None:
    versions = [_version("1.0.0", image_version="1.0.5", commit="aaaaaaa1"),
                _version("1.0.1", image_version="1.0.5", commit="bbbbbbb2")]
    assert resolve_release("g", versions, Release(version="1.0.5", commit="aaaaaaa")).semver == "1.0.0"
    assert resolve_release("g", versions, Release(version="1.0.5")).semver == "1.0.1"
    assert resolve_release("g", versions, Release(commit="bbbbbbb2")).semver == "1.0.1"
    with pytest.raises(VersionNotFoundError, match="releases the registry knows: 1.0.5"):
        resolve_release("g", versions, Release(version="1.0.5", commit="ccccccc"))


def test_release_train_conf_keeps_the_version_only_in_the_current_series() -> None:
    release = Release(version="0.2.14", image="reg/demo/diabetes:0.2.14", commit=COMMIT)
    assert release.train_conf("0.3") == {"image": "reg/demo/diabetes:0.2.14", "commit": COMMIT}
    assert release.train_conf("0.2")["version"] == "0.2.14"


def test_deploy_conf_keys() -> None:
    assert {"model_version", "version", "image", "commit"} <= set(runtime.DeployRunConf.model_fields)
