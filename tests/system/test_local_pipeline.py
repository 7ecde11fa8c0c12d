"""
End to end on real Airflow 3.3 (dag.test on SQLite) and the local backend: train, evaluate, gate,
register, approve (through a real api-server's HITL REST API), deploy, predict over HTTP, promote,
retrain decisions, and a gated second model.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_mlops import cli, runtime
from airflow_provider_mlops.airflow_api import run_api_server
from airflow_provider_mlops.naming import dag_id
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


def _registry(config: Path) -> Any:
    return runtime.registry_for(runtime.config_at(str(config)))


def _answer_when_waiting(client: Any, dag: str, version: str, command: str, errors: list[BaseException]) -> None:
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if client.pending_approvals(dag):
                assert cli.main([command, "demo/breast-cancer", version, "--config", str(BC)]) == 0
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
    first = registry.get("demo-breast-cancer", "1.0.0")
    assert first.status == PENDING
    assert first.gate["passed"] and first.gate["first_model"] and first.gate["champion_version"] is None
    assert first.metrics["f1"] > 0.9 and first.metrics["confusion_matrix"]["matrix"]
    assert first.lineage["commit"] == "abcdef1234" and first.lineage["image"].startswith("sha256:")
    assert first.lineage["data"]["train"].endswith("examples/breast-cancer/data/train")

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
        run, states = _run(deploy, {"version": "1.0.0"})
        approver.join(timeout=30)
    assert not errors, errors
    assert str(run.state) == "success", states
    assert {"resolve_version", "approve", "deploy", "smoke_test", "promote"} <= set(states)
    assert set(states.values()) == {"success"}, states

    deployed = registry.get("demo-breast-cancer", "1.0.0")
    assert deployed.status == APPROVED and deployed.stage == "production"
    assert deployed.approval["by"] == "alice" and deployed.approval["at"]
    payload = (BC.parent / "smoke_payload.json").read_bytes()
    status, headers, body = invoke(deployed.deployment["url"], payload)
    assert status == 200 and headers["X-Mlops-Model-Version"] == "1.0.0"
    assert json.loads(body)["predictions"][0] in ("benign", "malignant")

    # A weaker candidate is gated against production 1.0.0 and registered as Rejected.
    run, states = _run(_dag(dag_id("demo", "breast-cancer", "train")), {"hyperparameters": {"C": 0.05}})
    assert str(run.state) == "success", states
    second = registry.get("demo-breast-cancer", "1.0.1")
    assert second.gate["champion_version"] == "1.0.0" and not second.gate["first_model"]
    assert not second.gate["passed"] and second.status == REJECTED and second.approval["by"] == "gate"
    f1 = next(r for r in second.gate["rows"] if r["metric"] == "f1")
    assert f1["champion"] == pytest.approx(first.metrics["f1"]) and f1["delta"] < -0.01 and not f1["passed"]


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
        thread = threading.Thread(target=_answer_when_waiting, args=(server.client(), deploy.dag_id, "1.0.0", "reject", errors))
        thread.start()
        run, states = _run(deploy, {})  # no version given: the newest awaiting approval
        thread.join(timeout=30)
    assert not errors, errors
    assert str(run.state) == "success"
    assert states["approve"] == "success" and states["deploy"] == states["promote"] == "skipped"
    version = _registry(BC).get("demo-breast-cancer", "1.0.0")
    assert version.status == REJECTED and version.approval["by"] == "bob" and version.stage is None
    # A rejected version can't be deployed later.
    run, states = _run(deploy, {"version": "1.0.0"})
    assert states["resolve_version"] == "failed"


def test_auto_approval_deploys_without_waiting_and_bad_conf_is_refused(airflow_db: Path, mlops_home: Path) -> None:
    train = _dag(dag_id("demo", "diabetes", "train"))
    run, states = _run(train, {"requested_by": "ci"})
    assert str(run.state) == "success", states
    run, states = _run(_dag(dag_id("demo", "diabetes", "deploy")), {})
    assert str(run.state) == "success", states
    version = _registry(DIABETES).get("demo-diabetes", "0.3.0")
    assert version.approval["by"] == "auto" and version.stage == "production"
    status, _, body = invoke(version.deployment["url"], (DIABETES.parent / "smoke_payload.json").read_bytes())
    assert status == 200 and isinstance(json.loads(body)["predictions"][0], float)
    # Run conf is validated at the edge: unknown keys and a version outside the series are refused.
    run, states = _run(train, {"version": "9.9.1"})
    assert states["train"] == "failed"
    run, states = _run(train, {"hyperparameter": {"alpha": 1}})
    assert states["train"] == "failed"
    assert len(_registry(DIABETES).list_versions("demo-diabetes")) == 1


def test_retrain_decides_from_the_registry_and_data_freshness(airflow_db: Path, mlops_home: Path) -> None:
    retrain = _dag(dag_id("demo", "diabetes", "retrain"))
    run, states = _run(retrain, {})
    assert states["decide"] == "success" and states["trigger_train"] == "success" and states["skip_retrain"] == "skipped"
    registry = _registry(DIABETES)
    assert registry.events("demo-diabetes", "retrain_decision")[-1]["reason"] == "no version is registered yet"
    run, _ = _run(_dag(dag_id("demo", "diabetes", "train")), {})
    run, states = _run(retrain, {})
    assert states["trigger_train"] == "skipped" and states["skip_retrain"] == "success"
    decision = registry.events("demo-diabetes", "retrain_decision")[-1]
    assert decision["retrain"] is False and "no newer data" in decision["reason"]
