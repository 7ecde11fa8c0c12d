"""
The retrain DAG: no training at DAG creation, no double training, and the train run carries the
last release (release.json beside mlops.yaml, else the registry's lineage).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, DagRunTriggerException
from task_fakes import FakeTaskInstance, context

from airflow_provider_mlops import runtime
from airflow_provider_mlops.exceptions import ConfigError
from airflow_provider_mlops.factory.plan import plan_model
from airflow_provider_mlops.factory.render import OPERATORS
from airflow_provider_mlops.operators import MlopsRetrainDecisionOperator, MlopsTriggerTrainOperator
from airflow_provider_mlops.operators.retrain import NO_VERSION_REASON, retrain_decision
from airflow_provider_mlops.registry.base import PENDING

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 1, tzinfo=UTC)
COMMIT = "0123456789abcdef0123456789abcdef01234567"
IMAGE = "123.dkr.ecr.eu-west-1.amazonaws.com/demo/diabetes:0.3.7"
RETRAIN_DAG, TRAIN_DAG = "mlops__demo__diabetes__retrain", "mlops__demo__diabetes__train"


def test_a_model_without_a_version_is_never_trained_by_its_retrain_dag() -> None:
    assert retrain_decision(None, NOW, NOW, 1, True) == (False, NO_VERSION_REASON)
    assert NO_VERSION_REASON == "no version is registered yet: the first training comes from CI or a person"


def test_a_train_run_under_way_means_no_second_one() -> None:
    retrain, why = retrain_decision(NOW - timedelta(days=90), None, NOW, 30, True, active_train_runs=1)
    assert not retrain and why.startswith("a train run is already queued or running")
    assert retrain_decision(NOW - timedelta(days=90), None, NOW, 30, True)[0]


def test_age_and_data_still_decide_once_a_version_exists() -> None:
    assert retrain_decision(NOW - timedelta(days=1), NOW, NOW, 30, True)[0]  # data newer than the version
    retrain, why = retrain_decision(NOW - timedelta(days=1), NOW - timedelta(days=2), NOW, 30, True, 0, "data/train newest X")
    assert not retrain and "no newer data" in why and why.endswith(": data/train newest X")


def test_unknown_data_freshness_is_never_reported_as_no_newer_data() -> None:
    retrain, why = retrain_decision(NOW - timedelta(days=1), None, NOW, 30, True)
    assert not retrain and "no newer data" not in why and "freshness is unknown" in why
    retrain, why = retrain_decision(NOW - timedelta(days=1), None, NOW, 30, False, 0, "schedule.retrain_on_new_data is false")
    assert why.endswith("data freshness is not checked: schedule.retrain_on_new_data is false")


def test_the_train_dag_runs_once_at_a_time_and_the_retrain_dag_triggers_through_the_release_operator() -> None:
    loaded = runtime.config_at(str(REPO / "examples" / "diabetes" / "mlops.yaml"))
    specs = {spec.kind: spec for spec in plan_model(loaded)}
    assert specs["train"].max_active_runs == 1
    trigger = next(t for t in specs["retrain"].tasks if t.task_id == "trigger_train")
    assert OPERATORS[trigger.operator] is MlopsTriggerTrainOperator and "conf" not in trigger.kwargs


@pytest.fixture
def model(tmp_path: Path, mlops_home: Path) -> Path:
    """A copy of the diabetes example, so release.json can sit beside its mlops.yaml."""
    folder = tmp_path / "models" / "diabetes"
    shutil.copytree(REPO / "examples" / "diabetes", folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def _register(model: Path, **lineage: Any) -> None:
    """A registered version, then training data newer than it (so the decision is to retrain)."""
    registry = runtime.registry_for(runtime.config_at(str(model / "mlops.yaml")))
    registry.register("demo--diabetes", "0.3", idempotency_key=f"k{time.monotonic_ns()}", artifact_uri="x",
                      metrics={}, gate={"passed": True}, lineage=lineage, status=PENDING)
    future = time.time() + 60
    for file in (model / "data").rglob("*"):
        os.utime(file, (future, future))


def _decide(model: Path, conf: dict[str, Any] | None = None, active_runs: int = 0) -> tuple[str, dict[str, Any], FakeTaskInstance]:
    ti = FakeTaskInstance(RETRAIN_DAG, "decide", active_runs=active_runs)
    operator = MlopsRetrainDecisionOperator(task_id="decide", config_path=str(model / "mlops.yaml"))
    branch = operator.choose_branch(context(ti, conf))
    return branch, ti.xcoms[("decide", "decision")], ti


def _release_file(folder: Path, **overrides: Any) -> None:
    release = {"project": "demo", "model": "diabetes", "version": "0.3.7", "image": IMAGE, "commit": COMMIT,
               "gitlab_project": "ml/diabetes", "pipeline_url": "", "published_at": "2026-03-01T00:00:00Z"}
    (folder / "release.json").write_text(json.dumps({**release, **overrides}))


def test_the_decision_skips_a_model_with_no_version_and_asks_the_api_about_train_runs(model: Path) -> None:
    branch, decision, ti = _decide(model)
    assert branch == "skip_retrain" and decision["reason"] == NO_VERSION_REASON and "train_conf" not in decision
    assert ti.counted == [{"dag_id": TRAIN_DAG, "states": ["queued", "running"]}]


def test_the_decision_skips_while_a_train_run_is_queued_or_running(model: Path) -> None:
    _register(model)
    branch, decision, _ = _decide(model, active_runs=1)
    assert branch == "skip_retrain" and "already queued or running" in decision["reason"]


def test_the_train_run_carries_the_published_release(model: Path) -> None:
    _register(model, image_version="0.3.2", image="old", commit="bbbbbbb")
    _release_file(model)
    branch, decision, _ = _decide(model)
    assert branch == "trigger_train"
    assert decision["train_conf"] == {"requested_by": "retrain-schedule", "version": "0.3.7", "image": IMAGE,
                                      "commit": COMMIT}
    assert decision["release_source"].endswith("release.json")


def test_a_release_of_an_older_series_keeps_its_image_but_not_its_version(model: Path) -> None:
    _register(model)
    _release_file(model, version="0.2.14", image="reg/demo/diabetes:0.2.14")
    _, decision, _ = _decide(model)
    assert decision["train_conf"] == {"requested_by": "retrain-schedule", "image": "reg/demo/diabetes:0.2.14",
                                      "commit": COMMIT}


def test_without_release_json_the_newest_recorded_release_is_used(model: Path) -> None:
    _register(model, image_version="0.3.5", image="reg/demo/diabetes:0.3.5", commit="aaaaaaa")
    _register(model, image="sha256:localcode", commit="ccccccc")  # a person's local training: no release
    _, decision, _ = _decide(model)
    assert decision["train_conf"] == {"requested_by": "retrain-schedule", "version": "0.3.5",
                                      "image": "reg/demo/diabetes:0.3.5", "commit": "aaaaaaa"}
    assert decision["release_source"] == "the lineage of version 0.3.0"


def test_the_retrain_runs_own_release_wins(model: Path) -> None:
    _register(model)
    _release_file(model)
    conf = {"version": "0.3.9", "image": "reg/demo/diabetes:0.3.9", "commit": COMMIT, "requested_by": "gitlab:ci"}
    _, decision, _ = _decide(model, conf)
    assert decision["train_conf"] == conf


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"commit": "not-a-sha"}, "commit"), ({"model": "other"}, "model"), ({"version": "1.0"}, "version")],
)
def test_a_bad_release_json_fails_at_once_naming_the_file_and_field(model: Path, overrides: dict[str, Any], field: str) -> None:
    _register(model)
    _release_file(model, **overrides)
    with pytest.raises(AirflowFailException) as failed:
        _decide(model)
    cause = failed.value.__cause__
    assert isinstance(cause, ConfigError) and cause.field == field
    assert str(model / "release.json") in str(failed.value)


def test_release_json_that_is_not_json_is_a_clear_error(model: Path) -> None:
    _register(model)
    (model / "release.json").write_text("{not json")
    with pytest.raises(AirflowFailException, match="release.json: is not JSON"):
        _decide(model)


# --- data freshness: what the decision reads, and what it says it could not read ----------------


def _set_channels(model: Path, channels: str, schedule: str = "") -> None:
    config = model / "mlops.yaml"
    text = config.read_text()
    assert "  channels: {train: data/train}\n" in text
    text = text.replace("  channels: {train: data/train}\n", f"  channels: {channels}\n")
    config.write_text(text + schedule)


def test_a_file_uri_channel_is_checked_like_a_path(model: Path) -> None:
    """file:// is a path on the worker: newer data there retrains (it was skipped as a URI)."""
    _set_channels(model, "{train: 'file://data/train'}")
    _register(model, image="reg/demo/diabetes:0.3.5", image_version="0.3.5", commit="aaaaaaa")
    branch, decision, _ = _decide(model)
    assert branch == "trigger_train" and "the data changed at" in decision["reason"]
    assert "file://data/train newest" in decision["reason"]
    [channel] = decision["data"]
    assert channel["field"] == "training.channels.train" and channel["count"] == 1 and channel["etag"] is None


