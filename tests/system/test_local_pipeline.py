"""
End to end on real Airflow 3.3 (dag.test on SQLite) and the local backend: train, evaluate, gate,
register, approve (through a real api-server's HITL REST API), deploy, predict over HTTP, promote,
retrain decisions, a gated second model, and CI's release conf from train to deploy.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from system_helpers import serialize_dag

from airflow_provider_mlops import cli, runtime
from airflow_provider_mlops.airflow_api import run_api_server
from airflow_provider_mlops.naming import dag_id
from airflow_provider_mlops.operators.retrain import NO_VERSION_REASON
from airflow_provider_mlops.registry.base import APPROVED, PENDING, REJECTED
from airflow_provider_mlops.serving.local import invoke

REPO = Path(__file__).resolve().parents[2]
BC = REPO / "examples" / "breast-cancer" / "mlops.yaml"
DIABETES = REPO / "examples" / "diabetes" / "mlops.yaml"
pytestmark = pytest.mark.system


def _dag(name: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(name)


def _run(dag: Any, conf: dict[str, Any]) -> Any:
    run = dag.test(run_conf=conf)
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _tries(run: Any, task_id: str) -> int:
    return next(ti.try_number for ti in run.get_task_instances() if ti.task_id == task_id)


def _registry(config: Path) -> Any:
    return runtime.registry_for(runtime.config_at(str(config)))


def _answer_when_waiting(client: Any, dag: str, version: str, command: str, errors: list[BaseException],
                         *options: str) -> None:
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if client.pending_approvals(dag):
                assert cli.main([command, "demo/breast-cancer", version, "--config", str(BC), *options]) == 0
                return
            time.sleep(0.3)
        raise TimeoutError("no approval request appeared")
    except BaseException as exc:  # surfaced by the test thread
        errors.append(exc)


def test_train_deploy_with_manual_approval_and_a_gated_second_model(
    airflow_db: Path, mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _registry(BC)
    run, states = _run(_dag(dag_id("demo", "breast-cancer", "train")), {"requested_by": "test", "commit": "abcdef1234"})
    assert str(run.state) == "success", states
    first = registry.get("demo--breast-cancer", "1.0.0")
    assert first.status == PENDING
    assert first.gate["passed"] and first.gate["first_model"] and first.gate["champion_version"] is None
    assert first.metrics["f1"] > 0.9 and first.metrics["confusion_matrix"]["matrix"]
    assert first.lineage["commit"] == "abcdef1234" and first.lineage["image"].startswith("sha256:")
    assert first.lineage["data"]["train"].endswith("examples/breast-cancer/data/train")
    assert states["gate_passed"] == "success" and states["notify"] == "success"

    deploy = _dag(dag_id("demo", "breast-cancer", "deploy"))
    with run_api_server(airflow_db, username="alice") as server:
        for key, value in (("MLOPS_AIRFLOW_API_URL", server.base_url), ("MLOPS_AIRFLOW_USERNAME", "alice"),
                           ("MLOPS_AIRFLOW_PASSWORD", server.password)):
            monkeypatch.setenv(key, value)
        errors: list[BaseException] = []
        approver = threading.Thread(
            target=_answer_when_waiting, args=(server.client(), deploy.dag_id, "1.0.0", "approve", errors)
        )
        approver.start()
        run, states = _run(deploy, {"model_version": "1.0.0"})
        approver.join(timeout=30)
    assert not errors, errors
    assert str(run.state) == "success", states
    assert {"resolve_version", "approve", "deploy", "smoke_test", "promote"} <= set(states)
    assert set(states.values()) == {"success"}, states

    deployed = registry.get("demo--breast-cancer", "1.0.0")
    assert deployed.status == APPROVED and deployed.stage == "production"
    assert deployed.approval["by"] == "alice" and deployed.approval["at"]
    payload = (BC.parent / "smoke_payload.json").read_bytes()
    status, headers, body = invoke(deployed.deployment["url"], payload)
    assert status == 200 and headers["X-Mlops-Model-Version"] == "1.0.0"
    assert json.loads(body)["predictions"][0] in ("benign", "malignant")

    # A weaker candidate is gated against production 1.0.0 and registered as Rejected; the Grid
    # shows it: gate_passed is skipped (with the reason), notify still runs, the run succeeds.
    run, states = _run(_dag(dag_id("demo", "breast-cancer", "train")), {"hyperparameters": {"C": 0.05}})
    assert str(run.state) == "success", states
    assert states["gate_passed"] == "skipped" and states["register"] == states["notify"] == "success", states
    second = registry.get("demo--breast-cancer", "1.0.1")
    assert second.gate["champion_version"] == "1.0.0" and not second.gate["first_model"]
    assert not second.gate["passed"] and second.status == REJECTED and second.approval["by"] == "gate"
    f1 = next(r for r in second.gate["rows"] if r["metric"] == "f1")
    assert f1["champion"] == pytest.approx(first.metrics["f1"]) and f1["delta"] < -0.01 and not f1["passed"]

    # Issue 12: the gate-failed version can't be approved without an override (none is configured),
    # and a status flipped in the registry behind the rules' back does not get it deployed.
    monkeypatch.delenv("MLOPS_AIRFLOW_API_URL")
    assert cli.main(["approve", "demo/breast-cancer", "1.0.1", "--config", str(BC), "--by", "nobody-checked"]) == 1
    assert registry.get("demo--breast-cancer", "1.0.1").status == REJECTED
    with sqlite3.connect(mlops_home / "registry.db") as conn:
        conn.execute("UPDATE model_versions SET status = 'Approved' WHERE grp = 'demo--breast-cancer' AND patch = 1")
    run, states = _run(deploy, {"model_version": "1.0.1"})
    assert states["resolve_version"] == "failed" and states["deploy"] != "success", states
    assert registry.production("demo--breast-cancer").semver == "1.0.0"


def test_reject_in_airflow_ends_the_run_cleanly_and_is_recorded(
    airflow_db: Path, mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, states = _run(_dag(dag_id("demo", "breast-cancer", "train")), {})
    assert str(run.state) == "success", states
    deploy = _dag(dag_id("demo", "breast-cancer", "deploy"))
    with run_api_server(airflow_db, username="bob") as server:
        for key, value in (("MLOPS_AIRFLOW_API_URL", server.base_url), ("MLOPS_AIRFLOW_USERNAME", "bob"),
                           ("MLOPS_AIRFLOW_PASSWORD", server.password)):
            monkeypatch.setenv(key, value)
        errors: list[BaseException] = []
        thread = threading.Thread(target=_answer_when_waiting, args=(server.client(), deploy.dag_id, "1.0.0", "reject", errors,
                                                                     "--reason", "drift in proline feature"))
        thread.start()
        run, states = _run(deploy, {})  # no version given: the newest awaiting approval
        thread.join(timeout=30)
    assert not errors, errors
    assert str(run.state) == "success"
    assert states["approve"] == "success" and states["deploy"] == states["promote"] == "skipped"
    version = _registry(BC).get("demo--breast-cancer", "1.0.0")
    assert version.status == REJECTED and version.approval["by"] == "bob" and version.stage is None
    # The reason given travels through the HITL form's field and is recorded as given (issue 12).
    assert version.approval["reason"] == "drift in proline feature"
    # A rejected version can't be deployed later, and no retry is spent on it.
    run, states = _run(deploy, {"model_version": "1.0.0"})
    assert states["resolve_version"] == "failed" and _tries(run, "resolve_version") == 1


def test_ci_release_conf_trains_and_deploys_with_auto_approval_and_bad_conf_is_refused(airflow_db: Path, mlops_home: Path) -> None:
    # What scripts/ci/trigger.sh sends for pipeline 7, to the train DAG and then the deploy DAG.
    release = {"version": "0.3.7", "image": "123.dkr.ecr.eu-west-1.amazonaws.com/demo/diabetes:0.3.7",
               "commit": "0123456789abcdef0123456789abcdef01234567", "requested_by": "ci"}
    train = _dag(dag_id("demo", "diabetes", "train"))
    run, states = _run(train, release)
    assert str(run.state) == "success", states
    trained = _registry(DIABETES).get("demo--diabetes", "0.3.0")
    assert trained.lineage["image_version"] == "0.3.7" and trained.lineage["image"] == release["image"]
    run, states = _run(_dag(dag_id("demo", "diabetes", "deploy")), release)
    assert str(run.state) == "success", states
    assert run.get_task_instance("resolve_version").xcom_pull(task_ids="resolve_version")["semver"] == "0.3.0"
    version = _registry(DIABETES).get("demo--diabetes", "0.3.0")
    assert version.approval["by"] == "auto" and version.stage == "production"
    status, _, body = invoke(version.deployment["url"], (DIABETES.parent / "smoke_payload.json").read_bytes())
    assert status == 200 and isinstance(json.loads(body)["predictions"][0], float)
    # Run conf is validated at the edge: unknown keys and a version outside the series are refused
    # at once, without retries.
    run, states = _run(train, {"version": "9.9.1"})
    assert states["train"] == "failed" and _tries(run, "train") == 1
    run, states = _run(train, {"hyperparameter": {"alpha": 1}})
    assert states["train"] == "failed" and _tries(run, "train") == 1
    assert len(_registry(DIABETES).list_versions("demo--diabetes")) == 1


def test_retrain_decides_from_the_registry_and_data_freshness(airflow_db: Path, mlops_home: Path) -> None:
    retrain = _dag(dag_id("demo", "diabetes", "retrain"))
    run, states = _run(retrain, {})
    # A model with no version is never trained by its retrain DAG: the first training is CI's.
    assert states["decide"] == "success" and states["trigger_train"] == "skipped" and states["skip_retrain"] == "success"
    registry = _registry(DIABETES)
    assert registry.events("demo--diabetes", "retrain_decision")[-1]["reason"] == NO_VERSION_REASON
    run, _ = _run(_dag(dag_id("demo", "diabetes", "train")), {})
    run, states = _run(retrain, {})
    assert states["trigger_train"] == "skipped" and states["skip_retrain"] == "success"
    decision = registry.events("demo--diabetes", "retrain_decision")[-1]
    assert decision["retrain"] is False and "no newer data" in decision["reason"]


def test_a_retrain_trains_the_last_release_once(airflow_db: Path, mlops_home: Path, tmp_path: Path) -> None:
    """The retrain's train run carries release.json's image, version and commit; a second waits."""
    from airflow.models.dagrun import DagRun

    from airflow_provider_mlops.config.loader import load_config
    from airflow_provider_mlops.factory.plan import plan_model
    from airflow_provider_mlops.factory.render import render_dag

    root = tmp_path / "models"
    model = root / "diabetes"
    shutil.copytree(REPO / "examples" / "diabetes", model, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((model / "mlops.yaml").read_text())
    config["model"] = "diabetes-retrain"  # DAG ids of its own: its queued train run stays out of other tests
    (model / "mlops.yaml").write_text(yaml.safe_dump(config))
    dags = {spec.kind: render_dag(spec) for spec in plan_model(load_config(model / "mlops.yaml", root=root), str(root))}
    for dag in dags.values():
        serialize_dag(dag)

    run, states = _run(dags["train"], {"requested_by": "a-person"})
    assert str(run.state) == "success", states
    release = {"project": "demo", "model": "diabetes-retrain", "version": "0.3.12", "commit": "abcdef1234567",
               "image": "123.dkr.ecr.eu-west-1.amazonaws.com/demo/diabetes-retrain:0.3.12"}
    (model / "release.json").write_text(json.dumps({**release, "published_at": "2026-03-01T00:00:00Z"}))
    future = time.time() + 60  # data newer than the version: the decision is to retrain
    for file in (model / "data").rglob("*"):
        os.utime(file, (future, future))

    run, states = _run(dags["retrain"], {})
    assert states["trigger_train"] == "success" and states["skip_retrain"] == "skipped", states
    [started] = [r for r in DagRun.find(dag_id=dags["train"].dag_id) if r.run_id == f"retrain__{run.run_id}"]
    assert started.conf == {"requested_by": "retrain-schedule", "version": "0.3.12", "image": release["image"],
                            "commit": "abcdef1234567"}
    # That run is queued (no scheduler here): the next decision finds it and does not train twice.
    run, states = _run(dags["retrain"], {})
    assert states["trigger_train"] == "skipped" and states["skip_retrain"] == "success", states
    decision = run.get_task_instance("decide").xcom_pull(task_ids="decide", key="decision")
    assert decision["reason"].startswith("a train run is already queued or running")
