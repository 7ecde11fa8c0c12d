"""
The deploy DAG's events end to end: real ``dag.test()`` runs, a real ``airflow api-server`` for
the approval (Airflow's HITL REST API), and the fake Slack on 127.0.0.1 recording every message.

One model goes through: train 1.0.0 → awaiting approval → approved → deployed; train 1.0.1 →
approved → smoke test fails → rolled back to 1.0.0 (and the failure event); train 1.0.2 → rejected.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from notify_fakes import SlackServer
from test_pipeline import _model_dags

from airflow_provider_mlops.airflow_api import api_server_env, run_api_server


def _answer_when_waiting(client: Any, dag_id: str, option: str, errors: list[BaseException], timeout: float = 120) -> None:
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pending in client.pending_approvals(dag_id):
                ti = pending["task_instance"]
                path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/{ti['task_id']}"
                while client.request("GET", path).get("state") != "awaiting_input":
                    time.sleep(0.3)
                client.respond(dag_id, ti["dag_run_id"], ti["task_id"], option)
                return
            time.sleep(0.3)
        raise TimeoutError(f"no approval request in {dag_id}")
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def _deploy(server: Any, dag: Any, version: str, option: str) -> str:
    errors: list[BaseException] = []
    thread = threading.Thread(target=_answer_when_waiting, args=(server.client(), dag.dag_id, option, errors), daemon=True)
    thread.start()
    run = dag.test(run_conf={"model_version": version, "requested_by": "notifications-test"})
    thread.join(timeout=10)
    assert not errors, errors
    return str(run.state)


def _events(slack: SlackServer) -> list[tuple[str, str]]:
    out = []
    for request in slack.requests:
        blocks = request.json()["blocks"]
        event = blocks[-1]["elements"][0]["text"].split("`")[1]
        out.append((event, blocks[0]["text"]["text"]))
    slack.requests.clear()
    return out


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("mlops_home")
def test_deploy_dag_reports_approval_deploy_rollback_and_reject(
    tmp_path: Path, airflow_db: Path, slack_server: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in api_server_env(airflow_db, {}).items():
        monkeypatch.setenv(key, value)
    train, deploy, config = _model_dags(tmp_path, {"slack": {"connection_id": "slack_hook"}})
    for task in deploy.tasks:
        task.retries = 0
    assert [t.task_id for t in deploy.tasks][-1] == "notify"

    assert str(train.test(run_conf={"requested_by": "t"}).state) == "success"
    assert _events(slack_server) == [("training_finished", "demo/breast-cancer 1.0.0: training finished, gate PASSED")]

    with run_api_server(airflow_db, env=dict(os.environ), username="approver") as server:
        assert _deploy(server, deploy, "1.0.0", "Approve") == "success"
        sent = _events(slack_server)
        assert [e for e, _ in sent] == ["awaiting_approval", "deployed"]
        assert sent[1][1] == "demo/breast-cancer 1.0.0: deployed to demo--breast-cancer"

        # 1.0.1 answers the smoke test with an error: the previous version goes back on the endpoint.
        assert str(train.test(run_conf={"requested_by": "t"}).state) == "success"
        _events(slack_server)
        cfg = yaml.safe_load(config.read_text())
        cfg["deployment"]["smoke_test"] = {"payload": "not json"}
        config.write_text(yaml.safe_dump(cfg))
        assert _deploy(server, deploy, "1.0.1", "Approve") == "failed"
        sent = _events(slack_server)
        assert [e for e, _ in sent] == ["awaiting_approval", "rolled_back", "failure"]
        assert sent[1][1] == "demo/breast-cancer 1.0.1: rolled back to 1.0.0 on demo--breast-cancer"
        assert sent[2][1] == f"demo/breast-cancer: task smoke_test failed in {deploy.dag_id}"

        assert str(train.test(run_conf={"requested_by": "t"}).state) == "success"
        _events(slack_server)
        assert _deploy(server, deploy, "1.0.2", "Reject") == "success"
        sent = _events(slack_server)
        assert [e for e, _ in sent] == ["awaiting_approval", "rejected"]
        assert sent[1][1] == "demo/breast-cancer 1.0.2: deploy rejected by approver"
