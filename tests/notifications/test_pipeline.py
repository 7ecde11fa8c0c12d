"""
Real ``dag.test()`` runs of the example model's train DAG with notifications switched on.

Slack answers 500: the run still succeeds, and SNS (moto) still gets the evaluation. A task that
fails for good sends the ``failure`` event through its task-level callback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from notify_fakes import MotoSns, SlackServer

REPO = Path(__file__).resolve().parents[2]


def _model_dags(tmp_path: Path, notifications: dict[str, Any], **overrides: Any) -> tuple[Any, Any, Path]:
    """The example model's train and deploy DAGs from a copy of it with ``notifications`` set."""
    from airflow_provider_mlops.config.loader import load_config
    from airflow_provider_mlops.factory.plan import plan_model
    from airflow_provider_mlops.factory.render import render_dag

    root = tmp_path / "models"
    model = root / "breast-cancer"
    shutil.copytree(REPO / "examples" / "breast-cancer", model, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((model / "mlops.yaml").read_text())
    config["notifications"] = notifications
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values}
    (model / "mlops.yaml").write_text(yaml.safe_dump(config))
    loaded = load_config(model / "mlops.yaml", root=root)
    specs = {spec.kind: spec for spec in plan_model(loaded, str(root))}
    return render_dag(specs["train"]), render_dag(specs["deploy"]), model / "mlops.yaml"


def _train_dag(tmp_path: Path, notifications: dict[str, Any], **overrides: Any) -> Any:
    return _model_dags(tmp_path, notifications, **overrides)[0]


@pytest.mark.timeout(240)
@pytest.mark.usefixtures("airflow_db", "mlops_home")
def test_failing_slack_never_fails_the_train_run(tmp_path: Path, slack_server: SlackServer, moto_sns: MotoSns) -> None:
    slack_server.respond_with(default="500")
    dag = _train_dag(tmp_path, {"slack": {"connection_id": "slack_hook"},
                                "sns": {"topic_arn": moto_sns.topic_arn, "aws_conn_id": "aws_moto"}})
    run = dag.test(run_conf={"requested_by": "notifications-test"})
    assert str(run.state) == "success"
    # Slack was tried (and retried) with the training_finished Block Kit message, and failed each time.
    assert len(slack_server.requests) >= 2
    blocks = slack_server.requests[0].json()["blocks"]
    assert blocks[0]["text"]["text"].startswith("demo/breast-cancer 1.0.0: training finished, gate PASSED")
    # SNS still delivered, with the real evaluation in it.
    [envelope] = moto_sns.received()
    assert envelope["MessageAttributes"]["event"]["Value"] == "training_finished"
    body = envelope["Message"]
    assert "Gate PASSED: first model, no production model to compare with" in body
    assert "actual \\ predicted  malignant  benign" in body
    assert f"/dags/{dag.dag_id}/runs/" in body


@pytest.mark.timeout(240)
@pytest.mark.usefixtures("airflow_db", "mlops_home")
def test_a_failed_task_sends_the_failure_event(tmp_path: Path, slack_server: SlackServer) -> None:
    dag = _train_dag(tmp_path, {"slack": {"connection_id": "slack_hook"}, "events": ["failure"]},
                     training={"hyperparameters": {"C": "not-a-number", "max_iter": 500}})
    for task in dag.tasks:
        task.retries = 0
    run = dag.test(run_conf={"requested_by": "notifications-test"})
    assert str(run.state) == "failed"
    [request] = slack_server.requests  # only the failed task reports; upstream_failed ones do not
    payload = request.json()
    assert payload["blocks"][0]["text"]["text"] == f"demo/breast-cancer: task train failed in {dag.dag_id}"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in payload["blocks"][2]["fields"]}
    assert fields["*Task*"] == "train" and fields["*Try*"] == "1 of 1" and fields["*DAG*"] == dag.dag_id
    error = next(b for b in payload["blocks"] if b["type"] == "section" and b.get("text", {}).get("text", "").startswith("*Error*"))
    assert "BackendError" in error["text"]["text"]
    buttons = {e["text"]["text"]: e["url"] for e in payload["blocks"][-2]["elements"]}
    assert buttons["Log"].endswith("/tasks/train?try_number=1")
    assert json.dumps(payload).count("training_finished") == 0