def test_older_local_data_is_a_skip_that_names_each_channel_and_its_newest_time(model: Path) -> None:
    registry = runtime.registry_for(runtime.config_at(str(model / "mlops.yaml")))
    past = int(time.time()) - 3600
    for file in (model / "data").rglob("*"):
        os.utime(file, (past, past))
    registry.register("demo--diabetes", "0.3", idempotency_key="k-old-data", artifact_uri="x", metrics={},
                      gate={"passed": True}, lineage={}, status=PENDING)
    branch, decision, _ = _decide(model)
    newest = datetime.fromtimestamp(past, UTC).isoformat()
    assert branch == "skip_retrain" and "no newer data" in decision["reason"]
    assert decision["reason"].endswith(f"): data/train newest {newest}")
    assert decision["data"] == [{"field": "training.channels.train", "location": "data/train", "newest": newest,
                                 "count": 1, "etag": None}]


def test_an_empty_local_channel_fails_the_decision_naming_it(model: Path) -> None:
    """Its freshness is unknown and a training would read nothing: never a quiet "no newer data"."""
    _register(model)
    for file in (model / "data" / "train").iterdir():
        file.unlink()
    with pytest.raises(AirflowFailException, match=r"training.channels.train: 'data/train' holds no files") as failed:
        _decide(model)
    assert str(model / "mlops.yaml") in str(failed.value) and "retrain_on_new_data: false" in str(failed.value)


