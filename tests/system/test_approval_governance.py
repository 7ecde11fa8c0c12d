"""
Who may approve, through a real api-server's HITL REST API (issue 12): a user outside
``deployment.approvers`` is refused by the api-server (403) and by ``mlops approve``; an allowed
approver's reason is recorded in the registry and in ``mlops audit``; with Airflow configured and
no run waiting, the CLI records nothing and says how to; ``--registry-only`` records the Airflow
user the credentials prove, never ``$USER``.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from system_helpers import serialize_dag

from airflow_provider_mlops import cli, runtime
from airflow_provider_mlops.airflow_api import AirflowApiError, run_api_server
from airflow_provider_mlops.registry.base import APPROVED, PENDING

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.system
GROUP = "demo--governed"


def _model(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The breast-cancer example as demo/governed: carol approves, nobody else."""
    from airflow_provider_mlops.config.loader import load_config
    from airflow_provider_mlops.factory.plan import plan_model
    from airflow_provider_mlops.factory.render import render_dag

    root = tmp_path / "models"
    model = root / "governed"
    shutil.copytree(REPO / "examples" / "breast-cancer", model, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((model / "mlops.yaml").read_text())
    config["model"] = "governed"
    config["deployment"].update(approvers=["carol"], gate_override_by=["carol"])
    (model / "mlops.yaml").write_text(yaml.safe_dump(config))
    dags = {spec.kind: render_dag(spec) for spec in plan_model(load_config(model / "mlops.yaml", root=root), str(root))}
    for dag in dags.values():
        serialize_dag(dag)
    return model / "mlops.yaml", dags


def _login(monkeypatch: pytest.MonkeyPatch, server: Any, user: str) -> None:
    for key, value in (("MLOPS_AIRFLOW_API_URL", server.base_url), ("MLOPS_AIRFLOW_USERNAME", user),
                       ("MLOPS_AIRFLOW_PASSWORD", server.passwords[user])):
        monkeypatch.setenv(key, value)


def _cli(config: Path, *argv: str) -> int:
    command, *rest = argv
    return cli.main([command, "demo/governed", *rest, "--config", str(config)])


def test_only_assigned_approvers_answer_and_their_reason_is_recorded(
    airflow_db: Path, mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, dags = _model(tmp_path)
    run = dags["train"].test(run_conf={"requested_by": "gitlab:dave:pipeline:1"})
    assert str(run.state) == "success"
    registry = runtime.registry_for(runtime.config_at(str(config)))
    assert registry.get(GROUP, "1.0.0").status == PENDING
    deploy = dags["deploy"]
    with run_api_server(airflow_db, username="alice", other_users=("carol",)) as server:
        # No run waits: nothing is recorded, and the message says how to record it for later.
        _login(monkeypatch, server, "carol")
        capsys.readouterr()
        assert _cli(config, "approve", "1.0.0") == 1
        err = capsys.readouterr().err
        assert "no deploy run of demo/governed waits for approval of 1.0.0" in err and "--registry-only" in err
        assert registry.get(GROUP, "1.0.0").status == PENDING

        seen: dict[str, Any] = {}
        errors: list[BaseException] = []

        def answer() -> None:
            try:
                alice, carol = server.client("alice"), server.client("carol")
                deadline = time.monotonic() + 120
                while not (pending := alice.pending_approvals(deploy.dag_id)):
                    assert time.monotonic() < deadline, "no approval request appeared"
                    time.sleep(0.3)
                ti = pending[0]["task_instance"]
                seen["assigned"] = pending[0].get("assigned_users")
                path = f"/api/v2/dags/{deploy.dag_id}/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/approve"
                while alice.request("GET", path).get("state") != "awaiting_input":
                    time.sleep(0.3)
                # The api-server refuses a user outside assigned_users (deployment.approvers).
                try:
                    alice.respond(deploy.dag_id, ti["dag_run_id"], "approve", "Approve", params_input={"reason": "me"})
                except AirflowApiError as exc:
                    seen["alice_status"], seen["alice_body"] = exc.status, exc.body
                seen["pending_after_alice"] = len(carol.pending_approvals(deploy.dag_id))
                # The CLI refuses her too, before asking Airflow; carol answers, with her reason.
                _login(monkeypatch, server, "alice")
                seen["alice_cli"] = _cli(config, "approve", "1.0.0", "--reason", "me")
                _login(monkeypatch, server, "carol")
                seen["carol_cli"] = _cli(config, "approve", "1.0.0", "--reason", "gate table reviewed; f1 0.99")
            except BaseException as exc:  # surfaced by the test thread
                errors.append(exc)

        thread = threading.Thread(target=answer)
        thread.start()
        run = deploy.test(run_conf={"model_version": "1.0.0", "requested_by": "gitlab:dave:pipeline:2"})
        thread.join(timeout=60)
        assert not errors, errors
        assert seen["assigned"] == [{"id": "carol", "name": "carol"}]
        assert seen["alice_status"] == 403 and "not a respondent" in seen["alice_body"]
        assert seen["pending_after_alice"] == 1
        assert seen["alice_cli"] == 1 and seen["carol_cli"] == 0
        assert str(run.state) == "success"

        version = registry.get(GROUP, "1.0.0")
        assert version.status == APPROVED and version.stage == "production"
        assert (version.approval["by"], version.approval["reason"]) == ("carol", "gate table reviewed; f1 0.99")

        # --registry-only records the Airflow user the credentials prove, never $USER or --by.
        registry.register(GROUP, "1.0", idempotency_key="manual", artifact_uri=version.artifact_uri,
                          metrics=version.metrics, gate=version.gate, lineage={"requested_by": "dave"})
        assert _cli(config, "approve", "1.0.1", "--registry-only", "--by", "root") == 1
        assert _cli(config, "approve", "1.0.1", "--registry-only", "--reason", "for tomorrow's run") == 0
        assert registry.get(GROUP, "1.0.1").approval["by"] == "carol"

    capsys.readouterr()
    monkeypatch.delenv("MLOPS_AIRFLOW_API_URL")
    assert _cli(config, "audit", "--json") == 0
    log = json.loads(capsys.readouterr().out)
    kinds = [(e["kind"], e.get("version"), e.get("by")) for e in log]
    assert ("approved", "1.0.0", "carol") in kinds and ("approved", "1.0.1", "carol") in kinds
    assert ("deployed", "1.0.0", "gitlab:dave:pipeline:2") in kinds and ("promoted", "1.0.0", "gitlab:dave:pipeline:2") in kinds
    approved = next(e for e in log if e["kind"] == "approved" and e["version"] == "1.0.0")
    assert approved["reason"] == "gate table reviewed; f1 0.99" and approved["at"]
    deployed = next(e for e in log if e["kind"] == "deployed")
    assert deployed["endpoint"] == GROUP and "carol" in deployed["reason"]