def test_retrain_on_new_data_false_says_freshness_is_not_checked(model: Path) -> None:
    _set_channels(model, "{train: data/train}", "  retrain_on_new_data: false\n")
    _register(model)
    branch, decision, _ = _decide(model)
    assert branch == "skip_retrain" and decision["data"] == []
    assert decision["reason"].endswith("data freshness is not checked: schedule.retrain_on_new_data is false")


def test_a_pvc_channel_is_reported_as_not_checked_not_as_no_newer_data(tmp_path: Path, mlops_home: Path) -> None:
    """The Kubernetes example reads pvc:// data, which the decision cannot list: it says so."""
    folder = tmp_path / "models" / "breast-cancer-gpu"
    shutil.copytree(REPO / "examples" / "breast-cancer-gpu", folder, ignore=shutil.ignore_patterns("__pycache__"))
    registry = runtime.registry_for(runtime.config_at(str(folder / "mlops.yaml")))
    registry.register("demo--breast-cancer-gpu", "1.0", idempotency_key="k1", artifact_uri="x", metrics={},
                      gate={"passed": True}, lineage={}, status=PENDING)
    ti = FakeTaskInstance("mlops__demo__breast-cancer-gpu__retrain", "decide")
    operator = MlopsRetrainDecisionOperator(task_id="decide", config_path=str(folder / "mlops.yaml"))
    assert operator.choose_branch(context(ti)) == "skip_retrain"
    reason = ti.xcoms[("decide", "decision")]["reason"]
    assert "no newer data" not in reason and "data freshness is not checked" in reason
    assert "training.channels.train is 'pvc://mlops-data/breast-cancer/train'" in reason
    assert "only local paths and s3:// prefixes can be checked" in reason


def test_the_trigger_starts_the_train_dag_with_the_decided_conf_under_a_run_id_of_its_own() -> None:
    ti = FakeTaskInstance(RETRAIN_DAG, "trigger_train", run_id="scheduled__2026-03-01T00:00:00+00:00")
    train_conf = {"requested_by": "retrain-schedule", "version": "0.3.7", "image": IMAGE, "commit": COMMIT}
    ti.xcoms[("decide", "decision")] = {"retrain": True, "train_conf": train_conf}
    with pytest.raises(DagRunTriggerException) as triggered:
        MlopsTriggerTrainOperator(task_id="trigger_train", trigger_dag_id=TRAIN_DAG).execute(context(ti))
    started = triggered.value
    assert (started.trigger_dag_id, started.conf) == (TRAIN_DAG, train_conf)
    # A retried task finds the run its first try started, and does not train twice.
    assert started.dag_run_id == "retrain__scheduled__2026-03-01T00:00:00+00:00" and started.skip_when_already_exists


def test_the_trigger_refuses_to_start_without_a_decision() -> None:
    ti = FakeTaskInstance(RETRAIN_DAG, "trigger_train")
    with pytest.raises(AirflowFailException, match="no train_conf"):
        MlopsTriggerTrainOperator(task_id="trigger_train", trigger_dag_id=TRAIN_DAG).execute(context(ti))
